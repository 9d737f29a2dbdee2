"""Unit tests of the words-aware post search: the splitter, the query, highlights, signed page tokens, the charts."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from qingfeng.elastic import WordSplitter, default_splitter, join_fragment
from qingfeng.v1 import search_pb2

from gateway.search_aggs import aggregations_request, event_charts, post_aggregations, post_aggs
from gateway.search_paging import Cursor, PageTokens
from gateway.search_posts import PostPages
from gateway.search_query import SearchRequestError, SearchScope
from gateway.search_words import clean_highlights, post_text_query


@pytest.fixture(scope="module")
def splitter() -> WordSplitter:
    return default_splitter()


def test_words_keep_words_whole_and_drop_only_whitespace(splitter: WordSplitter) -> None:
    assert splitter.words("他接受贿赂") == ["他", "接受", "贿赂"], "受贿 is not a word of 接受贿赂"
    assert "受贿" in splitter.words("局长涉嫌受贿，收受好处费。")
    assert splitter.field("谣言  iPhone") == "谣言 iphone", "lower-cased, whitespace gone"
    assert "，" in splitter.words("受贿，好处费"), "punctuation stays a token: a phrase never spans it"


def test_join_fragment_removes_only_the_spaces_the_splitter_put_between_chinese() -> None:
    assert join_fragment("局长 涉嫌 <em>受贿</em> ， 收受") == "局长涉嫌<em>受贿</em>，收受"
    assert join_fragment("<em>谣言</em> iphone pro") == "<em>谣言</em> iphone pro"


def _clauses(query: dict[str, Any]) -> list[dict[str, Any]]:
    inner = query["function_score"]["query"]
    while "function_score" in inner:
        inner = inner["function_score"]["query"]
    return list(inner["bool"].get("should", []))


def test_one_word_matches_the_words_field_boosted_or_adjacent_characters(splitter: WordSplitter) -> None:
    query = post_text_query(
        ["受贿"], splitter, filters=[{"term": {"x": 1}}], must_not=[], origin="2025-01-01T00:00:00Z"
    )
    (clause,) = _clauses(query)
    should = clause["bool"]["should"]
    assert should[0] == {"match_phrase": {"words": {"query": "受贿", "boost": 3.0}}}
    assert {"match_phrase": {"text_simplified": {"query": "受贿"}}} in should
    boosts = query["function_score"]["functions"]
    assert any("gauss" in f and f["gauss"]["created_at"]["origin"] == "2025-01-01T00:00:00Z" for f in boosts)
    assert query["function_score"]["boost_mode"] == "multiply"


def test_two_words_rank_by_how_many_words_a_post_holds(splitter: WordSplitter) -> None:
    query = post_text_query(["受贿", "局长"], splitter, filters=[], must_not=[], origin="2025-01-01T00:00:00Z")
    outer = query["function_score"]
    assert outer["score_mode"] == "sum" and outer["boost_mode"] == "sum"
    assert [f["weight"] for f in outer["functions"]] == [1000.0, 1000.0]
    inner = outer["query"]["function_score"]["query"]["bool"]
    assert inner["minimum_should_match"] == 1 and len(inner["should"]) == 2, "either word matches; both rank first"


def test_no_words_is_every_post_within_the_filters(splitter: WordSplitter) -> None:
    query = post_text_query([], splitter, filters=[{"term": {"a": 1}}], must_not=[], origin="2025-01-01T00:00:00Z")
    assert "should" not in query["function_score"]["query"]["bool"]


def test_a_search_ordered_by_a_field_matches_the_same_posts_unscored(splitter: WordSplitter) -> None:
    ranked = post_text_query(["受贿", "局长"], splitter, filters=[{"term": {"a": 1}}], must_not=[], origin="o")
    plain = post_text_query(
        ["受贿", "局长"], splitter, filters=[{"term": {"a": 1}}], must_not=[], origin="o", scored=False
    )
    assert "function_score" not in json.dumps(plain), "no score is computed for a sort that ignores it"
    (term_filter, either) = plain["bool"]["filter"]
    assert term_filter == {"term": {"a": 1}}
    assert either == {"bool": {"should": _clauses(ranked), "minimum_should_match": 1}}, "either word, as ranked"


def test_an_unscored_search_highlights_the_same_words(splitter: WordSplitter) -> None:
    body = PostPages.__new__(PostPages)
    body._splitter = splitter  # body() needs only the splitter
    request = search_pb2.SearchPostsRequest(query="受贿 局长", order=search_pb2.SEARCH_ORDER_NEWEST)
    made = body.body(request, SearchScope(), size=10, origin="2025-01-01T00:00:00Z")
    assert "function_score" not in json.dumps(made["query"])
    marks = made["highlight"]["highlight_query"]["bool"]["should"]
    assert len(marks) == 2 and marks[0]["bool"]["should"][0]["match_phrase"]["words"]["query"] == "受贿"
    ranked = body.body(search_pb2.SearchPostsRequest(query="受贿"), SearchScope(), size=10, origin="o")
    assert "function_score" in ranked["query"]


def test_highlights_prefer_whole_words_and_read_as_text() -> None:
    found = {
        "words": ["局长 涉嫌 <em>受贿</em>"],
        "text_simplified": ["局长涉嫌<em>受</em><em>贿</em>"],
        "title": ["<em>受</em><em>贿</em>案"],
    }
    assert clean_highlights(found) == [("words", ["局长涉嫌<em>受贿</em>"]), ("title", ["<em>受贿</em>案"])]
    assert clean_highlights({"text_simplified": ["<em>谣</em><em>言</em>"]}) == [("text_simplified", ["<em>谣言</em>"])]


CURSOR = Cursor(pit="pit-1", after=(12.5, "2025-01-01T00:00:00Z", "p1", 7), fingerprint="f" * 16, origin="o", served=20)


def test_page_token_round_trips() -> None:
    tokens = PageTokens(b"k" * 32)
    assert tokens.decode(tokens.encode(CURSOR), "f" * 16) == CURSOR


def _payload(token: str) -> dict[str, Any]:
    text = token.partition(".")[0]
    loaded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return loaded


def _reencode(body: dict[str, Any], signature: str) -> str:
    text = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    return f"{text}.{signature}"


def test_a_tampered_or_foreign_token_is_invalid_argument() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode(CURSOR)
    forged = _payload(token)
    forged["after"] = [99.0, "2030-01-01T00:00:00Z", "zzz", 0]
    bad = [
        _reencode(forged, token.partition(".")[2]),  # payload changed, old signature
        PageTokens(b"x" * 32).encode(CURSOR),  # another key
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature changed
        "not-a-token",
        "",
    ]
    for candidate in bad[:-1]:
        with pytest.raises(SearchRequestError) as raised:
            tokens.decode(candidate, "f" * 16)
        assert raised.value.field == "page_token" and raised.value.reason == "ERROR_REASON_INVALID_PAGE_TOKEN"
    with pytest.raises(SearchRequestError):
        tokens.decode(token, "0" * 16)  # another query's token


def test_page_token_key_must_be_long_enough() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        PageTokens(b"short")


def test_chart_requests_are_validated() -> None:
    aggs = post_aggs(search_pb2.PostAggregationsRequest(interval="6h", top=80))
    assert aggs["histogram"]["date_histogram"]["fixed_interval"] == "6h"
    assert aggs["histogram"]["date_histogram"]["time_zone"] == "Asia/Shanghai"
    assert aggs["regions"]["terms"]["size"] == 50, "top is capped"
    assert post_aggs(search_pb2.PostAggregationsRequest())["histogram"]["date_histogram"]["calendar_interval"] == "1d"
    for bad, field in (
        ({"interval": "2w"}, "interval"),
        ({"time_zone": "Mars/Base"}, "time_zone"),
        ({"top": -1}, "top"),
    ):
        with pytest.raises(SearchRequestError) as raised:
            post_aggs(search_pb2.PostAggregationsRequest(**bad))
        assert raised.value.field == f"aggregations.{field}"
    assert aggregations_request({"q": "x"}) is None
    asked = aggregations_request({"aggs": "true", "interval": "1h", "top": "5"})
    assert asked == search_pb2.PostAggregationsRequest(interval="1h", top=5)
    with pytest.raises(SearchRequestError):
        aggregations_request({"aggs": "1", "top": "many"})


def test_chart_responses_become_protobuf() -> None:
    found = {
        "histogram": {"buckets": [{"key": 1735689600000, "doc_count": 3}, {"key": 1735776000000, "doc_count": 0}]},
        "source_kinds": {"buckets": [{"key": "SOURCE_KIND_WEIBO_API", "doc_count": 3}]},
        "authors": {"buckets": [{"key": "u1", "doc_count": 2, "name": {"buckets": [{"key": "热心网友"}]}}]},
    }
    charts = post_aggregations(found)
    assert [(b.start_time.ToJsonString(), b.count) for b in charts.histogram] == [
        ("2025-01-01T00:00:00Z", 3),
        ("2025-01-02T00:00:00Z", 0),
    ]
    assert [(b.key, b.label, b.count) for b in charts.authors] == [("u1", "热心网友", 2)]
    assert charts.source_kinds[0].key == "SOURCE_KIND_WEIBO_API" and not charts.regions


def test_event_charts_only_on_the_first_page_and_never_in_the_token() -> None:
    request = search_pb2.SearchEventsRequest(query="受贿", aggregations=search_pb2.PostAggregationsRequest())
    plain, body = event_charts(request, SearchScope())
    assert not plain.HasField("aggregations") and body is not None and body["size"] == 0
    assert set(body["aggs"]) == {"levels", "regions", "histogram"}
    request.page_token = "next"
    assert event_charts(request, SearchScope())[1] is None


def test_post_body_widens_the_event_filter_and_keeps_the_scope(splitter: WordSplitter) -> None:
    pages = PostPages(None, "p", events_alias="e", tokens=PageTokens.random(), splitter=splitter)  # type: ignore[arg-type]
    request = search_pb2.SearchPostsRequest(query="受贿", filter=search_pb2.PostFilter(event_id="E1"))
    body = pages.body(request, SearchScope(see_tips=False), size=21, origin="o", event_ids=("E1", "E0"))
    text = json.dumps(body, ensure_ascii=False)
    assert '{"terms": {"event_id": ["E1", "E0"]}}' in text
    assert '"term": {"event_id"' not in text, "the narrow filter of search_query is replaced, not added"
    assert "SOURCE_KIND_MANUAL_TIP" in text, "the caller's scope (no tips) still applies"
    assert body["size"] == 21 and "from_" not in body
