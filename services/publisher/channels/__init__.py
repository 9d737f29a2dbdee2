"""Channel adapters of the publisher: Mastodon, a Weibo-style official-account API, a signed webhook and the website's
Atom feed, each implementing ``services.publisher.ports.ChannelAdapter``, and the factory from the channels YAML."""

from services.publisher.channels.atom import feed_app, render_atom
from services.publisher.channels.factory import ChannelConfigError, ManagedChannel, build_adapter, load_channels
from services.publisher.channels.feed import FeedAdapter, FeedSettings
from services.publisher.channels.feed_store import FeedEntry, FeedStore, InMemoryFeedStore
from services.publisher.channels.mastodon import MastodonAdapter, MastodonSettings
from services.publisher.channels.webhook import WebhookAdapter, WebhookSettings, sign, verify_signature
from services.publisher.channels.weibo import WeiboAdapter, WeiboSettings

__all__ = [
    "ChannelConfigError",
    "FeedAdapter",
    "FeedEntry",
    "FeedSettings",
    "FeedStore",
    "InMemoryFeedStore",
    "ManagedChannel",
    "MastodonAdapter",
    "MastodonSettings",
    "WebhookAdapter",
    "WebhookSettings",
    "WeiboAdapter",
    "WeiboSettings",
    "build_adapter",
    "feed_app",
    "load_channels",
    "render_atom",
    "sign",
    "verify_signature",
]
