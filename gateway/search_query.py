"""From a search request to an Elasticsearch request body: query text, filters, order and highlights, plus the page
size and the query's fingerprint that the page tokens carry.

Pure functions over the protobuf requests (no I/O), so every rule is a table test.

Query text: words separated by spaces are ANDed, ``"quoted phrases"`` (ASCII or Chinese quotes) match as phrases.
Text is folded to simplified Chinese and half-width first, the way posts are indexed (``text_simplified``), so a
traditional query finds simplified posts. Here each word is matched as a phrase over the CJK-analysed fields, which
keeps its characters together and in order (受贿 does not match 受到表扬，贿选): one token per character on the local
stack, overlapping bigrams on a cluster with the CJK analyser. Event searches use this text part as it is; post
searches replace it with the words-aware query of ``search_words`` (see ``search_posts``) and keep the filters, scope,
order and highlights built here.

Paging is not done here. Posts and events page with a point in time plus ``search_after`` and HMAC-signed page
tokens (``search_paging.PitPager``, driven by ``search_posts`` and ``search.Searcher``), so hits indexed meanwhile
neither shift, repeat nor hide a page. This module gives them the page size (``resolve_page`` on the request without
its token) and the query's fingerprint, which every token carries: a token replayed with another query is refused.
The bodies built here still hold ``from_`` (always 0 there), which the callers drop. ``next_page_token``, the
``offset`` of ``Page`` and ``MAX_RESULT_WINDOW`` are what is left of the earlier from-offset paging (the first 10,000
hits only); the servers no longer issue or accept those offset tokens.

Documents follow the index templates of ``qingfeng.elastic`` with protobuf enums stored by value name
(``SOURCE_KIND_RSS``, ``CORRUPTION_CATEGORY_BRIBERY``, ``WARNING_LEVEL_ORANGE``) and times in RFC 3339.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Final

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.text.conversion import normalize_width, to_simplified
from qingfeng.v1 import common_pb2, post_pb2, search_pb2

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_RESULT_WINDOW",
    "RESTRICTED_SOURCE_KINDS",
    "Page",
    "SearchRequestError",
    "SearchScope",
    "event_search_body",
    "next_page_token",
    "parse_query_text",
    "post_search_body",
    "resolve_page",
]

DEFAULT_PAGE_SIZE: Final = 20
# Elasticsearch's index.max_result_window: from + size beyond it is refused by the cluster. It bounded the former
# offset paging; PIT + search_after (search_paging) has no such window, and from is always 0 now.
MAX_RESULT_WINDOW: Final = 10_000
_MAX_QUERY_CHARS: Final = 256
_MAX_TERMS: Final = 16

_POST_FIELDS: Final = ("title^2", "text_simplified")
_EVENT_FIELDS: Final = ("title^2", "reasons")
_HIGHLIGHT_FRAGMENT_CHARS: Final = 80

# Quotes accepted around phrases: ASCII, Chinese curly quotes and corner brackets.
_PHRASE = re.compile(r'"([^"]*)"|“([^”]*)”|「([^」]*)」|(\S+)')
_REGION_CODE = re.compile(r"^\d{6}$")


# Posts of these kinds (tips: manual submissions, possibly naming people) are found only by scopes with see_tips.
RESTRICTED_SOURCE_KINDS: Final = (common_pb2.SourceKind.Name(common_pb2.SOURCE_KIND_MANUAL_TIP),)


@dataclass(frozen=True)
class SearchScope:
    """What one identity may find, from its access policy: tips only with ``see_tips``; when ``region_codes`` or
    ``source_ids`` are set, only posts (and events) of those regions (GB/T 2260 prefixes) or sources.

    The default scope is the narrowest one without a region or source limit: no tips.
    """

    see_tips: bool = False
    region_codes: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()


def _scope_filters(scope: SearchScope, *, posts: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Filters and exclusions keeping a search within the caller's scope (added to the request's, never replacing)."""
    filters: list[dict[str, Any]] = []
    must_not: list[dict[str, Any]] = []
    if scope.region_codes:
        regions = [_region_prefix(code, "scope.region_codes") for code in scope.region_codes]
        filters.append({"bool": {"should": regions, "minimum_should_match": 1}})
    if posts and scope.source_ids:
        filters.append({"terms": {"source_id": list(scope.source_ids)}})
    if posts and not scope.see_tips:
        must_not.append({"terms": {"source_kind": list(RESTRICTED_SOURCE_KINDS)}})
    return filters, must_not


