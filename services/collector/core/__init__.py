"""The collector's pure core: enrichment and dedupe of normalised posts (no asyncio, gRPC, Kafka or ES)."""

from services.collector.core.dedupe import DedupeConfig, DedupeKind, Deduper, DedupeResult
from services.collector.core.enrich import EnrichedPost, enrich_post

__all__ = ["DedupeConfig", "DedupeKind", "DedupeResult", "Deduper", "EnrichedPost", "enrich_post"]
