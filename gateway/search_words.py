"""The text part of a post search: query words matched as Chinese words, ranked by BM25 with boosts.

Each query term (a word or a "quoted phrase", see ``search_query.parse_query_text``) is cut into words by the
splitter the collector indexed posts with (``qingfeng.elastic.words``) and matches a post when

- its words appear in order in the ``words`` field (whitespace-analysed: 受贿 is one token there, so the word 受贿
  matches 涉嫌受贿 but not 接受贿赂, which the segmenter cut into 接受 + 贿赂), boosted ×3; or
- its characters appear adjacent in ``text_simplified`` or ``title`` (one token per character on the local stack,
  bigrams on a full one): the recall of words the dictionary cuts differently in context, ranked below whole words.

Either way the characters of a word are adjacent: 受贿 never matches 受…贿 apart.

Ranking, for SEARCH_ORDER_RELEVANCE:

1. Coordination: a post holding more of the query's terms ranks above one holding fewer (each held term adds
   ``_TERM_WEIGHT``, far above any BM25 score of one page), so a two-word query lists posts holding both words first.
2. Within a level, BM25 over those clauses times a multiplier between 1 and about 3.5: 1 + the collector's relevance
   score (0..1) + recency (a Gaussian decay on ``created_at``, half weight after ``_RECENCY_SCALE``) + reach
   (log10 of reposts, a quarter weight). ``rank_feature`` would be the natural tool, but it lives in the
   ``mapper-extras`` module the local stack lacks; ``function_score`` is core.

The decay's origin is passed in (the time of the first page) so that every page of one search scores alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from qingfeng.elastic.words import WordSplitter, join_fragment

__all__ = ["POST_HIGHLIGHT", "clean_highlights", "post_highlight_query", "post_text_query"]

_WORDS_BOOST: Final = 3.0
# Larger than any boosted BM25 score of a post for one term (BM25 per term stays below ~30 at 1M posts).
_TERM_WEIGHT: Final = 1000.0
_RECENCY_SCALE: Final = "3d"
_FRAGMENT_CHARS: Final = 80

# ``words`` first: it marks whole words. The per-character fields mark matches the words did not (unknown words).
POST_HIGHLIGHT: Final[Mapping[str, Any]] = {
    "pre_tags": ["<em>"],
    "post_tags": ["</em>"],
    # html: fragments are HTML-escaped except for the <em> tags, as search.proto promises.
    "encoder": "html",
    "fields": {
        "words": {"fragment_size": _FRAGMENT_CHARS, "number_of_fragments": 3},
        "title": {"number_of_fragments": 0},
        "text_simplified": {"fragment_size": _FRAGMENT_CHARS, "number_of_fragments": 3},
    },
}


def _term_clause(term: str, splitter: WordSplitter) -> dict[str, Any]:
    should: list[dict[str, Any]] = [
        {"match_phrase": {"text_simplified": {"query": term}}},
        {"match_phrase": {"title": {"query": term}}},
    ]
    words = splitter.words(term)
    if words:
        should.insert(0, {"match_phrase": {"words": {"query": " ".join(words), "boost": _WORDS_BOOST}}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _boosts(origin: str) -> list[dict[str, Any]]:
    return [
        {"weight": 1.0},
        {"field_value_factor": {"field": "relevance", "missing": 0.0}},
        {"gauss": {"created_at": {"origin": origin, "scale": _RECENCY_SCALE, "decay": 0.5}}, "weight": 0.5},
        {"field_value_factor": {"field": "reposts", "modifier": "log1p", "missing": 0}, "weight": 0.25},
    ]


def post_text_query(
    terms: Sequence[str],
    splitter: WordSplitter,
    *,
    filters: list[dict[str, Any]],
    must_not: list[dict[str, Any]],
    origin: str,
    scored: bool = True,
) -> dict[str, Any]:
    """The query of a post search: ``terms`` (may be empty: every post) within ``filters`` and ``must_not``.

    ``origin`` (RFC 3339) is the instant recency is measured from. ``scored=False`` (a search ordered by a field, not
    by relevance) matches the same posts in filter context: no score is computed for a sort that ignores it, and
    Elasticsearch can then skip the documents a field sort cannot reach (a common word ordered by newest was the
    slowest query of the search benchmark).
    """
    clauses = [_term_clause(term, splitter) for term in terms]
    query: dict[str, Any] = {"bool": {"filter": filters, "must_not": must_not}}
    if not scored:
        if clauses:  # any term matches, as in the ranked form
            query["bool"]["filter"] = [*filters, {"bool": {"should": clauses, "minimum_should_match": 1}}]
        return query
    if clauses:
        query["bool"]["should"] = clauses
        query["bool"]["minimum_should_match"] = 1
    ranked: dict[str, Any] = {
        "function_score": {"query": query, "functions": _boosts(origin), "score_mode": "sum", "boost_mode": "multiply"}
    }
    if len(clauses) < 2:
        return ranked
    return {
        "function_score": {
            "query": ranked,
            "functions": [{"filter": clause, "weight": _TERM_WEIGHT} for clause in clauses],
            "score_mode": "sum",
            "boost_mode": "sum",
        }
    }


def post_highlight_query(terms: Sequence[str], splitter: WordSplitter) -> dict[str, Any] | None:
    """What highlights mark: the terms' clauses alone, so an unscored search marks the same words as a ranked one."""
    clauses = [_term_clause(term, splitter) for term in terms]
    return {"bool": {"should": clauses, "minimum_should_match": 1}} if clauses else None


def _merge_marks(fragment: str) -> str:
    # Per-character fields mark each character: <em>受</em><em>贿</em> reads better as <em>受贿</em>.
    return fragment.replace("</em><em>", "")


def clean_highlights(found: Mapping[str, Sequence[str]]) -> list[tuple[str, list[str]]]:
    """Highlight fields and fragments to show: the words' fragments as text (the splitter's spaces removed) when the
    words matched, else the per-character ones with adjacent marks merged; the title's always."""
    shown: list[tuple[str, list[str]]] = []
    if found.get("words"):
        shown.append(("words", [join_fragment(f) for f in found["words"]]))
    elif found.get("text_simplified"):
        shown.append(("text_simplified", [_merge_marks(f) for f in found["text_simplified"]]))
    if found.get("title"):
        shown.append(("title", [_merge_marks(f) for f in found["title"]]))
    return shown