class SearchRequestError(ValueError):
    """A request field is malformed; ``field`` names it and ``reason`` is an ``ErrorReason`` value name."""

    def __init__(self, field: str, message: str, *, reason: str = "ERROR_REASON_INVALID_ARGUMENT") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.description = message
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """How many hits a page holds and the fingerprint its next (PIT) token carries; ``offset`` is 0 for every request
    the servers resolve (they strip the token first: the PIT cursor says where a page starts)."""

    offset: int
    size: int
    fingerprint: str


def parse_query_text(text: str) -> tuple[str, ...]:
    """Words and phrases of a query, folded to simplified, half-width Chinese; empty for match-all."""
    if len(text) > _MAX_QUERY_CHARS:
        raise SearchRequestError("query", f"at most {_MAX_QUERY_CHARS} characters, got {len(text)}")
    folded = to_simplified(normalize_width(text))
    terms = []
    for match in _PHRASE.finditer(folded):
        term = next(g for g in match.groups() if g is not None).strip()
        if term:
            terms.append(" ".join(term.split()))
    if len(terms) > _MAX_TERMS:
        raise SearchRequestError("query", f"at most {_MAX_TERMS} words or phrases, got {len(terms)}")
    return tuple(dict.fromkeys(terms))


def _fingerprint(request: Message) -> str:
    # Everything but the paging fields: the same query with another page size may continue with the same token.
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("page_size")
    digest = hashlib.sha256(request.DESCRIPTOR.full_name.encode() + copy.SerializeToString(deterministic=True))
    return digest.hexdigest()[:16]


def resolve_page(request: search_pb2.SearchPostsRequest | search_pb2.SearchEventsRequest, *, max_size: int) -> Page:
    """Validate ``page_size`` (0 = default, clamped to ``max_size``) and fingerprint the query.

    Callers pass the request without its ``page_token`` (the PIT cursor of ``search_paging`` says where the page
    starts); a token left in is decoded as a former offset token and refused unless it is one."""
    if request.page_size < 0:
        raise SearchRequestError("page_size", f"must not be negative, got {request.page_size}")
    size = min(request.page_size or DEFAULT_PAGE_SIZE, max_size)
    fingerprint = _fingerprint(request)
    offset = 0
    if request.page_token:
        offset = _decode_token(request.page_token, fingerprint)
    if offset >= MAX_RESULT_WINDOW:
        raise SearchRequestError(
            "page_token", f"only the first {MAX_RESULT_WINDOW} hits can be paged through; narrow the query"
        )
    return Page(offset=offset, size=min(size, MAX_RESULT_WINDOW - offset), fingerprint=fingerprint)


