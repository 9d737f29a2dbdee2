"""Post searches: words-aware ranking (``search_words``), PIT + ``search_after`` paging with signed tokens
(``search_paging``) and the charts (``search_aggs``), on top of the filters and scope of ``search_query``.

The filters, order and the caller's scope come from ``search_query.post_search_body`` run on the request without its
text and paging fields, so every rule there (validation, need-to-know scope) applies unchanged; this module replaces
the text part and the paging. Elasticsearch errors become the exceptions of ``gateway.search`` (imported late: that
module imports this one), and a PIT that expired or was closed becomes an invalid page token.

The event filter: the grader writes each post's live event id onto it (``services/grader/adapters/post_events.py``);
an event that later merged into another keeps its posts under its own id, so ``event_id`` = X also finds the posts
of the events merged into X (looked up in the events index, following chains of merges).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from google.protobuf.duration_pb2 import Duration
from qingfeng.elastic.words import WordSplitter
from qingfeng.v1 import search_pb2

from gateway.documents import post_from_source
from gateway.search_aggs import post_aggregations, post_aggs
from gateway.search_paging import PageTokens, PitPager
from gateway.search_query import SearchScope, parse_query_text, post_search_body, resolve_page
from gateway.search_words import POST_HIGHLIGHT, clean_highlights, post_highlight_query, post_text_query

__all__ = ["PostPage", "PostPages", "post_response"]

# Rounds of merged-into lookups (A merged into B merged into X) and events per round: merges are rare and shallow.
_MERGE_DEPTH: Final = 4
_MERGED_PER_ROUND: Final = 1000


class PostPage:
    """One page: the raw hits, total, whether it is a lower bound, the next token, took (ms) and the charts."""

    __slots__ = ("aggregations", "hits", "lower_bound", "next_page_token", "took_ms", "total")

    def __init__(
        self,
        hits: list[Mapping[str, Any]],
        *,
        total: int,
        lower_bound: bool,
        next_page_token: str,
        took_ms: int,
        aggregations: search_pb2.PostAggregations | None,
    ) -> None:
        self.hits = hits
        self.total = total
        self.lower_bound = lower_bound
        self.next_page_token = next_page_token
        self.took_ms = took_ms
        self.aggregations = aggregations


def _translate(err: Exception, what: str) -> Exception:
    """An Elasticsearch error as the gateway's search errors (``gateway.search.search_error``)."""
    from gateway.search import search_error

    return search_error(err, what)


def _unpaged(request: search_pb2.SearchPostsRequest) -> search_pb2.SearchPostsRequest:
    # The query without what changes from page to page (or is asked on the first page only).
    copy = search_pb2.SearchPostsRequest()
    copy.CopyFrom(request)
    copy.ClearField("page_token")
    copy.ClearField("aggregations")
    return copy


class PostPages:
    """Runs post searches against the posts read ``alias`` (see the module docstring)."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        alias: str,
        *,
        events_alias: str,
        tokens: PageTokens,
        splitter: WordSplitter,
        keep_alive: str = "2m",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._es = es
        self._events_alias = events_alias
        self._pager = PitPager(
            es, alias, tokens=tokens, translate=_translate, what="post search", keep_alive=keep_alive
        )
        self._splitter = splitter
        self._clock = clock

    def body(
        self,
        request: search_pb2.SearchPostsRequest,
        scope: SearchScope,
        *,
        size: int,
        origin: str,
        event_ids: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        """The search body (without ``pit`` and ``search_after``) of ``size`` hits; pure but for the splitter.

        ``event_ids``: the filter's event and those merged into it (default: the filter's event alone)."""
        terms = parse_query_text(request.query)
        plain = _unpaged(request)
        plain.ClearField("query")
        filters: list[dict[str, Any]] = []
        if plain.filter.event_id:
            filters.append({"terms": {"event_id": list(event_ids or (plain.filter.event_id,))}})
            plain.filter.ClearField("event_id")
        base = post_search_body(plain, resolve_page(plain, max_size=size), scope)
        filters.append(base["query"])
        scored = "_score" in base["sort"][0]
        filtered = post_text_query(terms, self._splitter, filters=filters, must_not=[], origin=origin, scored=scored)
        highlight = dict(POST_HIGHLIGHT)
        marks = post_highlight_query(terms, self._splitter)
        if marks is not None:
            highlight["highlight_query"] = marks
        body: dict[str, Any] = {"query": filtered, "sort": base["sort"], "size": size, "highlight": highlight}
        if request.HasField("aggregations") and not request.page_token:
            body["aggs"] = post_aggs(request.aggregations)
        return body

    async def search(
        self, request: search_pb2.SearchPostsRequest, scope: SearchScope, *, max_page_size: int
    ) -> PostPage:
        """One page of ``request`` within ``scope``; opens the PIT on the first page, closes it after the last."""
        plain = _unpaged(request)
        page = resolve_page(plain, max_size=max_page_size)
        cursor = self._pager.cursor(request.page_token, page.fingerprint)
        origin = cursor.origin if cursor else self._clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")
        events = await self._event_family(request.filter.event_id) if request.filter.event_id else ()
        body = self.body(request, scope, size=page.size + 1, origin=origin, event_ids=events)
        result = await self._pager.page(
            body, size=page.size, fingerprint=page.fingerprint, origin=origin, cursor=cursor
        )
        found = result.found
        total = found.get("hits", {}).get("total") or {}
        aggs = found.get("aggregations")
        return PostPage(
            result.hits,
            total=int(total.get("value", 0)),
            lower_bound=total.get("relation") == "gte",
            next_page_token=result.next_page_token,
            took_ms=int(found.get("took", 0)),
            aggregations=post_aggregations(aggs) if aggs is not None else None,
        )

    async def _event_family(self, event_id: str) -> tuple[str, ...]:
        """``event_id`` and every event merged into it, directly or through other merged events."""
        family = [event_id]
        frontier = [event_id]
        for _ in range(_MERGE_DEPTH):
            try:
                response = await self._es.search(
                    index=self._events_alias,
                    query={"terms": {"merged_into": frontier}},
                    size=_MERGED_PER_ROUND,
                    source=False,
                    ignore_unavailable=True,
                    allow_no_indices=True,
                )
            except (ApiError, TransportError) as err:
                raise _translate(err, "merged events lookup") from err
            frontier = [str(hit["_id"]) for hit in response.body["hits"]["hits"] if hit["_id"] not in family]
            if not frontier:
                break
            family += frontier
        return tuple(family)


def post_response(page: PostPage) -> search_pb2.SearchPostsResponse:
    """The protobuf response of ``page``: posts, scores, highlights as text (``search_words.clean_highlights``)."""
    took = Duration()
    took.FromMilliseconds(page.took_ms)
    response = search_pb2.SearchPostsResponse(
        hits=[
            search_pb2.PostHit(
                post=post_from_source(hit.get("_source") or {}),
                score=float(hit.get("_score") or 0.0),
                highlights=[
                    search_pb2.Highlight(field=field, fragments=fragments)
                    for field, fragments in clean_highlights(hit.get("highlight") or {})
                ],
            )
            for hit in page.hits
        ],
        total=page.total,
        total_is_lower_bound=page.lower_bound,
        next_page_token=page.next_page_token,
        took=took,
    )
    if page.aggregations is not None:
        response.aggregations.CopyFrom(page.aggregations)
    return response
