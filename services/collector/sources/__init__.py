"""Source adapters, one module per kind of source, and the table the scheduler picks them from."""

from qingfeng.v1 import common_pb2

from services.collector.sources.base import (
    Emit,
    Item,
    Outcome,
    SourceAdapter,
    SourceContext,
    post_id,
    secrets_from_dir,
)
from services.collector.sources.html import HtmlSource
from services.collector.sources.html_extract import HtmlRules
from services.collector.sources.jsonl import JsonlSource, iter_jsonl, parse_jsonl_line
from services.collector.sources.mastodon import MastodonSource
from services.collector.sources.rss import RssSource
from services.collector.sources.weibo import WeiboSource

__all__ = [
    "Emit",
    "HtmlRules",
    "HtmlSource",
    "Item",
    "JsonlSource",
    "MastodonSource",
    "Outcome",
    "RssSource",
    "SourceAdapter",
    "SourceContext",
    "WeiboSource",
    "build_adapters",
    "iter_jsonl",
    "parse_jsonl_line",
    "post_id",
    "secrets_from_dir",
]


def build_adapters(context: SourceContext) -> dict[common_pb2.SourceKind.ValueType, SourceAdapter]:
    """One adapter per fetchable kind (manual tips arrive through gRPC and are not fetched)."""
    return {
        common_pb2.SOURCE_KIND_RSS: RssSource(context),
        common_pb2.SOURCE_KIND_HTML: HtmlSource(context),
        common_pb2.SOURCE_KIND_WEIBO_API: WeiboSource(context),
        common_pb2.SOURCE_KIND_MASTODON: MastodonSource(context),
        common_pb2.SOURCE_KIND_JSONL_IMPORT: JsonlSource(context),
    }
