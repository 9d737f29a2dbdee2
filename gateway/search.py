"""The console's search: ``SearchService`` over the posts and events read aliases of Elasticsearch.

``Searcher`` runs a request against Elasticsearch and returns the protobuf response; the gRPC servicer and the HTTP
routes (``http.py``) both call it, so the two entries cannot drift. Errors:

- ``SearchRequestError`` (``search_query.py``): a malformed request -> ``INVALID_ARGUMENT`` with
  ``google.rpc.ErrorInfo`` and ``google.rpc.BadRequest`` naming the field (HTTP 400);
- ``SearchUnavailable``: Elasticsearch does not answer or is overloaded -> ``UNAVAILABLE`` (HTTP 503), safe to retry;
- ``SearchFailed``: Elasticsearch refused us for a reason that is ours (credentials, mapping, a bug) ->
  ``INTERNAL`` (HTTP 500).

Messages never carry Elasticsearch's own text (index names, analyser or cluster details): the log has it.

Posts and events page alike: a point in time plus ``search_after``, with signed page tokens (``search_paging``); a
forged, altered or foreign token, or one whose point in time expired, is ``INVALID_ARGUMENT`` (HTTP 400).

Every search runs within the caller's ``SearchScope`` (its access policy): tips only for ``see_tips``, and the
regions or sources its policy limits it to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import grpc
from elasticsearch import ApiError, AsyncElasticsearch, TransportError
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from qingfeng.elastic import IndexNames, default_splitter
from qingfeng.v1 import search_pb2, search_pb2_grpc

from gateway.documents import event_from_source
from gateway.interceptors import current_identity
from gateway.search_aggs import event_aggregations, event_charts
from gateway.search_paging import PageTokens, PitPager
from gateway.search_posts import PostPages, post_response
from gateway.search_query import (
    SearchRequestError,
    SearchScope,
    event_search_body,
    resolve_page,
)

__all__ = [
    "SearchFailed",
    "SearchRequestError",
    "SearchServicer",
    "SearchUnavailable",
    "Searcher",
    "abort_invalid_argument",
    "search_error",
]

_log = logging.getLogger(__name__)

_ERROR_DOMAIN: Final = "qingfeng.v1"


# Elasticsearch statuses that mean "busy or briefly away": the caller may retry.
_RETRYABLE_STATUSES: Final = frozenset({429, 502, 503, 504})


class SearchUnavailable(Exception):
    """Elasticsearch did not answer (connection refused, timeout, overloaded, 502-504): retry with backoff."""


class SearchFailed(Exception):
    """Elasticsearch refused the gateway itself (authentication, a missing mapping, our bug): not the caller's fault."""


def _highlights(hit: Mapping[str, Any]) -> list[search_pb2.Highlight]:
    found = hit.get("highlight") or {}
    return [search_pb2.Highlight(field=str(field), fragments=[str(f) for f in frags]) for field, frags in found.items()]


def _took(body: Mapping[str, Any]) -> Duration:
    took = Duration()
    took.FromMilliseconds(int(body.get("took", 0)))
    return took


def _total(body: Mapping[str, Any]) -> tuple[int, bool]:
    total = body.get("hits", {}).get("total") or {}
    return int(total.get("value", 0)), total.get("relation") == "gte"


def _root_cause(body: Any) -> str | None:
    try:
        cause = body["error"]["root_cause"][0]
        return f"{cause['type']}: {cause['reason']}"
    except (KeyError, IndexError, TypeError):
        return None


def search_error(err: Exception, what: str) -> Exception:
    """An Elasticsearch error raised while doing ``what``, as one of this module's errors (logged with its cause)."""
    if isinstance(err, ApiError):
        cause = _root_cause(err.body) or str(err.message)
        if err.status_code == 400:
            _log.warning("%s rejected: %s", what, cause)
            return SearchRequestError(
                "query", "the search cluster cannot run this query; use fewer or simpler words and filters"
            )
        _log.error("%s failed with HTTP %s: %s", what, err.status_code, cause)
        if err.status_code in _RETRYABLE_STATUSES:
            return SearchUnavailable("search cluster unavailable; retry later")
        return SearchFailed("search failed on the server side; the gateway logged the cause")
    _log.warning("%s failed: %s", what, err)
    return SearchUnavailable("search cluster unavailable; retry later")


