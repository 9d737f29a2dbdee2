"""The whole enrichment of one text: simplified form, keywords, tags and relevance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from qingfeng.memo import Memo
from qingfeng.text.conversion import prepare, strip_noise
from qingfeng.text.lexicon import Lexicons, load_lexicons
from qingfeng.text.relevance import Relevance, RelevanceScorer
from qingfeng.text.segment import Segmenter
from qingfeng.text.tagging import Tagger, Tags

__all__ = [
    "CACHE_ENTRIES",
    "CACHE_MAX_CHARS",
    "STAGED_MIN_CHARS",
    "STAGE_BATCH",
    "Enricher",
    "Enrichment",
    "default_enricher",
    "enrich",
]

CACHE_ENTRIES = 8192
"""Distinct short texts whose enrichment an :class:`Enricher` keeps (all forgotten when it is full)."""
CACHE_MAX_CHARS = 24
"""Only texts up to this long are kept: in the shared posts 99 % of the repeats are of at most 20 characters, and a
post that never repeats would only cost the lookup, the memory and the garbage collector's time."""
STAGE_BATCH = 32
"""Texts that :meth:`Enricher.enrich_prepared_many` takes through each stage before the next stage. One text through
every stage evicts each stage's tables (jieba's dictionary, the automata, the SimHash table) from the CPU caches
before the next text needs them: run alone over many texts, the stages cost about 0.6x what they cost inside the
one-text step on long texts. Measured on the shared posts joined into ~2,000-character texts (2026-11-30, one
process, loaded machine), 8 texts a batch gave 1.33x the one-text rate, 32 gave 1.54x and 128 1.63x; 32 keeps the
batch's tokens and texts small."""
STAGED_MIN_CHARS = CACHE_MAX_CHARS + 1
"""Texts this long or longer (those the short-text cache does not keep) are staged; a batch with fewer than two of
them goes one by one. Measured on the shared posts (10 alternating rounds, load 11-15): staging from 25 or from 100
characters gave the same rate on all posts and 1.03-1.04x on the posts of >= 60 characters for 25."""


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What the collector attaches to a post."""

    simplified: str
    """The text width-normalised and converted to simplified Chinese; tag offsets refer to it."""
    keywords: tuple[str, ...]
    tags: Tags
    relevance: Relevance
    lexicon_version: str


class Enricher:
    """Converts, segments, tags and scores texts. Build once per process (~0.3 s), then call :meth:`enrich`.

    ``lexicons`` defaults to the built-in files plus ``extra_lexicons`` (paths of extension files).
    Only internal caches change after construction (the segmenter's token verdicts and the enrichments of recent
    short texts, both pure functions of their input), so one instance can serve every task of a process.
    """

    __slots__ = ("_cache", "_keyword_limit", "_scorer", "_segmenter", "_tagger", "lexicons")

    def __init__(
        self,
        lexicons: Lexicons | None = None,
        *,
        extra_lexicons: Sequence[str | Path] = (),
        keyword_limit: int = 8,
    ) -> None:
        if lexicons is None:
            lexicons = load_lexicons(extra_lexicons)
        elif extra_lexicons:
            raise ValueError("pass either lexicons or extra_lexicons, not both")
        self.lexicons = lexicons
        self._tagger = Tagger(lexicons)
        self._scorer = RelevanceScorer(lexicons)
        self._segmenter = Segmenter(self._tagger.terms, lexicons.stopwords)
        self._keyword_limit = keyword_limit
        self._cache: Memo[str, Enrichment] = Memo(self._enrich, CACHE_ENTRIES)

    @property
    def tagger(self) -> Tagger:
        return self._tagger

    @property
    def segmenter(self) -> Segmenter:
        return self._segmenter

    def enrich(self, text: str) -> Enrichment:
        """Enrich raw ``text`` (any script or width)."""
        return self.enrich_prepared(prepare(text))

    def enrich_prepared(self, simplified: str) -> Enrichment:
        """Enrich text that is already the output of :func:`qingfeng.text.prepare` (skips the conversion)."""
        # Short texts repeat a lot (half of the shared Weibo posts repeat an earlier text, 转发微博 alone is a third):
        # their enrichment, a pure function of the text, is kept for up to CACHE_ENTRIES distinct ones.
        if len(simplified) > CACHE_MAX_CHARS:
            return self._enrich(simplified)
        return self._cache[simplified]

    def enrich_prepared_many(self, texts: Sequence[str]) -> list[Enrichment]:
        """``[self.enrich_prepared(t) for t in texts]`` (equal results), each stage run over up to ``STAGE_BATCH``
        texts before the next stage: several times cheaper per text on long texts, whose stages otherwise evict each
        other's tables from the CPU caches. Short texts take the cache as :meth:`enrich_prepared` does, in order."""
        out: list[Enrichment] = []
        for start in range(0, len(texts), STAGE_BATCH):
            out.extend(self._staged(texts[start : start + STAGE_BATCH]))
        return out

    def _staged(self, texts: Sequence[str]) -> list[Enrichment]:
        long = [t for t in texts if len(t) >= STAGED_MIN_CHARS]
        if len(long) < 2:
            return [self.enrich_prepared(t) for t in texts]
        tagger, segmenter, scorer, limit = self._tagger, self._segmenter, self._scorer, self._keyword_limit
        terms, version = tagger.terms, self.lexicons.version
        tags = [tagger.tag(t) for t in long]
        tokens = [segmenter.cut(strip_noise(t)) for t in long]
        keywords = [segmenter.keywords(k, limit, terms) for k in tokens]
        made = iter(
            [Enrichment(t, k, g, scorer.score(g, t), version) for t, k, g in zip(long, keywords, tags, strict=True)]
        )
        return [next(made) if len(t) >= STAGED_MIN_CHARS else self.enrich_prepared(t) for t in texts]

    def clear_cache(self) -> None:
        """Forget the enrichments kept for repeated short texts (benchmarks clear it between rounds)."""
        self._cache.clear()

    def _enrich(self, simplified: str) -> Enrichment:
        tags = self._tagger.tag(simplified)
        segmenter = self._segmenter
        # URLs, @names and emoticons are not what the post is about
        tokens = segmenter.cut(strip_noise(simplified))
        keywords = segmenter.keywords(tokens, self._keyword_limit, self._tagger.terms)
        return Enrichment(simplified, keywords, tags, self._scorer.score(tags, simplified), self.lexicons.version)


@lru_cache(maxsize=1)
def default_enricher() -> Enricher:
    """A process-wide :class:`Enricher` over the built-in lexicons, built on first use."""
    return Enricher()


def enrich(text: str) -> Enrichment:
    """Enrich ``text`` with the built-in lexicons (see :class:`Enricher` to add lexicon files)."""
    return default_enricher().enrich(text)
