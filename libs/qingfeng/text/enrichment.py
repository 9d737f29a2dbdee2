"""The whole enrichment of one text: simplified form, keywords, tags and relevance."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from qingfeng.text.conversion import prepare, strip_noise
from qingfeng.text.lexicon import Lexicons, load_lexicons
from qingfeng.text.relevance import Relevance, RelevanceScorer
from qingfeng.text.segment import Segmenter
from qingfeng.text.tagging import Tagger, Tags

__all__ = ["Enricher", "Enrichment", "default_enricher", "enrich"]


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
    Only internal caches change after construction, so one instance can serve every task of a process.
    """

    __slots__ = ("_keyword_limit", "_scorer", "_segmenter", "_tagger", "lexicons")

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
