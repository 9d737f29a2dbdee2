"""Search requests to Elasticsearch bodies, and hits back to protobuf: pure functions, no cluster."""

from __future__ import annotations

from typing import Any

import pytest
from qingfeng.v1 import common_pb2, post_pb2, search_pb2

from gateway.documents import event_from_source, post_from_source
from gateway.search_query import (
    DEFAULT_PAGE_SIZE,
    MAX_RESULT_WINDOW,
    SearchRequestError,
    SearchScope,
    event_search_body,
    next_page_token,
    parse_query_text,
    post_search_body,
    resolve_page,
)


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("", ()),
        ("  受贿  ", ("受贿",)),
        ("受賄 貪污", ("受贿", "贪污")),  # traditional folds to simplified, like text_simplified
        ('"住建局 局长" 受贿', ("住建局 局长", "受贿")),
        ("“纪委监委”  「通报」", ("纪委监委", "通报")),
        ("ＡＢＣ受贿 受贿", ("abc受贿", "受贿")),  # full-width folds; repeated words count once
    ],
)
def test_query_text_is_split_into_words_and_phrases(text: str, terms: tuple[str, ...]) -> None:
    folded = tuple(t.lower() for t in parse_query_text(text))
    assert folded == terms


def test_query_text_limits() -> None:
    with pytest.raises(SearchRequestError, match="query: at most 256 characters"):
        parse_query_text("受" * 257)
    with pytest.raises(SearchRequestError, match="at most 16 words"):
        parse_query_text(" ".join(f"词{i}" for i in range(17)))


def test_page_size_defaults_clamps_and_refuses_negatives() -> None:
    assert resolve_page(search_pb2.SearchPostsRequest(), max_size=100).size == DEFAULT_PAGE_SIZE
    assert resolve_page(search_pb2.SearchPostsRequest(page_size=5000), max_size=100).size == 100
    with pytest.raises(SearchRequestError) as err:
        resolve_page(search_pb2.SearchPostsRequest(page_size=-1), max_size=100)
    assert err.value.field == "page_size"


def test_page_tokens_round_trip_and_belong_to_their_query() -> None:
    request = search_pb2.SearchPostsRequest(query="受贿", page_size=10)
    page = resolve_page(request, max_size=100)
    token = next_page_token(page, returned=10, total=35)
    assert token and "受贿" not in token
    follow = search_pb2.SearchPostsRequest(query="受贿", page_size=20, page_token=token)
    assert resolve_page(follow, max_size=100).offset == 10, "another page size may continue the same query"
    for other in (
        search_pb2.SearchPostsRequest(query="贪污", page_token=token),
        search_pb2.SearchEventsRequest(query="受贿", page_token=token),
        search_pb2.SearchPostsRequest(query="受贿", page_token="bm90LWEtdG9rZW4"),
        search_pb2.SearchPostsRequest(query="受贿", page_token="%%%"),
    ):
        with pytest.raises(SearchRequestError) as err:
            resolve_page(other, max_size=100)
        assert err.value.reason == "ERROR_REASON_INVALID_PAGE_TOKEN"


def test_no_next_page_on_the_last_page_or_beyond_the_result_window() -> None:
    page = resolve_page(search_pb2.SearchPostsRequest(page_size=10), max_size=100)
    assert next_page_token(page, returned=10, total=10) == ""
    assert next_page_token(page, returned=7, total=7) == ""
    assert next_page_token(page, returned=10, total=MAX_RESULT_WINDOW * 3) != ""


def _filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    filters: list[dict[str, Any]] = body["query"]["bool"]["filter"]
    return filters


def test_post_body_matches_phrases_on_the_cjk_fields_and_highlights() -> None:
    request = search_pb2.SearchPostsRequest(query="受贿 好处费")
    body = post_search_body(request, resolve_page(request, max_size=100))
    must = body["query"]["bool"]["must"]
    assert [m["multi_match"]["query"] for m in must] == ["受贿", "好处费"]
    assert all(m["multi_match"]["type"] == "phrase" for m in must)
    assert set(must[0]["multi_match"]["fields"]) == {"title^2", "text_simplified"}
    assert body["highlight"]["encoder"] == "html"
    assert set(body["highlight"]["fields"]) == {"title", "text_simplified"}
    assert body["sort"][0] == {"_score": {"order": "desc"}}
    # Duplicates are hidden unless asked for.
    assert body["query"]["bool"]["must_not"]


