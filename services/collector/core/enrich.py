"""The per-post enrichment step of the collector: raw title and text in, enrichment and dedupe answer out.

Pure apart from the deduper's window (state passed in by the caller); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from qingfeng.text import Enricher, Enrichment, prepare

from services.collector.core.dedupe import Deduper, DedupeResult

__all__ = ["EnrichedPost", "enrich_post"]


@dataclass(frozen=True, slots=True)
class EnrichedPost:
    """The simplified title and text, their enrichment (over title and text together) and the dedupe answer."""

    title: str
    text: str
    enrichment: Enrichment
    dedupe: DedupeResult


def enrich_post(
    post_id: str,
    text: str,
    created_at: datetime,
    *,
    title: str = "",
    enricher: Enricher,
    deduper: Deduper,
) -> EnrichedPost:
    """Convert, tag, score and dedupe one post. The conversion is done once and shared by every stage."""
    simple_text = prepare(text)
    simple_title = prepare(title) if title else ""
    # The title often carries the place and the accused's title for news articles: tag and hash it with the body.
    combined = f"{simple_title}\n{simple_text}" if simple_title else simple_text
    enrichment = enricher.enrich_prepared(combined)
    dedupe = deduper.check(post_id, combined, created_at, simplified=True)
    return EnrichedPost(simple_title, simple_text, enrichment, dedupe)
