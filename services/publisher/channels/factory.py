"""From the channels YAML to adapters: each entry is validated (pydantic) and errors name the file and the field.

An entry::

    - id: mastodon-main          # the channel id releases are delivered to
      kind: mastodon             # mastodon | weibo | webhook | feed
      settings: {...}            # that kind's settings (MastodonSettings, WeiboSettings, ...)

See ``channels.example.yaml`` next to this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_store import FeedStore
from services.publisher.channels.mastodon import MastodonAdapter, MastodonSettings
from services.publisher.channels.webhook import WebhookAdapter, WebhookSettings
from services.publisher.channels.weibo import WeiboAdapter, WeiboSettings
from services.publisher.ports import ChannelAdapter

__all__ = ["ChannelConfigError", "ManagedChannel", "build_adapter", "load_channels"]

_SETTINGS: Mapping[str, type[BaseModel]] = {
    "mastodon": MastodonSettings,
    "weibo": WeiboSettings,
    "webhook": WebhookSettings,
    "feed": FeedSettings,
}


class ChannelConfigError(ValueError):
    """A channels YAML (or one entry of it) is not valid; the message names where and which field."""


class ManagedChannel(ChannelAdapter, Protocol):
    """A channel adapter the wiring closes at shutdown (it may hold an HTTP connection pool)."""

    async def aclose(self) -> None: ...


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")
    kind: Literal["mastodon", "weibo", "webhook", "feed"]
    settings: dict[str, Any]


def _where(prefix: str, loc: Sequence[int | str]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _problems(prefix: str, err: ValidationError) -> str:
    return "; ".join(f"{_where(prefix, e['loc'])}: {e['msg']}" for e in err.errors(include_url=False))


def build_adapter(
    channel_config: Mapping[str, Any], *, feed_store: FeedStore | None = None, where: str = "channel"
) -> ManagedChannel:
    """One adapter from one entry. ``feed_store`` is required for a feed channel (the publisher's SQL store);
    ``where`` prefixes error messages (e.g. ``channels.yaml: channels[2]``)."""
    try:
        entry = _Entry.model_validate(channel_config)
    except ValidationError as err:
        raise ChannelConfigError(_problems(where, err)) from None
    try:
        settings = _SETTINGS[entry.kind].model_validate(entry.settings)
    except ValidationError as err:
        raise ChannelConfigError(_problems(f"{where}.settings", err)) from None
    if isinstance(settings, MastodonSettings):
        return MastodonAdapter(settings)
    if isinstance(settings, WeiboSettings):
        return WeiboAdapter(settings)
    if isinstance(settings, WebhookSettings):
        return WebhookAdapter(settings)
    if isinstance(settings, FeedSettings):
        if feed_store is None:
            raise ChannelConfigError(f"{where}: a feed channel needs the publisher's feed store")
        return FeedAdapter(settings, feed_store)
    raise AssertionError(entry.kind)  # _SETTINGS and the branches above list the same kinds


def load_channels(path: Path, *, feed_store: FeedStore | None = None) -> dict[str, ManagedChannel]:
    """Every channel of a channels YAML (``channels: [entry, ...]``), by id."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ChannelConfigError(f"{path}: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get("channels"), list):
        raise ChannelConfigError(f"{path}: channels: expected a list of channel entries")
    adapters: dict[str, ManagedChannel] = {}
    for index, raw in enumerate(document["channels"]):
        where = f"{path}: channels[{index}]"
        if not isinstance(raw, dict):
            raise ChannelConfigError(f"{where}: expected a mapping with id, kind and settings")
        adapter = build_adapter(raw, feed_store=feed_store, where=where)
        channel_id = str(raw["id"])
        if channel_id in adapters:
            raise ChannelConfigError(f"{where}.id: {channel_id!r} is used twice")
        adapters[channel_id] = adapter
    return adapters
