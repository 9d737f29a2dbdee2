"""The channels YAML: the example loads into the four adapters; every mistake names the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.publisher.channels import (
    ChannelConfigError,
    FeedAdapter,
    InMemoryFeedStore,
    MastodonAdapter,
    WebhookAdapter,
    WeiboAdapter,
    build_adapter,
    load_channels,
)

EXAMPLE = Path(__file__).resolve().parents[4] / "services/publisher/channels/channels.example.yaml"
SECRETS = {
    "QF_PUBLISHER_MASTODON_TOKEN": "m-token",
    "QF_PUBLISHER_WEIBO_TOKEN": "w-token",
    "QF_PUBLISHER_WEBHOOK_SECRET": "a-shared-secret-of-at-least-32-bytes!",
}


@pytest.fixture
def secrets_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


async def test_the_example_loads_every_kind(secrets_in_env: None) -> None:
    channels = load_channels(EXAMPLE, feed_store=InMemoryFeedStore())
    try:
        assert {k: type(v) for k, v in channels.items()} == {
            "mastodon-main": MastodonAdapter,
            "weibo-official": WeiboAdapter,
            "partner-webhook": WebhookAdapter,
            "website-feed": FeedAdapter,
        }
        assert [a.kind for a in channels.values()] == ["mastodon", "weibo", "webhook", "feed"]
        mastodon = channels["mastodon-main"]
        assert isinstance(mastodon, MastodonAdapter)
        assert mastodon.settings.access_token.get_secret_value() == "m-token"
        assert mastodon.settings.base_url.startswith("http://127.0.0.1:")
        assert "m-token" not in repr(mastodon.settings)
    finally:
        for adapter in channels.values():
            await adapter.aclose()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "channels.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {access_token: t}}\n",
            "channels[0].settings.base_url: Field required",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {base_url: ftp://x, access_token: t}}\n",
            "channels[0].settings.base_url: Value error, must be an absolute http(s) URL",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {base_url: 'http://m.example', access_token: t}}\n",
            "channels[0].settings.base_url: Value error, must use https (plain http only to 127.0.0.1",
        ),
        (
            "channels:\n  - {id: w, kind: webhook, settings: {url: 'https://rx.example/h?token=x',"
            " secret: a-shared-secret-of-at-least-32-bytes!}}\n",
            "channels[0].settings.url: Value error, must not carry a query",
        ),
        (
            "channels:\n  - {id: m, kind: telegram, settings: {}}\n",
            "channels[0].kind: Input should be 'mastodon', 'weibo', 'webhook' or 'feed'",
        ),
        (
            "channels:\n  - {id: w, kind: weibo, settings: {base_url: 'http://127.0.0.1:1', access_token: t,"
            " page_size: 500}}\n",
            "channels[0].settings.page_size: Input should be less than or equal to 100",
        ),
        (
            "channels:\n  - {id: w, kind: webhook, settings: {url: 'http://127.0.0.1:1/h', secret: short}}\n",
            "channels[0].settings.secret: Value should have at least 32 items",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {base_url: 'http://127.0.0.1:1', access_token: t,"
            " timeouts: {read_s: 0}}}\n",
            "channels[0].settings.timeouts.read_s: Input should be greater than 0",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {base_url: 'http://127.0.0.1:1', access_token: t,"
            " tokne: x}}\n",
            "channels[0].settings.tokne: Extra inputs are not permitted",
        ),
        (
            "channels:\n  - {id: m, kind: mastodon, settings: {base_url: 'http://127.0.0.1:1',"
            " access_token: {env: QF_TEST_SURELY_UNSET_VARIABLE}}}\n",
            "channels[0].settings.access_token: Value error, environment variable QF_TEST_SURELY_UNSET_VARIABLE",
        ),
        ("channels:\n  - {id: Bad Id, kind: feed, settings: {}}\n", "channels[0].id: String should match pattern"),
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
    path = _write(
        tmp_path, "channels:\n  - {id: m, kind: mastodon, settings: {base_url: nope, access_token: hunter2-token}}\n"
    )
    with pytest.raises(ChannelConfigError) as caught:
        load_channels(path)
    assert "base_url" in str(caught.value) and "hunter2-token" not in str(caught.value)


def test_a_duplicate_id_is_refused(tmp_path: Path) -> None:
    entry = "  - {id: m, kind: mastodon, settings: {base_url: 'http://127.0.0.1:1', access_token: t}}\n"
    with pytest.raises(ChannelConfigError, match=r"channels\[1\]\.id: 'm' is used twice"):
        load_channels(_write(tmp_path, "channels:\n" + entry + entry))


def test_a_feed_needs_the_publishers_store() -> None:
    entry = {
        "id": "f",
        "kind": "feed",
        "settings": {
            "site_url": "http://127.0.0.1:1",
            "self_url": "http://127.0.0.1:1/feed.atom",
            "tag_authority": "a.b,2026",
        },
    }
    with pytest.raises(ChannelConfigError, match="feed store"):
        build_adapter(entry)
    assert isinstance(build_adapter(entry, feed_store=InMemoryFeedStore()), FeedAdapter)


async def test_a_secret_file_is_read_and_stripped(tmp_path: Path) -> None:
    secret = tmp_path / "weibo_token"
    secret.write_text("from-the-secrets-dir\n", encoding="utf-8")
    entry = {
        "id": "w",
        "kind": "weibo",
        "settings": {"base_url": "http://127.0.0.1:1", "access_token": {"file": str(secret)}},
    }
    adapter = build_adapter(entry)
    try:
        assert isinstance(adapter, WeiboAdapter)
        assert adapter.settings.access_token.get_secret_value() == "from-the-secrets-dir"
    finally:
        await adapter.aclose()
    missing = {**entry, "settings": {**entry["settings"], "access_token": {"file": str(tmp_path / "absent")}}}  # type: ignore[dict-item]
    with pytest.raises(
        ChannelConfigError, match=r"channel\.settings\.access_token: Value error, cannot read secret file"
    ):
        build_adapter(missing)