def test_post_filters() -> None:
    start = common_pb2.TimeRange()
    start.start_time.FromJsonString("2025-03-01T00:00:00Z")
    request = search_pb2.SearchPostsRequest(
        filter=search_pb2.PostFilter(
            created=start,
            source_kinds=[common_pb2.SOURCE_KIND_RSS],
            region_code="330100",
            min_relevance=0.5,
            categories=[post_pb2.CORRUPTION_CATEGORY_BRIBERY],
            media_only=True,
            include_duplicates=True,
        ),
        order=search_pb2.SEARCH_ORDER_NEWEST,
    )
    body = post_search_body(request, resolve_page(request, max_size=100), SearchScope(see_tips=True))
    assert body["query"]["bool"]["must"] == [{"match_all": {}}]
    assert _filters(body) == [
        {"range": {"created_at": {"gte": "2025-03-01T00:00:00Z"}}},
        {"terms": {"source_kind": ["SOURCE_KIND_RSS"]}},
        {"prefix": {"region_codes": "3301"}},
        {"range": {"relevance": {"gte": 0.5}}},
        {"terms": {"corruption_categories": ["CORRUPTION_CATEGORY_BRIBERY"]}},
        {"term": {"author.is_media": True}},
    ]
    assert body["query"]["bool"]["must_not"] == []
    assert body["sort"][0] == {"created_at": {"order": "desc", "missing": "_last"}}


@pytest.mark.parametrize(
    ("post_filter", "field"),
    [
        (search_pb2.PostFilter(region_code="3301"), "filter.region_code"),
        (search_pb2.PostFilter(min_relevance=1.5), "filter.min_relevance"),
        (search_pb2.PostFilter(source_kinds=[common_pb2.SOURCE_KIND_UNSPECIFIED]), "filter.source_kinds"),
    ],
)
def test_bad_post_filters_name_their_field(post_filter: search_pb2.PostFilter, field: str) -> None:
    request = search_pb2.SearchPostsRequest(filter=post_filter)
    with pytest.raises(SearchRequestError) as err:
        post_search_body(request, resolve_page(request, max_size=100))
    assert err.value.field == field


def test_reversed_time_range_is_refused() -> None:
    span = common_pb2.TimeRange()
    span.start_time.FromJsonString("2025-03-02T00:00:00Z")
    span.end_time.FromJsonString("2025-03-01T00:00:00Z")
    request = search_pb2.SearchPostsRequest(filter=search_pb2.PostFilter(created=span))
    with pytest.raises(SearchRequestError, match=r"filter\.created"):
        post_search_body(request, resolve_page(request, max_size=100))


def test_province_code_covers_its_cities() -> None:
    request = search_pb2.SearchEventsRequest(filter=search_pb2.EventFilter(region_code="330000"))
    body = event_search_body(request, resolve_page(request, max_size=100))
    assert {"prefix": {"region_codes": "33"}} in _filters(body)


def test_event_body_levels_and_reach_order() -> None:
    request = search_pb2.SearchEventsRequest(
        query="受贿",
        filter=search_pb2.EventFilter(min_level=common_pb2.WARNING_LEVEL_ORANGE, rising_only=True),
        order=search_pb2.SEARCH_ORDER_REACH,
    )
    body = event_search_body(request, resolve_page(request, max_size=100))
    filters = body["query"]["function_score"]["query"]["bool"]["filter"]
    assert {"terms": {"level": ["WARNING_LEVEL_ORANGE", "WARNING_LEVEL_RED"]}} in filters
    assert {"term": {"rising": True}} in filters
    scored = body["query"]["function_score"]
    weights = {f["filter"]["term"]["level"]: f["weight"] for f in scored["functions"]}
    assert weights["WARNING_LEVEL_RED"] > weights["WARNING_LEVEL_ORANGE"] > weights["WARNING_LEVEL_BLUE"] > 1
    assert body["sort"][:2] == [{"_score": {"order": "desc"}}, {"post_count": {"order": "desc", "missing": "_last"}}]
    should = scored["query"]["bool"]["must"][0]["bool"]["should"]
    assert {"term": {"keywords": {"value": "受贿", "boost": 2.0}}} in should


