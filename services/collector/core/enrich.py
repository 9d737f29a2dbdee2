"""The per-post enrichment step of the collector: raw title and text in, enrichment and dedupe answer out.

Pure apart from the deduper's window (state passed in by the caller); no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from qingfeng.text import STAGE_BATCH, STAGED_MIN_CHARS, Enricher, Enrichment, normalize_for_hash, prepare
from qingfeng.text.enrichment import CACHE_MAX_CHARS

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


# A short text without a title: its prepared (simplified) form and its canonical form for hashing, both pure functions
# of the text, kept for the last _SHORT_KEPT distinct texts (all forgotten when full). Nine posts in ten of the shared
# data are this short and most of them repeat an earlier text (转发微博 alone is a third), each paying the width table,
# the script check, lower-casing and two regular expressions again.
_SHORT_KEPT = 8192
_short: dict[str, tuple[str, str]] = {}


def _short_forms(text: str) -> tuple[str, str]:
    known = _short.get(text)
    if known is None:
        simple = prepare(text)
        known = (simple, normalize_for_hash(simple, simplified=True))
        if len(_short) >= _SHORT_KEPT:
            _short.clear()
        _short[text] = known
    return known


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
    :meth:`qingfeng.text.Enricher.enrich_prepared_many`: the stages keep their tables in the CPU caches); each
    batch's texts are normalised for hashing while they are at hand, then all the posts are deduped in order
    (``Deduper.check_canonical_many``: each sees exactly the window it would have seen alone, the fingerprints
    computed together).
    """
    titles: list[str] = []
    texts: list[str] = []
    enrichments: list[Enrichment] = []
    canonical: list[str] = []
    enrich_prepared = enricher.enrich_prepared
    for start in range(0, len(posts), STAGE_BATCH):
        batch = posts[start : start + STAGE_BATCH]
        batch_texts: list[str] = []
        batch_titles: list[str] = []
        # a short text's canonical form from the memo; None: normalised after the enrichment (below)
        batch_canonical: list[str | None] = []
        for post in batch:
            text, title = post.text, post.title
            if not title and len(text) <= CACHE_MAX_CHARS:
                simple, canon = _short_forms(text)
                batch_texts.append(simple)
                batch_titles.append("")
                batch_canonical.append(canon)
            else:
                batch_texts.append(prepare(text))
                batch_titles.append(prepare(title) if title else "")
                batch_canonical.append(None)
        # The title often carries the place and the accused's title for news articles: tag and hash it with the body.
        both = [f"{title}\n{text}" if title else text for title, text in zip(batch_titles, batch_texts, strict=True)]
        if sum(len(post.text) + len(post.title) >= STAGED_MIN_CHARS for post in batch) < 2:
            # nothing to stage (most microblog posts): one by one, without the batch's lists
            enrichments += [enrich_prepared(text) for text in both]
        else:
            enrichments += enricher.enrich_prepared_many(both)
        # normalised now: the noise the enrichment stripped from these texts is still remembered (strip_noise)
        canonical += [
            normalize_for_hash(text, simplified=True) if canon is None else canon
            for text, canon in zip(both, batch_canonical, strict=True)
        ]
        titles += batch_titles
        texts += batch_texts
    dedupes = deduper.check_canonical_many(
        [(post.post_id, text, post.created_at) for post, text in zip(posts, canonical, strict=True)]
    )
    return [
        EnrichedPost(title, text, enrichment, dedupe)
        for title, text, enrichment, dedupe in zip(titles, texts, enrichments, dedupes, strict=True)
    ]
