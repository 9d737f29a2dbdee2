"""The collector's pure core: enrichment and dedupe of normalised posts (no asyncio, gRPC, Kafka or ES)."""

from services.collector.core.dedupe import DedupeConfig, DedupeKind, Deduper, DedupeResult
from services.collector.core.enrich import EnrichedPost, RawPost, enrich_post, enrich_posts

__all__ = [
    "DedupeConfig",
    "DedupeKind",
    "DedupeResult",
    "Deduper",
    "EnrichedPost",
    "RawPost",
    "enrich_post",
    "enrich_posts",
]
