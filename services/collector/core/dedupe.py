"""Exact and near-duplicate detection of posts over a bounded window. Pure: no I/O, time comes from the posts.

- **Exact**: two posts whose canonical content (:func:`qingfeng.text.normalize_for_hash`: no URLs, @mentions,
  repost chains, 转发微博, emoticons, whitespace or punctuation; simplified script) is identical.
- **Near**: 64-bit SimHash over character shingles within Hamming distance ``max_distance`` (default 3), found
  through a 4-band LSH index.
- **Too short**: a text whose canonical content has fewer than ``min_chars`` characters or fewer than
  ``min_distinct_chars`` distinct characters (empty reposts, 转发微博, 顶, 哈哈哈哈哈哈哈哈…) is never matched:
  such posts are not copies of each other, and reposts are linked to their original through their parent id.

Only originals (posts answered NEW) are indexed, so ``duplicate_of`` always names an original, never a copy of a
copy. The window is bounded twice: at most ``max_entries`` originals, least recently matched evicted first, and
none whose last match is older than ``max_age`` before the newest post seen (swept every 1024 posts).

A post delivered again (at-least-once input, a retried slice) is never reported as a duplicate of itself: an original
in the window recognises its own id and is answered NEW again (its text changed: its old entry is replaced). That
needs no memory per post, so the answers remembered per post id (``max_remembered``) are only a short memo of recent
answers. They were the guard against "a duplicate of itself" before, 500,000 of them: ~320 bytes each (measured
with tracemalloc), ~150 MB that a soak at ~2,000 posts/s filled in four minutes with the answers of posts long
produced, which the pipeline's produced ids skip before they get here. An answer forgotten is computed again from
the window; only a post not produced yet (its send failed) is checked twice, and whichever answer it then gets is
the one that reaches Kafka.

One :class:`Deduper` per consumer; it is not thread-safe.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from qingfeng.text import SimhashIndex, content_hash, normalize_for_hash, simhash64, simhash64_many

__all__ = ["DedupeConfig", "DedupeKind", "DedupeResult", "Deduper"]


class DedupeKind(enum.Enum):
    """How a post relates to the posts seen before it."""

    NEW = "new"
    EXACT = "exact"
    NEAR = "near"
    TOO_SHORT = "too_short"


@dataclass(frozen=True, slots=True)
class DedupeResult:
    """The answer for one post.

    ``simhash`` is an unsigned 64-bit int (``None`` when the text is too short to fingerprint);
    ``duplicate_of`` and ``distance`` (Hamming, 0 for exact) are set for EXACT and NEAR.
    """

    kind: DedupeKind
    duplicate_of: str | None
    content_hash: str
    simhash: int | None
    distance: int | None = None

    @property
    def is_duplicate(self) -> bool:
        return self.kind is DedupeKind.EXACT or self.kind is DedupeKind.NEAR


@dataclass(frozen=True, slots=True)
class DedupeConfig:
    """Window and thresholds. Defaults suit microblog streams (a story's copies arrive within days)."""

    max_entries: int = 200_000
    max_age: timedelta = timedelta(days=7)
    # A memo of recent answers per post id (see the module docstring): ~300 bytes each.
    max_remembered: int = 10_000
    max_distance: int = 3
    bands: int = 4
    shingle_size: int = 3
    min_chars: int = 8
    min_distinct_chars: int = 4

    def __post_init__(self) -> None:
        if self.max_distance >= self.bands:
            raise ValueError(f"max_distance {self.max_distance} needs at least {self.max_distance + 1} bands")
        for name in ("max_entries", "max_remembered", "shingle_size", "min_chars", "min_distinct_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_age <= timedelta(0):
            raise ValueError("max_age must be positive")


@dataclass(slots=True)
class _Original:
    content_hash: str
    simhash: int
    created_at: float  # POSIX seconds: float comparisons are several times cheaper than aware datetimes
    last_seen: float


# Canonical texts up to this long have their digest and, when too short, their (immutable) answer kept per Deduper:
# three posts in four of the shared data are too short to fingerprint (empty reposts, 转发微博, 哈哈…), and the same
# few hundred short texts recur, each costing a BLAKE2b digest, the distinct-character test and a new answer.
_FORMS_MAX_CHARS = 24
_FORMS_KEPT = 8192  # distinct texts kept, all forgotten when full (bounded memory)

# The age sweep walks from the least recently matched entry; doing it on every post would cost more than the
# memory it frees between two sweeps. The size bound is enforced on every post.
_SWEEP_EVERY = 1024


class Deduper:
    """Classifies each post as NEW, EXACT, NEAR or TOO_SHORT relative to the originals in its window."""

    def __init__(self, config: DedupeConfig | None = None) -> None:
        self.config = config or DedupeConfig()
        self._originals: OrderedDict[str, _Original] = OrderedDict()  # least recently matched first
        self._by_hash: dict[str, str] = {}
        self._index = SimhashIndex(self.config.bands)
        self._answers: OrderedDict[str, DedupeResult] = OrderedDict()
        self._max_age = self.config.max_age.total_seconds()
        self._newest = float("-inf")
        self._until_sweep = _SWEEP_EVERY
        # canonical text (short) -> its content hash and, when too short, its TOO_SHORT answer (a pure function of
        # the text and this deduper's config)
        self._forms: dict[str, tuple[str, DedupeResult | None]] = {}

    def __len__(self) -> int:
        """Number of originals in the window."""
        return len(self._originals)

    def check(self, post_id: str, text: str, created_at: datetime, *, simplified: bool = False) -> DedupeResult:
        """Classify post ``post_id`` and, when it is NEW, add it to the window.

        ``created_at`` must be timezone-aware. Pass ``simplified=True`` when ``text`` is already the output of
        :func:`qingfeng.text.prepare` (the collector's enrichment has done it), to skip a second conversion.
        """
        if created_at.tzinfo is None:
            raise ValueError(f"created_at of post {post_id} must be timezone-aware")
        known = self._answers.get(post_id)
        if known is not None:
            return known
        canonical = normalize_for_hash(text, simplified=simplified)
        digest, too_short = self._forms_of(canonical)
        return self._settle(post_id, canonical, digest, too_short, created_at, {})

    def check_canonical_many(self, posts: Sequence[tuple[str, str, datetime]]) -> list[DedupeResult]:
        """``check`` of each ``(post_id, canonical, created_at)`` in order, ``canonical`` being the text's
        :func:`qingfeng.text.normalize_for_hash` (the caller normalises each text while the text is at hand): the
        same answers and the same window afterwards as those calls one by one.

        Each post is still classified against the window as the posts before it left it; only the fingerprints are
        computed first, together (``simhash64_many``: a short text's fingerprint alone is mostly fixed cost), for
        every text that may need one: long enough, of a post not remembered, whose content hash names no original
        when the call starts. A text that turns out an exact copy of an earlier post of the same call had its
        fingerprint made for nothing; one whose original is evicted during the call gets its own, as before.
        """
        answers, by_hash = self._answers, self._by_hash
        forms_of = self._forms_of
        forms = [forms_of(canonical) for _, canonical, _ in posts]
        wanted: dict[str, None] = {}
        for (post_id, canonical, _), (digest, too_short) in zip(posts, forms, strict=True):
            if too_short is None and digest not in by_hash and post_id not in answers:
                wanted[canonical] = None
        texts = list(wanted)
        fingerprints = dict(zip(texts, simhash64_many(texts, self.config.shingle_size), strict=True))
        results: list[DedupeResult] = []
        for (post_id, canonical, created_at), (digest, too_short) in zip(posts, forms, strict=True):
            if created_at.tzinfo is None:
                raise ValueError(f"created_at of post {post_id} must be timezone-aware")
            known = answers.get(post_id)
            results.append(
                known
                if known is not None
                else self._settle(post_id, canonical, digest, too_short, created_at, fingerprints)
            )
        return results

    def _forms_of(self, canonical: str) -> tuple[str, DedupeResult | None]:
        """The content hash of ``canonical`` and, when it is too short to match, its TOO_SHORT answer."""
        forms = self._forms
        known = forms.get(canonical)
        if known is not None:
            return known
        digest = content_hash(canonical)
        made = (digest, DedupeResult(DedupeKind.TOO_SHORT, None, digest, None) if self._too_short(canonical) else None)
        if len(canonical) <= _FORMS_MAX_CHARS:
            if len(forms) >= _FORMS_KEPT:
                forms.clear()
            forms[canonical] = made
        return made

    def _too_short(self, canonical: str) -> bool:
        cfg = self.config
        # The distinct-character count of a long text's head nearly always settles it: a set of the whole text
        # (one entry per character of a 5,000-character article) is built only when the head falls short.
        return len(canonical) < cfg.min_chars or (
            len(set(canonical[:64])) < cfg.min_distinct_chars and len(set(canonical)) < cfg.min_distinct_chars
        )

    def _settle(
        self,
        post_id: str,
        canonical: str,
        digest: str,
        too_short: DedupeResult | None,
        created_at: datetime,
        fingerprints: Mapping[str, int],
    ) -> DedupeResult:
        """The rest of ``check`` (its answer not remembered): classify, remember, sweep."""
        ts = created_at.timestamp()
        result = self._classify(post_id, canonical, digest, too_short, ts, fingerprints)
        self._remember(post_id, result)
        if ts > self._newest:
            self._newest = ts
        self._until_sweep -= 1
        if self._until_sweep <= 0 or len(self._originals) > self.config.max_entries:
            self._until_sweep = _SWEEP_EVERY
            self._evict()
        return result

    def _classify(
        self,
        post_id: str,
        canonical: str,
        digest: str,
        too_short: DedupeResult | None,
        ts: float,
        fingerprints: Mapping[str, int],
    ) -> DedupeResult:
        cfg = self.config
        if too_short is not None:
            return too_short  # immutable, equal to a new one

        own = self._originals.get(post_id)
        if own is not None:
            if own.content_hash == digest:  # delivered again: it is still its own original
                self._touch(post_id, ts)
                return DedupeResult(DedupeKind.NEW, None, digest, own.simhash)
            self._forget(post_id, own)  # its text changed: judged anew, as a new text

        original_id = self._by_hash.get(digest)
        if original_id is not None:
            original = self._touch(original_id, ts)
            return DedupeResult(DedupeKind.EXACT, original_id, digest, original.simhash, 0)

        fingerprint = fingerprints.get(canonical)
        if fingerprint is None:
            fingerprint = simhash64(canonical, cfg.shingle_size)
        candidates = self._index.query(fingerprint, cfg.max_distance)
        if candidates:
            # nearest, then the earliest posted: the original of the story
            best_id, distance = min(candidates, key=lambda kd: (kd[1], self._originals[str(kd[0])].created_at))
            original_id = str(best_id)
            self._touch(original_id, ts)
            return DedupeResult(DedupeKind.NEAR, original_id, digest, fingerprint, distance)

        self._originals[post_id] = _Original(digest, fingerprint, ts, ts)
        self._by_hash[digest] = post_id
        self._index.add(post_id, fingerprint)
        return DedupeResult(DedupeKind.NEW, None, digest, fingerprint)

    def _touch(self, original_id: str, seen_at: float) -> _Original:
        original = self._originals[original_id]
        self._originals.move_to_end(original_id)
        if seen_at > original.last_seen:
            original.last_seen = seen_at
        return original

    def _remember(self, post_id: str, result: DedupeResult) -> None:
        answers = self._answers
        answers[post_id] = result
        while len(answers) > self.config.max_remembered:
            answers.popitem(last=False)

    def _evict(self) -> None:
        horizon = self._newest - self._max_age
        originals = self._originals
        # Recency order approximates time order for a roughly ordered stream; an out-of-order straggler
        # behind a fresh entry waits for the size bound.
        while originals:
            oldest_id, oldest = next(iter(originals.items()))
            if len(originals) <= self.config.max_entries and oldest.last_seen >= horizon:
                break
            self._forget(oldest_id, oldest)

    def _forget(self, post_id: str, original: _Original) -> None:
        del self._originals[post_id]
        if self._by_hash.get(original.content_hash) == post_id:
            del self._by_hash[original.content_hash]
        self._index.remove(post_id, original.simhash)