class Searcher:
    """Searches the read aliases of one index prefix; pages are at most ``max_page_size`` hits."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        index_prefix: str,
        *,
        max_page_size: int = 100,
        page_tokens: PageTokens | None = None,
        pit_keep_alive: str = "2m",
    ) -> None:
        self._es = es
        self._posts = IndexNames(index_prefix, "posts").read_alias
        self._events = IndexNames(index_prefix, "events").read_alias
        self._max_page_size = max_page_size
        tokens = page_tokens or PageTokens.random()
        # Events: PIT + search_after paging with the same signed tokens as posts (their fingerprints differ).
        self._event_pages = PitPager(
            es, self._events, tokens=tokens, translate=search_error, what="event search", keep_alive=pit_keep_alive
        )
        # Posts: words-aware ranking, PIT + search_after paging with signed tokens, charts (search_posts.py).
        self._post_pages = PostPages(
            es,
            self._posts,
            events_alias=self._events,
            tokens=tokens,
            splitter=default_splitter(),
            keep_alive=pit_keep_alive,
        )

    async def _search(self, index: str, body: dict[str, Any]) -> Mapping[str, Any]:
        try:
            # A family nobody has written yet has no read alias: that is an empty result, not an error.
            response = await self._es.search(index=index, ignore_unavailable=True, allow_no_indices=True, **body)
        except (ApiError, TransportError) as err:
            raise search_error(err, f"search on {index}") from err
        found: Mapping[str, Any] = response.body
        return found

    async def search_posts(
        self, request: search_pb2.SearchPostsRequest, scope: SearchScope | None = None
    ) -> search_pb2.SearchPostsResponse:
        """Posts matching ``request`` within ``scope`` (default: the narrowest, no tips)."""
        page = await self._post_pages.search(request, scope or SearchScope(), max_page_size=self._max_page_size)
        return post_response(page)

    async def search_events(
        self, request: search_pb2.SearchEventsRequest, scope: SearchScope | None = None
    ) -> search_pb2.SearchEventsResponse:
        """Events matching ``request`` within ``scope``, one page of a point in time (see the module docstring)."""
        scope = scope or SearchScope()
        request, charts = event_charts(request, scope)  # search_aggs.py; charts on the first page only
        plain = search_pb2.SearchEventsRequest()
        plain.CopyFrom(request)
        plain.ClearField("page_token")
        page = resolve_page(plain, max_size=self._max_page_size)
        cursor = self._event_pages.cursor(request.page_token, page.fingerprint)
        body = event_search_body(plain, page, scope)
        del body["from_"]  # the page starts after the cursor's sort values, never at an offset
        result = await self._event_pages.page(
            body, size=page.size, fingerprint=page.fingerprint, origin=cursor.origin if cursor else "", cursor=cursor
        )
        hits = result.hits
        total, lower_bound = _total(result.found)
        common: dict[str, Any] = {
            "total": total,
            "total_is_lower_bound": lower_bound,
            "next_page_token": result.next_page_token,
            "took": _took(result.found),
        }
        if charts is not None:
            found = await self._search(self._events, charts)
            common["aggregations"] = event_aggregations(found.get("aggregations") or {})
        return search_pb2.SearchEventsResponse(
            hits=[
                search_pb2.EventHit(
                    event=event_from_source(hit.get("_source") or {}),
                    score=float(hit.get("_score") or 0.0),
                    highlights=_highlights(hit),
                )
                for hit in hits
            ],
            **common,
        )


def invalid_argument_status(err: SearchRequestError) -> status_pb2.Status:
    """``google.rpc.Status`` for a malformed request: ErrorInfo (reason, field) and BadRequest (the violation)."""
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(err))
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason=err.reason, domain=_ERROR_DOMAIN, metadata={"field": err.field})
    )
    status.details.add().Pack(
        error_details_pb2.BadRequest(
            field_violations=[error_details_pb2.BadRequest.FieldViolation(field=err.field, description=err.description)]
        )
    )
    return status


async def abort_invalid_argument(context: grpc.aio.ServicerContext, err: SearchRequestError) -> None:
    status = rpc_status.to_status(invalid_argument_status(err))
    await context.abort(status.code, status.details, status.trailing_metadata)


async def _abort_unavailable(context: grpc.aio.ServicerContext, err: SearchUnavailable) -> None:
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=str(err))
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(reason="ERROR_REASON_DEPENDENCY_UNAVAILABLE", domain=_ERROR_DOMAIN)
    )
    grpc_status = rpc_status.to_status(status)
    await context.abort(grpc_status.code, grpc_status.details, grpc_status.trailing_metadata)


def _scope() -> SearchScope:
    """The calling identity's scope (the guard set it); the narrowest scope if somehow there is none."""
    identity = current_identity.get()
    return identity.search_scope if identity is not None else SearchScope()


class SearchServicer(search_pb2_grpc.SearchServiceServicer):
    """Thin gRPC face of ``Searcher``: request in, response or status out."""

    def __init__(self, searcher: Searcher) -> None:
        self._searcher = searcher

    async def SearchPosts(
        self, request: search_pb2.SearchPostsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchPostsResponse:
        try:
            return await self._searcher.search_posts(request, _scope())
        except SearchRequestError as err:
            await abort_invalid_argument(context, err)
        except SearchUnavailable as err:
            await _abort_unavailable(context, err)
        except SearchFailed as err:
            await context.abort(grpc.StatusCode.INTERNAL, str(err))
        raise AssertionError("unreachable: abort raises")

    async def SearchEvents(
        self, request: search_pb2.SearchEventsRequest, context: grpc.aio.ServicerContext
    ) -> search_pb2.SearchEventsResponse:
        try:
            return await self._searcher.search_events(request, _scope())
        except SearchRequestError as err:
            await abort_invalid_argument(context, err)
        except SearchUnavailable as err:
            await _abort_unavailable(context, err)
        except SearchFailed as err:
            await context.abort(grpc.StatusCode.INTERNAL, str(err))
        raise AssertionError("unreachable: abort raises")
