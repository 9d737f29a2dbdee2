"""The per-post enrichment step of the collector: raw title and text in, enrichment and dedupe answer out.

Pure apart from the deduper's window (state passed in by the caller); no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from qingfeng.text import STAGE_BATCH, STAGED_MIN_CHARS, Enricher, Enrichment, prepare

from services.collector.core.dedupe import Deduper, DedupeResult

__all__ = ["EnrichedPost", "RawPost", "enrich_post", "enrich_posts"]


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


@dataclass(frozen=True, slots=True)
class RawPost:
    """One post as :func:`enrich_posts` takes it: what :func:`enrich_post` takes as arguments."""

    post_id: str
    text: str
    created_at: datetime
    title: str = ""


def enrich_posts(posts: Sequence[RawPost], *, enricher: Enricher, deduper: Deduper) -> list[EnrichedPost]:
    """``[enrich_post(...) for each post]``, with equal results, the enrichment done a batch at a time.

    The enricher takes each stage over ``STAGE_BATCH`` posts before the next (see
    :meth:`qingfeng.text.Enricher.enrich_prepared_many`: the stages keep their tables in the CPU caches), then the
    posts are deduped one by one in order, so each sees exactly the window it would have seen alone.
    """
    out: list[EnrichedPost] = []
    for start in range(0, len(posts), STAGE_BATCH):
        batch = posts[start : start + STAGE_BATCH]
        if sum(len(post.text) + len(post.title) >= STAGED_MIN_CHARS for post in batch) < 2:
            # nothing to stage (most microblog posts): one by one, without the batch's lists
            out += [
                enrich_post(p.post_id, p.text, p.created_at, title=p.title, enricher=enricher, deduper=deduper)
                for p in batch
            ]
            continue
        texts = [prepare(post.text) for post in batch]
        titles = [prepare(post.title) if post.title else "" for post in batch]
        combined = [f"{title}\n{text}" if title else text for title, text in zip(titles, texts, strict=True)]
        enrichments = enricher.enrich_prepared_many(combined)
        for post, title, text, both, enrichment in zip(batch, titles, texts, combined, enrichments, strict=True):
            dedupe = deduper.check(post.post_id, both, post.created_at, simplified=True)
            out.append(EnrichedPost(title, text, enrichment, dedupe))
    return out
