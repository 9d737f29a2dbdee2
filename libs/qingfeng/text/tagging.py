"""Vocabulary taggers: corruption terms by category, officials' titles, offline-action signals and regions.

One :class:`Tagger` is built per process from :class:`~qingfeng.text.lexicon.Lexicons`; each kind of vocabulary
is matched on the simplified text, leftmost-longest and non-overlapping within a kind. Kinds are matched
independently over the whole text, so overlapping vocabulary of different kinds is all found: in 临沂市委书记 the
region matcher finds 临沂市 and the title matcher 市委书记.

Each kind is an Aho-Corasick automaton (``ahocorasick_rs``, Rust, leftmost-longest), which reads a text once
whatever the number of terms. The trie-shaped regex (``_trie.py``) with the same semantics is kept for the texts
the automaton cannot take (lone surrogates cannot be encoded as UTF-8) and as the reference in the tests; CPython's
``re`` tries every first-level branch of the trie at each position whose character starts some term, which made
it about 3x slower on the long-text fixture.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from qingfeng.text._trie import compile_terms, find_terms
from qingfeng.text.lexicon import Lexicons, Region, TermLexicon

__all__ = ["RegionHit", "Tagger", "Tags", "TermHit"]

_LEVEL_RANK = {"province": 0, "prefecture": 1, "county": 2}


@dataclass(frozen=True, slots=True)
class TermHit:
    """One occurrence of a lexicon term: the term, its category id and its offset in the simplified text."""

    term: str
    category: str
    start: int


@dataclass(frozen=True, slots=True)
class RegionHit:
    """One mention of a region: its GB/T 2260 code, its full name, the form written and its offset."""

    code: str
    name: str
    term: str
    start: int


def _categories(hits: tuple[TermHit, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.category for h in hits))


@dataclass(frozen=True, slots=True)
class Tags:
    """Everything the taggers found in one text, in order of appearance."""

    corruption: tuple[TermHit, ...] = ()
    officials: tuple[TermHit, ...] = ()
    offline: tuple[TermHit, ...] = ()
    regions: tuple[RegionHit, ...] = ()
    region_codes: tuple[str, ...] = ()
    """Every region named plus the provinces they imply (a city implies its province), sorted."""
    primary_region: str | None = None
    """The most specific region named (ties: most mentioned, then first mentioned): the post's 属地."""

    @property
    def corruption_categories(self) -> tuple[str, ...]:
        return _categories(self.corruption)

    @property
    def official_categories(self) -> tuple[str, ...]:
        return _categories(self.officials)

    @property
    def offline_categories(self) -> tuple[str, ...]:
        return _categories(self.offline)

    def corruption_by_category(self) -> dict[str, tuple[str, ...]]:
        """category id → distinct terms found, e.g. ``{"bribery_taking": ("受贿",)}``."""
        out: dict[str, dict[str, None]] = {}
        for hit in self.corruption:
            out.setdefault(hit.category, {})[hit.term] = None
        return {cat: tuple(terms) for cat, terms in out.items()}

    @property
    def is_empty(self) -> bool:
        return not (self.corruption or self.officials or self.offline or self.regions)


NO_TAGS = Tags()


class _Matcher:
    """Leftmost-longest, non-overlapping occurrences of the keys of ``index`` as (key, value, start) triples."""

    __slots__ = ("_find", "_index", "_pattern", "_terms", "_values")

    def __init__(self, index: Mapping[str, str | None]) -> None:
        self._index = dict(index)
        self._terms = tuple(index)
        self._values = tuple(index.values())
        self._pattern = compile_terms(self._terms)
        self._find: Callable[[str], list[tuple[int, int, int]]] = find_terms(self._terms)

    def matches(self, text: str) -> list[tuple[str, str | None, int]]:
        try:
            found = self._find(text)
        except UnicodeEncodeError:  # a lone surrogate: the regex gives the same answer, more slowly
            index = self._index
            return [(m.group(), index[m.group()], m.start()) for m in self.finditer(text)]
        if not found:  # most posts: nothing of this kind
            return []
        terms, values = self._terms, self._values
        return [(terms[i], values[i], start) for i, start, _ in found]

    def finditer(self, text: str) -> list[re.Match[str]]:
        """The same occurrences found by the trie-shaped regex (the reference implementation)."""
        return [] if self._pattern is None else list(self._pattern.finditer(text))


class _TermMatcher:
    __slots__ = ("_matcher",)

    def __init__(self, lexicon: TermLexicon) -> None:
        # Excluded phrases take part in the leftmost-longest match, so they shadow the shorter term they
        # contain, and are then dropped (category None).
        index: dict[str, str | None] = dict.fromkeys(lexicon.exclude)
        index.update(lexicon.term_index())
        self._matcher = _Matcher(index)

    def find(self, text: str) -> tuple[TermHit, ...]:
        found = self._matcher.matches(text)
        if not found:
            return ()
        return tuple([TermHit(term, category, start) for term, category, start in found if category is not None])


class Tagger:
    """Finds lexicon vocabulary in simplified text. Immutable after construction; safe to share."""

    __slots__ = ("_corruption", "_officials", "_offline", "_region_matcher", "_regions", "terms")

    def __init__(self, lexicons: Lexicons) -> None:
        self._corruption = _TermMatcher(lexicons.corruption)
        self._officials = _TermMatcher(lexicons.officials)
        self._offline = _TermMatcher(lexicons.offline)
        self._regions: dict[str, Region] = dict(lexicons.regions)
        region_terms: dict[str, str | None] = dict.fromkeys(lexicons.region_exclude)
        for region in self._regions.values():
            for term in (region.name, *region.aliases):
                region_terms[term] = region.code
        self._region_matcher = _Matcher(region_terms)
        self.terms: frozenset[str] = frozenset(
            t for lex in (lexicons.corruption, lexicons.officials, lexicons.offline) for t in lex.term_index()
        )
        """Every corruption, official and offline term (the segmenter's user dictionary)."""

    def tag(self, simplified: str) -> Tags:
        """Tag ``simplified`` (the output of :func:`qingfeng.text.prepare`)."""
        if not simplified:
            return NO_TAGS
        corruption = self._corruption.find(simplified)
        officials = self._officials.find(simplified)
        offline = self._offline.find(simplified)
        regions = self._find_regions(simplified)
        if not (corruption or officials or offline or regions):
            return NO_TAGS
        codes, primary = self._resolve(regions)
        return Tags(corruption, officials, offline, regions, codes, primary)

    def _find_regions(self, text: str) -> tuple[RegionHit, ...]:
        found = self._region_matcher.matches(text)
        if not found:
            return ()
        regions = self._regions
        return tuple(
            [RegionHit(code, regions[code].name, term, start) for term, code, start in found if code is not None]
        )

    def _resolve(self, hits: tuple[RegionHit, ...]) -> tuple[tuple[str, ...], str | None]:
        if not hits:
            return (), None
        counts: dict[str, int] = {}
        for hit in hits:
            counts[hit.code] = counts.get(hit.code, 0) + 1
        codes: set[str] = set()
        for code in counts:
            region = self._regions[code]
            codes.add(code)
            codes.add(region.province_code)
            parent = region.parent_code
            if parent is not None and parent in self._regions:
                codes.add(parent)
        # counts keeps first-mention order, and max() keeps the first of equal keys
        primary = max(counts, key=lambda c: (_LEVEL_RANK[self._regions[c].level], counts[c]))
        return tuple(sorted(codes)), primary