def next_page_token(page: Page, *, returned: int, total: int) -> str:
    """The former offset token of the page after ``page``; empty when there is none (or it lies beyond the result
    window). The servers no longer issue it: their tokens are the signed PIT cursors of ``search_paging``."""
    following = page.offset + returned
    if returned < page.size or following >= min(total, MAX_RESULT_WINDOW):
        return ""
    raw = f"{following}:{page.fingerprint}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _decode_token(token: str, fingerprint: str) -> int:
    invalid = SearchRequestError(
        "page_token", "not a token this server issued for this query", reason="ERROR_REASON_INVALID_PAGE_TOKEN"
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        offset_text, _, token_fingerprint = raw.partition(":")
        offset = int(offset_text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid from None
    if offset < 0 or token_fingerprint != fingerprint:
        raise invalid
    return offset


def _text_clauses(terms: tuple[str, ...], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{"multi_match": {"query": term, "type": "phrase", "fields": list(fields)}} for term in terms]


def _time_range(field: str, request_field: str, value: common_pb2.TimeRange) -> dict[str, Any] | None:
    bounds: dict[str, str] = {}
    if value.HasField("start_time"):
        bounds["gte"] = _rfc3339(value.start_time)
    if value.HasField("end_time"):
        bounds["lt"] = _rfc3339(value.end_time)
    if "gte" in bounds and "lt" in bounds and value.start_time.ToNanoseconds() >= value.end_time.ToNanoseconds():
        raise SearchRequestError(request_field, "start_time must be before end_time")
    return {"range": {field: bounds}} if bounds else None


def _rfc3339(value: Timestamp) -> str:
    return value.ToJsonString()


def _region_prefix(code: str, field: str) -> dict[str, Any]:
    """GB/T 2260 hierarchy: 330000 (province) covers 33xxxx, 330100 (city) covers 3301xx."""
    if not _REGION_CODE.match(code):
        raise SearchRequestError(field, f"must be a six-digit GB/T 2260 code, got {code!r}")
    prefix = code
    while len(prefix) > 2 and prefix.endswith("00"):
        prefix = prefix[:-2]
    return {"prefix": {"region_codes": prefix}}


def _enum_names(enum: Any, values: Any, field: str) -> list[str]:
    names = []
    for value in values:
        if value == 0 or value not in enum.values():
            raise SearchRequestError(field, f"unknown or unspecified value {value}")
        names.append(enum.Name(value))
    return names


def _highlight(fields: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # encoder html: fragments are HTML-escaped except for the <em> tags, as search.proto promises.
    return {"pre_tags": ["<em>"], "post_tags": ["</em>"], "encoder": "html", "fields": fields}


def _body(must: list[dict[str, Any]], filters: list[dict[str, Any]], must_not: list[dict[str, Any]]) -> dict[str, Any]:
    query: dict[str, Any] = {"bool": {"filter": filters, "must_not": must_not}}
    query["bool"]["must"] = must or [{"match_all": {}}]
    return query


def post_search_body(
    request: search_pb2.SearchPostsRequest, page: Page, scope: SearchScope | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``AsyncElasticsearch.search`` over the posts read alias, within ``scope``."""
    terms = parse_query_text(request.query)
    f = request.filter
    filters, must_not = _scope_filters(scope or SearchScope(), posts=True)
    if f.HasField("created"):
        created = _time_range("created_at", "filter.created", f.created)
        if created:
            filters.append(created)
    if f.source_kinds:
        filters.append(
            {"terms": {"source_kind": _enum_names(common_pb2.SourceKind, f.source_kinds, "filter.source_kinds")}}
        )
    if f.source_id:
        filters.append({"term": {"source_id": f.source_id}})
    if f.region_code:
        filters.append(_region_prefix(f.region_code, "filter.region_code"))
    if f.min_relevance:
        if not 0.0 <= f.min_relevance <= 1.0:
            raise SearchRequestError("filter.min_relevance", f"must be within 0..1, got {f.min_relevance}")
        filters.append({"range": {"relevance": {"gte": f.min_relevance}}})
    if f.categories:
        names = _enum_names(post_pb2.CorruptionCategory, f.categories, "filter.categories")
        filters.append({"terms": {"corruption_categories": names}})
    if f.event_id:
        filters.append({"term": {"event_id": f.event_id}})
    if f.media_only:
        filters.append({"term": {"author.is_media": True}})
    if not f.include_duplicates:
        # A duplicate has a non-empty duplicate_of; writers may store "" for originals.
        must_not.append(
            {"bool": {"filter": [{"exists": {"field": "duplicate_of"}}], "must_not": [{"term": {"duplicate_of": ""}}]}}
        )
    order = request.order or search_pb2.SEARCH_ORDER_RELEVANCE
    tie_break = [{"created_at": {"order": "desc", "missing": "_last"}}, {"id": {"order": "asc"}}]
    if order == search_pb2.SEARCH_ORDER_RELEVANCE:
        sort: list[Any] = [{"_score": {"order": "desc"}}, *tie_break]
    elif order == search_pb2.SEARCH_ORDER_NEWEST:
        sort = tie_break
    elif order == search_pb2.SEARCH_ORDER_REACH:
        sort = [{"reposts": {"order": "desc", "missing": "_last"}}, *tie_break]
    else:
        raise SearchRequestError("order", f"unknown order {request.order}")
    return {
        "query": _body(_text_clauses(terms, _POST_FIELDS), filters, must_not),
        "sort": sort,
        "from_": page.offset,
        "size": page.size,
        "highlight": _highlight(
            {
                "title": {"number_of_fragments": 0},
                "text_simplified": {"fragment_size": _HIGHLIGHT_FRAGMENT_CHARS, "number_of_fragments": 3},
            }
        ),
    }


_LEVEL_RANK: Final = {name: number for name, number in common_pb2.WarningLevel.items() if number > 0}


def _by_level(query: dict[str, Any]) -> dict[str, Any]:
    """Score each event by its level's severity (levels are keywords, which sort alphabetically).

    Weights instead of a sort script: clusters without the painless module (our local stack) can run it too.
    An event without a level scores 1, below every level.
    """
    functions = [{"filter": {"term": {"level": name}}, "weight": rank + 1} for name, rank in _LEVEL_RANK.items()]
    return {"function_score": {"query": query, "functions": functions, "score_mode": "max", "boost_mode": "replace"}}


def event_search_body(
    request: search_pb2.SearchEventsRequest, page: Page, scope: SearchScope | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``AsyncElasticsearch.search`` over the events read alias, within ``scope``.

    Events merged into another are hidden: they are no longer updated and their posts live on in the target.
    """
    terms = parse_query_text(request.query)
    # A word matches the title or reasons as a phrase, or one of the event's keywords exactly.
    must = [
        {
            "bool": {
                "should": [
                    {"multi_match": {"query": term, "type": "phrase", "fields": list(_EVENT_FIELDS)}},
                    {"term": {"keywords": {"value": term, "boost": 2.0}}},
                ],
                "minimum_should_match": 1,
            }
        }
        for term in terms
    ]
    f = request.filter
    filters, must_not = _scope_filters(scope or SearchScope(), posts=False)
    if f.HasField("active"):
        active = _time_range("last_seen_at", "filter.active", f.active)
        if active:
            filters.append(active)
    if f.min_level:
        if f.min_level not in common_pb2.WarningLevel.values():
            raise SearchRequestError("filter.min_level", f"unknown level {f.min_level}")
        filters.append({"terms": {"level": [name for name, rank in _LEVEL_RANK.items() if rank >= f.min_level]}})
    if f.region_code:
        filters.append(_region_prefix(f.region_code, "filter.region_code"))
    if f.rising_only:
        filters.append({"term": {"rising": True}})
    must_not.append(
        {"bool": {"filter": [{"exists": {"field": "merged_into"}}], "must_not": [{"term": {"merged_into": ""}}]}}
    )
    order = request.order or search_pb2.SEARCH_ORDER_RELEVANCE
    tie_break = [{"last_seen_at": {"order": "desc", "missing": "_last"}}, {"id": {"order": "asc"}}]
    if order == search_pb2.SEARCH_ORDER_RELEVANCE:
        sort: list[Any] = [{"_score": {"order": "desc"}}, *tie_break]
    elif order == search_pb2.SEARCH_ORDER_NEWEST:
        sort = tie_break
    elif order == search_pb2.SEARCH_ORDER_REACH:
        sort = [{"_score": {"order": "desc"}}, {"post_count": {"order": "desc", "missing": "_last"}}, *tie_break]
    else:
        raise SearchRequestError("order", f"unknown order {request.order}")
    query = _body(must, filters, must_not)
    return {
        "query": _by_level(query) if order == search_pb2.SEARCH_ORDER_REACH else query,
        "sort": sort,
        "from_": page.offset,
        "size": page.size,
        "highlight": _highlight(
            {
                "title": {"number_of_fragments": 0},
                "reasons": {"fragment_size": _HIGHLIGHT_FRAGMENT_CHARS, "number_of_fragments": 2},
            }
        ),
    }
