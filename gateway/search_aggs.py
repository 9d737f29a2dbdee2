"""Aggregations for the console's charts: the request part (pure) and the response part (Elasticsearch → protobuf).

Posts: a date histogram of ``created_at`` and the largest source kinds, regions, authors, corruption categories and
events. Events: levels, regions and a date histogram of ``last_seen_at``. Counts cover every match of the query and
filters (and the caller's scope, which the query already holds), not only the page.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.v1 import search_pb2

from gateway.search_query import SearchRequestError, SearchScope, event_search_body, resolve_page

__all__ = [
    "aggregations_request",
    "event_aggregations",
    "event_aggs",
    "event_charts",
    "post_aggregations",
    "post_aggs",
]

_DEFAULT_INTERVAL: Final = "1d"
_DEFAULT_ZONE: Final = "Asia/Shanghai"
_DEFAULT_TOP: Final = 10
_MAX_TOP: Final = 50
_CALENDAR: Final = frozenset({"1m", "1h", "1d", "1w", "1M", "1q", "1y"})
_FIXED: Final = re.compile(r"^[1-9]\d{0,3}(s|m|h|d)$")
_FIELD: Final = "aggregations"


def _histogram(field: str, request: search_pb2.PostAggregationsRequest) -> dict[str, Any]:
    interval = request.interval or _DEFAULT_INTERVAL
    zone = request.time_zone or _DEFAULT_ZONE
    if interval in _CALENDAR:
        spec: dict[str, Any] = {"calendar_interval": interval}
    elif _FIXED.match(interval):
        spec = {"fixed_interval": interval}
    else:
        raise SearchRequestError(f"{_FIELD}.interval", f"use 1h, 1d, 1w, 1M or a width such as 30m; got {interval!r}")
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SearchRequestError(f"{_FIELD}.time_zone", f"not an IANA time zone: {zone!r}") from None
    return {"date_histogram": {"field": field, **spec, "time_zone": zone, "min_doc_count": 0}}


def _top(request: search_pb2.PostAggregationsRequest) -> int:
    if request.top < 0:
        raise SearchRequestError(f"{_FIELD}.top", f"must not be negative, got {request.top}")
    return min(request.top or _DEFAULT_TOP, _MAX_TOP)


def post_aggs(request: search_pb2.PostAggregationsRequest) -> dict[str, Any]:
    """The ``aggs`` of a post search asking for ``request``."""
    top = _top(request)
    return {
        "histogram": _histogram("created_at", request),
        "source_kinds": {"terms": {"field": "source_kind", "size": 20}},
        "regions": {"terms": {"field": "region_codes", "size": top}},
        "authors": {
            "terms": {"field": "author.id", "size": top},
            "aggs": {"name": {"terms": {"field": "author.name.keyword", "size": 1}}},
        },
        "categories": {"terms": {"field": "corruption_categories", "size": top}},
        "events": {"terms": {"field": "event_id", "size": top}},
    }


def event_aggs(request: search_pb2.PostAggregationsRequest) -> dict[str, Any]:
    """The ``aggs`` of an event search asking for ``request``."""
    return {
        "levels": {"terms": {"field": "level", "size": 10}},
        "regions": {"terms": {"field": "region_codes", "size": _top(request)}},
        "histogram": _histogram("last_seen_at", request),
    }


_TRUE: Final = frozenset({"1", "true", "yes", "on"})


def aggregations_request(params: Mapping[str, str]) -> search_pb2.PostAggregationsRequest | None:
    """The charts asked for by HTTP query parameters ``aggs=true&interval=1h&time_zone=Asia/Shanghai&top=10``."""
    if params.get("aggs", "").lower() not in _TRUE:
        return None
    raw_top = params.get("top", "") or "0"
    if not raw_top.isdigit():
        raise SearchRequestError("top", f"must be a whole number, got {raw_top!r}")
    return search_pb2.PostAggregationsRequest(
        interval=params.get("interval", ""), time_zone=params.get("time_zone", ""), top=int(raw_top)
    )


def _counts(agg: Mapping[str, Any] | None) -> list[search_pb2.CountBucket]:
    buckets = (agg or {}).get("buckets") or []
    out = []
    for bucket in buckets:
        names = (bucket.get("name") or {}).get("buckets") or []
        label = str(names[0]["key"]) if names else ""
        out.append(search_pb2.CountBucket(key=str(bucket["key"]), label=label, count=int(bucket["doc_count"])))
    return out


def _times(agg: Mapping[str, Any] | None) -> list[search_pb2.TimeBucket]:
    out = []
    for bucket in (agg or {}).get("buckets") or []:
        start = Timestamp()
        start.FromDatetime(datetime.fromtimestamp(int(bucket["key"]) / 1000, tz=UTC))
        out.append(search_pb2.TimeBucket(start_time=start, count=int(bucket["doc_count"])))
    return out


def post_aggregations(found: Mapping[str, Any]) -> search_pb2.PostAggregations:
    """The ``aggregations`` of a post search response as protobuf."""
    return search_pb2.PostAggregations(
        histogram=_times(found.get("histogram")),
        source_kinds=_counts(found.get("source_kinds")),
        regions=_counts(found.get("regions")),
        authors=_counts(found.get("authors")),
        categories=_counts(found.get("categories")),
        events=_counts(found.get("events")),
    )


def event_aggregations(found: Mapping[str, Any]) -> search_pb2.EventAggregations:
    """The ``aggregations`` of an event search response as protobuf."""
    return search_pb2.EventAggregations(
        levels=_counts(found.get("levels")),
        regions=_counts(found.get("regions")),
        histogram=_times(found.get("histogram")),
    )


def event_charts(
    request: search_pb2.SearchEventsRequest, scope: SearchScope
) -> tuple[search_pb2.SearchEventsRequest, dict[str, Any] | None]:
    """``request`` without its aggregations (so page tokens do not depend on them) and, when it asked for charts on
    its first page, the body of a hit-less search computing them with the same query, filters and scope."""
    plain = search_pb2.SearchEventsRequest()
    plain.CopyFrom(request)
    plain.ClearField("aggregations")
    if not request.HasField("aggregations") or request.page_token:
        return plain, None
    body = event_search_body(plain, resolve_page(plain, max_size=1), scope)
    return plain, {"query": body["query"], "size": 0, "aggs": event_aggs(request.aggregations)}
