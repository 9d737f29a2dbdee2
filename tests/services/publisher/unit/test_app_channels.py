"""Channels from the policy: one that cannot be built is left out with the reason, or stops the start when strict."""

from __future__ import annotations

import logging

import pytest

from services.publisher.adapters.policy_yaml import load_policies
from services.publisher.app import build_channels
from services.publisher.ports import ChannelAdapter, ChannelConfig
from tests.services.publisher.fakes import FakeChannel, FakePlatform


def factory(config: ChannelConfig) -> ChannelAdapter:
    if config.kind in ("mastodon", "weibo"):
        raise ValueError(f"channel {config.id}.options.token_env: environment variable is not set")
    return FakeChannel(FakePlatform(), kind=config.kind)


def test_a_channel_without_its_secret_is_left_out_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    policies = load_policies()
    with caplog.at_level(logging.ERROR):
        adapters = build_channels(policies, factory, strict=False)
    assert set(adapters) == {"website-feed"}  # the webhook ships disabled; the microblogs lack their tokens
    assert "channel mastodon-qingfeng left out" in caplog.text and "token_env" in caplog.text


def test_strict_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="token_env"):
        build_channels(load_policies(), factory, strict=True)
