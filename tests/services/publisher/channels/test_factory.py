"""Channel configuration: the example and the publisher's own channels.yaml load into adapters; ``build_channel``
takes the port's ``ChannelConfig``; every mistake names the file or channel and the field; secrets come from the
environment or a file and never show in an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.publisher.channels import (
    ChannelBuilder,
    ChannelConfigError,
    FeedAdapter,
    InMemoryFeedStore,
    MastodonAdapter,
    WebhookAdapter,
    WeiboAdapter,
    build_adapter,
    build_channel,
    load_channels,
)
from services.publisher.ports import ChannelConfig

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "services/publisher/channels/channels.example.yaml"
POLICY = ROOT / "services/publisher/policies/channels.yaml"
WEBHOOK_SECRET = "a-shared-secret-of-at-least-32-bytes!"
MASTODON_ENV = "QF_PUBLISHER_MASTODON_TOKEN"
SECRETS = {
    "QF_PUBLISHER_MASTODON_TOKEN": "m-token",
    "QF_PUBLISHER_WEIBO_TOKEN": "w-token",
    "QF_PUBLISHER_WEBHOOK_SECRET": WEBHOOK_SECRET,
}


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def test_the_example_loads_every_enabled_kind(secrets_in_env: None) -> None:
    channels = load_channels(EXAMPLE, feed_store=InMemoryFeedStore())
    try:
        assert {k: type(v) for k, v in channels.items()} == {
            "mastodon-main": MastodonAdapter,
            "weibo-official": WeiboAdapter,
            "partner-webhook": WebhookAdapter,
            "website-feed": FeedAdapter,
        }, "the disabled channel is skipped (its secret variable is not even read)"
        assert [a.kind for a in channels.values()] == ["mastodon", "weibo", "webhook", "feed"]
        mastodon = channels["mastodon-main"]
        assert isinstance(mastodon, MastodonAdapter)
        assert mastodon.settings.token.get_secret_value() == "m-token"
        assert mastodon.settings.base_url.startswith("http://127.0.0.1:")
        assert "m-token" not in repr(mastodon.settings)
    finally:
        for adapter in channels.values():
            await adapter.aclose()


async def test_the_publishers_own_channels_yaml_builds(secrets_in_env: None) -> None:
    if not POLICY.exists():
        pytest.fail(f"{POLICY} is gone; this test follows the publisher's channel policy")
    channels = load_channels(POLICY, feed_store=InMemoryFeedStore())
    try:
        assert {a.kind for a in channels.values()} >= {"mastodon", "weibo", "feed"}
    finally:
        for adapter in channels.values():
            await adapter.aclose()


async def test_build_channel_takes_the_ports_channel_config(secrets_in_env: None) -> None:
    mastodon = build_channel(
        ChannelConfig(
            "mastodon-x", "mastodon", {"base_url": "https://m.example", "token_env": "QF_PUBLISHER_MASTODON_TOKEN"}
        )
    )
    feed = build_channel(ChannelConfig("site", "feed", {"site_url": "http://127.0.0.1:8090/releases/"}))
    try:
        assert isinstance(mastodon, MastodonAdapter) and mastodon.settings.token.get_secret_value() == "m-token"
        assert isinstance(feed, FeedAdapter) and isinstance(feed.store, InMemoryFeedStore)
        assert feed.settings.release_url("pub-1") == "http://127.0.0.1:8090/releases/pub-1"
        assert feed.settings.feed_url() == "http://127.0.0.1:8090/feed.atom"
    finally:
        await mastodon.aclose()
    store = InMemoryFeedStore()
    bound = ChannelBuilder(feed_store=store)(ChannelConfig("site", "feed", {"site_url": "https://jw.example/r"}))
    assert isinstance(bound, FeedAdapter) and bound.store is store
    with pytest.raises(ValueError, match=r"channel bad\.options\.base_url: Field required"):
        build_channel(ChannelConfig("bad", "mastodon", {"token": "t"}))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


LOOP = "base_url: 'http://127.0.0.1:1'"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "channels:\n  - {id: m, kind: mastodon, options: {token: t}}\n",
            "channels[0].options.base_url: Field required",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, options: {base_url: ftp://x, token: t}}\n",
            "channels[0].options.base_url: Value error, must be an absolute http(s) URL",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, options: {base_url: 'http://m.example', token: t}}\n",
            "channels[0].options.base_url: Value error, must use https (plain http only to 127.0.0.1",
        ),
        (
            f"channels:\n  - {{id: w, kind: webhook, options: {{url: 'https://rx.example/h?token=x',"
            f" secret: {WEBHOOK_SECRET}}}}}\n",
            "channels[0].options.url: Value error, must not carry a query",
        ),
        (
            "channels:\n  - {id: m, kind: telegram, options: {}}\n",
            "channels[0].kind: Input should be 'mastodon', 'weibo', 'webhook' or 'feed'",
        ),
        (
            f"channels:\n  - {{id: w, kind: weibo, options: {{{LOOP}, token: t, page_size: 500}}}}\n",
            "channels[0].options.page_size: Input should be less than or equal to 100",
        ),
        (
            "channels:\n  - {id: w, kind: webhook, options: {url: 'http://127.0.0.1:1/h', secret: short}}\n",
            "channels[0].options.secret: Value should have at least 32 items",
        ),
        (
            f"channels:\n  - {{id: m, kind: mastodon, options: {{{LOOP}, token: t, timeouts: {{read_s: 0}}}}}}\n",
            "channels[0].options.timeouts.read_s: Input should be greater than 0",
        ),
        (
            f"channels:\n  - {{id: m, kind: mastodon, options: {{{LOOP}, token: t, tokne: x}}}}\n",
            "channels[0].options.tokne: Extra inputs are not permitted",
        ),
        (
            f"channels:\n  - {{id: m, kind: mastodon, options: {{{LOOP}, token_env: QF_TEST_UNSET_VARIABLE}}}}\n",
            "channels[0].options.token_env: environment variable QF_TEST_UNSET_VARIABLE is not set",
        ),
        (
            f"channels:\n  - {{id: m, kind: mastodon, options: {{{LOOP}, token: t, token_env: HOME}}}}\n",
            "channels[0].options.token_env: token is given twice",
        ),
        ("channels:\n  - {id: Bad Id, kind: feed, options: {}}\n", "channels[0].id: String should match pattern"),
        ("channels:\n  - {id: f, kind: feed, options: {}}\n", "channels[0].options.site_url: Field required"),
        ("channels: {}\n", "channels: expected a list"),
        ("channels:\n  - just-a-string\n", "channels[0]: expected a mapping"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = _write(tmp_path, yaml_text)
    with pytest.raises(ChannelConfigError) as caught:
        load_channels(path, feed_store=InMemoryFeedStore())
    assert str(caught.value).startswith(str(path)), caught.value
    assert expected in str(caught.value), caught.value


def test_a_secret_value_never_appears_in_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "channels:\n  - {id: m, kind: mastodon, options: {base_url: nope, token: hunter2-token}}\n")
    with pytest.raises(ChannelConfigError) as caught:
        load_channels(path)
    assert "base_url" in str(caught.value) and "hunter2-token" not in str(caught.value)


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    entry = f"  - {{id: m, kind: mastodon, options: {{{LOOP}, token: t}}}}\n"
    with pytest.raises(ChannelConfigError, match=r"channels\[1\]\.id: 'm' is used twice"):
        load_channels(_write(tmp_path, "channels:\n" + entry + entry))


def test_build_adapter_needs_a_store_for_a_feed() -> None:
    entry = {"id": "f", "kind": "feed", "options": {"site_url": "http://127.0.0.1:1/r", "tag_authority": "a.b,2026"}}
    with pytest.raises(ChannelConfigError, match="feed store"):
        build_adapter(entry)
    assert isinstance(build_adapter(entry, feed_store=InMemoryFeedStore()), FeedAdapter)


async def test_a_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "weibo_token"
    secret.write_text("from-the-secrets-dir\n", encoding="utf-8")
    options = {"base_url": "http://127.0.0.1:1", "token_file": str(secret)}
    adapter = build_adapter({"id": "w", "kind": "weibo", "options": options})
    try:
        assert isinstance(adapter, WeiboAdapter)
        assert adapter.settings.token.get_secret_value() == "from-the-secrets-dir"
    finally:
        await adapter.aclose()
    missing = {"id": "w", "kind": "weibo", "options": {**options, "token_file": str(tmp_path / "absent")}}
    with pytest.raises(ChannelConfigError, match=r"channel\.options\.token_file: cannot read secret file"):
        build_adapter(missing)