def test_post_from_proto_json_source() -> None:
    post = post_from_source(
        {
            "id": "p1",
            "source_kind": "SOURCE_KIND_RSS",
            "author": {"name": "网友", "followers": "12"},
            "created_at": "2025-03-01T08:30:00Z",
            "enrichment": {
                "relevance": 0.8,
                "corruption_terms": [{"term": "受贿", "category": "CORRUPTION_CATEGORY_BRIBERY"}],
            },
            "corruption_categories": ["CORRUPTION_CATEGORY_BRIBERY"],  # flattened extra: not a Post field
            "event_id": "e1",
        }
    )
    assert post.id == "p1" and post.source_kind == common_pb2.SOURCE_KIND_RSS
    assert post.author.followers == 12
    assert post.enrichment.corruption_terms[0].category == post_pb2.CORRUPTION_CATEGORY_BRIBERY


def test_post_from_flattened_source_is_forgiving() -> None:
    post = post_from_source(
        {
            "id": "p2",
            "source_kind": "weibo_api",  # lower-case short name
            "created_at": 1740817800000,  # epoch milliseconds
            "collected_at": "not a time",  # skipped, the hit survives
            "region_codes": ["330000", "330100"],
            "region_names": ["浙江省", "杭州市"],
            "corruption_terms": ["受贿"],
            "relevance": 0.7,
            "simhash": "00000000000000ff",
            "duplicate_of": "p1",
        }
    )
    assert post.source_kind == common_pb2.SOURCE_KIND_WEIBO_API
    assert post.created_at.ToJsonString() == "2025-03-01T08:30:00Z"
    assert not post.HasField("collected_at")
    assert [(r.code, r.name) for r in post.enrichment.regions] == [("330000", "浙江省"), ("330100", "杭州市")]
    assert [t.term for t in post.enrichment.corruption_terms] == ["受贿"]
    assert post.enrichment.relevance == pytest.approx(0.7)
    assert (post.dedupe.simhash, post.dedupe.duplicate_of) == (255, "p1")


def test_event_from_source() -> None:
    event = event_from_source({"id": "e1", "level": "orange", "post_count": 3, "region_codes": ["330100"]})
    assert event.level == common_pb2.WARNING_LEVEL_ORANGE
    assert event.post_count == 3
    assert [r.code for r in event.regions] == ["330100"]


def test_tips_are_excluded_unless_the_scope_may_see_them() -> None:
    request = search_pb2.SearchPostsRequest(
        filter=search_pb2.PostFilter(source_kinds=[common_pb2.SOURCE_KIND_MANUAL_TIP], include_duplicates=True)
    )
    page = resolve_page(request, max_size=100)
    no_tips = {"terms": {"source_kind": ["SOURCE_KIND_MANUAL_TIP"]}}
    # Asking for tips explicitly does not help: the exclusion is added beside the request's own filter.
    for body in (post_search_body(request, page), post_search_body(request, page, SearchScope(see_tips=False))):
        assert no_tips in body["query"]["bool"]["must_not"]
    assert no_tips not in post_search_body(request, page, SearchScope(see_tips=True))["query"]["bool"]["must_not"]


def test_scope_limits_regions_and_sources_on_top_of_the_request() -> None:
    request = search_pb2.SearchPostsRequest(filter=search_pb2.PostFilter(region_code="110000"))
    scope = SearchScope(see_tips=True, region_codes=("330000", "320100"), source_ids=("weibo-zj",))
    body = post_search_body(request, resolve_page(request, max_size=100), scope)
    filters = _filters(body)
    assert {
        "bool": {
            "should": [{"prefix": {"region_codes": "33"}}, {"prefix": {"region_codes": "3201"}}],
            "minimum_should_match": 1,
        }
    } in filters
    assert {"terms": {"source_id": ["weibo-zj"]}} in filters
    assert {"prefix": {"region_codes": "11"}} in filters, "the request's own region still applies (AND)"
    events = search_pb2.SearchEventsRequest()
    event_filters = _filters(event_search_body(events, resolve_page(events, max_size=100), scope))
    assert event_filters[0]["bool"]["should"][0] == {"prefix": {"region_codes": "33"}}
