"""Channel adapters of the publisher: Mastodon, a Weibo-style official-account API, a signed webhook and the website's
Atom feed, each implementing ``services.publisher.ports.ChannelAdapter``, and the factory from the channels YAML."""

from services.publisher.channels.atom import feed_app, render_atom
from services.publisher.channels.factory import (
    ChannelBuilder,
    ChannelConfigError,
    ManagedChannel,
    build_adapter,
    build_channel,
    load_channels,
)
from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_sql import SqlFeedStore, create_feed_table, drop_feed_table
from services.publisher.channels.feed_store import FeedEntry, FeedStore, InMemoryFeedStore
from services.publisher.channels.mastodon import MastodonAdapter, MastodonSettings
from services.publisher.channels.webhook import WebhookAdapter, WebhookSettings, sign, verify_signature
from services.publisher.channels.weibo import WeiboAdapter, WeiboSettings

__all__ = [
    "ChannelBuilder",
    "ChannelConfigError",
    "FeedAdapter",
    "FeedEntry",
    "FeedSettings",
    "FeedStore",
    "InMemoryFeedStore",
    "ManagedChannel",
    "MastodonAdapter",
    "MastodonSettings",
    "SqlFeedStore",
    "WebhookAdapter",
    "WebhookSettings",
    "WeiboAdapter",
    "WeiboSettings",
    "build_adapter",
    "build_channel",
    "create_feed_table",
    "drop_feed_table",
    "feed_app",
    "load_channels",
    "render_atom",
    "sign",
    "verify_signature",
]
