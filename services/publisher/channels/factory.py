"""From channel configuration to adapters: options validated with pydantic, errors naming the channel and the field.

The publisher's ``policies/channels.yaml`` lists channels as::

    - id: mastodon-qingfeng       # the channel id releases are delivered to
      kind: mastodon              # mastodon | weibo | webhook | feed
      enabled: true               # (and display_name, account, max_length …: the publisher's, ignored here)
      options: {base_url: "https://mastodon.example", token_env: QF_PUBLISHER_MASTODON_TOKEN}

``options`` are that kind's settings (``MastodonSettings``, ``WeiboSettings``, ``WebhookSettings``,
``FeedSettings``); secrets come as ``<name>_env`` or ``<name>_file`` (see ``_secrets.py``). ``app.py`` builds each
enabled channel with ``build_channel(ChannelConfig)``, or with a ``ChannelBuilder`` that holds the SQL feed store.
See ``channels.example.yaml`` next to this file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from qingfeng.safe_yaml import SafeYamlError, load_yaml

from services.publisher.channels._secrets import resolve_secrets
from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_store import FeedStore, InMemoryFeedStore
from services.publisher.channels.mastodon import MastodonAdapter, MastodonSettings
from services.publisher.channels.webhook import WebhookAdapter, WebhookSettings
from services.publisher.channels.weibo import WeiboAdapter, WeiboSettings
from services.publisher.ports import ChannelAdapter, ChannelConfig

if TYPE_CHECKING:
    from services.publisher.ports import ChannelFactory

__all__ = [
    "ChannelBuilder",
    "ChannelConfigError",
    "ManagedChannel",
    "build_adapter",
    "build_channel",
    "load_channels",
]

log = logging.getLogger(__name__)

_SETTINGS: Mapping[str, type[BaseModel]] = {
    "mastodon": MastodonSettings,
    "weibo": WeiboSettings,
    "webhook": WebhookSettings,
    "feed": FeedSettings,
}


class ChannelConfigError(ValueError):
    """A channel's configuration is not valid; the message names where (file, channel) and which field."""


class ManagedChannel(ChannelAdapter, Protocol):
    """A channel adapter the wiring closes at shutdown (it may hold an HTTP connection pool)."""

    async def aclose(self) -> None: ...


class _Entry(BaseModel):
    # The publisher's own keys (display_name, max_length, …) are its business: ignored here, checked by its loader.
    model_config = ConfigDict(frozen=True, extra="ignore")

    # The same rule as the publisher's channel policy, so every id it accepts builds here.
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    kind: Literal["mastodon", "weibo", "webhook", "feed"]
    enabled: bool = True
    options: dict[str, Any] = {}


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
    """One adapter from one channels-YAML entry (``id``, ``kind``, ``options``). ``feed_store`` is required for a
    feed channel; ``where`` prefixes error messages (e.g. ``channels.yaml: channels[2]``)."""
    try:
        entry = _Entry.model_validate(channel_config)
    except ValidationError as err:
        raise ChannelConfigError(_problems(where, err)) from None
    try:
        options = resolve_secrets(entry.options, f"{where}.options")
    except ValueError as err:
        raise ChannelConfigError(str(err)) from None
    try:
        settings = _SETTINGS[entry.kind].model_validate(options)
    except ValidationError as err:
        raise ChannelConfigError(_problems(f"{where}.options", err)) from None
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


class ChannelBuilder:
    """The publisher's ``ChannelFactory``: builds one adapter per ``ChannelConfig``; ValueError for a bad one.

    Give it the SQL feed store (``SqlFeedStore(engine)``) so feed entries survive a restart. Without one it keeps
    each feed's entries in memory and says so in the log: enough for a demo, not for production.
    """

    def __init__(self, *, feed_store: FeedStore | None = None) -> None:
        self._feed_store = feed_store

    def __call__(self, config: ChannelConfig) -> ManagedChannel:
        store = self._feed_store
        if config.kind == "feed" and store is None:
            log.warning("feed channel %s keeps its entries in memory: they are lost on restart", config.id)
            store = InMemoryFeedStore()
        entry = {"id": config.id, "kind": config.kind, "options": dict(config.options)}
        return build_adapter(entry, feed_store=store, where=f"channel {config.id}")


build_channel = ChannelBuilder()
if TYPE_CHECKING:
    _is_a_factory: ChannelFactory = build_channel


def load_channels(path: Path, *, feed_store: FeedStore | None = None) -> dict[str, ManagedChannel]:
    """Every enabled channel of a channels YAML (``channels: [entry, ...]``), by id."""
    try:
        document = load_yaml(path.read_text(encoding="utf-8"), source=str(path))
    except (OSError, UnicodeDecodeError, SafeYamlError) as err:  # a file that is not UTF-8 is a config error too
        raise ChannelConfigError(f"{path}: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get("channels"), list):
        raise ChannelConfigError(f"{path}: channels: expected a list of channel entries")
    adapters: dict[str, ManagedChannel] = {}
    seen: set[str] = set()
    for index, raw in enumerate(document["channels"]):
        where = f"{path}: channels[{index}]"
        if not isinstance(raw, dict):
            raise ChannelConfigError(f"{where}: expected a mapping with id, kind and options")
        channel_id = str(raw.get("id"))
        if channel_id in seen:
            raise ChannelConfigError(f"{where}.id: {channel_id!r} is used twice")
        seen.add(channel_id)
        if raw.get("enabled", True) is False:
            continue
        adapters[channel_id] = build_adapter(raw, feed_store=feed_store, where=where)
    return adapters
