from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import Rejected
from services.collector.sources import MastodonSource, SourceContext
from services.collector.sources._json import ShapeError
from services.collector.sources.mastodon import next_link, parse_statuses
from tests.services.collector.fakes import Collected, FakeTime, fixture_bytes, make_source, mock_fetcher

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
INSTANCE = "https://social.example"


def _source(**config: object) -> source_pb2.Source:
    return make_source(
        common_pb2.SOURCE_KIND_MASTODON, "md", INSTANCE, mastodon=source_pb2.MastodonConfig(**config), max_attempts=1
    )


def _items() -> list[post_pb2.Post | Rejected]:
    payload = json.loads(fixture_bytes("api/mastodon_tag.json"))
    return parse_statuses(payload, _source(), collected_at=NOW, origin="tag")


def test_boost_reply_counts_and_accounts() -> None:
    original, boost, reply, broken = _items()
    assert isinstance(original, post_pb2.Post) and isinstance(boost, post_pb2.Post)
    assert isinstance(reply, post_pb2.Post) and isinstance(broken, Rejected)
    assert original.id == "mastodon:md:112399999999999001"
    assert original.text == "清河县#反腐 通报：某局长被查"
    assert original.platform == "other.example" and original.language == "zh"
    assert (original.reposts, original.comments, original.likes) == (17, 4, 30)
    assert original.author.id == "100" and original.author.name == "记者" and original.author.followers == 12000
    assert original.author.is_verified  # a verified profile link
    assert list(original.media_urls) == ["https://files.other.example/a.png"]
    assert original.created_at.ToDatetime(UTC) == datetime(2024, 5, 3, 7, 0, tzinfo=UTC)
    # The boost: the booster's post, without text, pointing at the boosted status.
    assert boost.text == "" and boost.author.name == "转发者" and not boost.author.is_verified
    assert boost.parent_id == boost.root_id == original.id
    # The reply: points at what it answers; the content warning is its title; line breaks kept.
    assert reply.parent_id == original.id and not reply.root_id
    assert reply.title == "评论" and reply.text == "支持彻查\n希望公开结果"
    assert reply.author.name == "reader"  # no display name: the acct
    assert broken.reason == post_pb2.DEAD_LETTER_REASON_INVALID
    assert broken.message == "tag [2].created_at 'not a time' is not a time"


def test_error_answer_is_not_a_timeline() -> None:
    with pytest.raises(ShapeError, match="API error: Record not found"):
        parse_statuses({"error": "Record not found"}, _source(), collected_at=NOW, origin="x")


def test_next_link() -> None:
    header = (
        '<https://social.example/api/v1/timelines/tag/x?max_id=7>; rel="next", '
        '<https://social.example/api/v1/timelines/tag/x?min_id=9>; rel="prev"'
    )
    assert next_link(header) == "https://social.example/api/v1/timelines/tag/x?max_id=7"
    assert next_link('<https://a/?min_id=1>; rel="prev"') == "" and next_link("") == ""


async def test_adapter_pages_through_timelines_and_looks_up_accounts() -> None:
    requests: list[str] = []
    page = json.loads(fixture_bytes("api/mastodon_tag.json"))

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        path, params = request.url.path, request.url.params
        if path == "/api/v1/accounts/lookup":
            if params["acct"] == "reporter@other.example":
                return httpx.Response(200, json={"id": "100", "acct": params["acct"]})
            return httpx.Response(404, json={"error": "Record not found"})
        if path == "/api/v1/timelines/tag/反腐" and "max_id" not in params:
            link = f'<{INSTANCE}/api/v1/timelines/tag/%E5%8F%8D%E8%85%90?max_id=112400000000000003>; rel="next"'
            return httpx.Response(200, json=page[:2], headers={"Link": link})
        if path == "/api/v1/timelines/tag/反腐":
            return httpx.Response(200, json=[*page[2:], page[1]], headers={"Link": ""})
        if path == "/api/v1/accounts/100/statuses":
            return httpx.Response(200, json=[])
        return httpx.Response(500)

    time = FakeTime()
    collected = Collected()
    async with mock_fetcher(handler, time) as fetcher:
        adapter = MastodonSource(SourceContext(fetcher, now=time.now, secret={"md": "tok"}.get))
        outcome = await adapter.collect(
            _source(hashtags=["#反腐"], accounts=["@reporter@other.example", "ghost"], token_secret_name="md"),
            None,
            collected,
        )
    assert [r.split("?")[0].removeprefix(INSTANCE) for r in requests] == [
        "/api/v1/accounts/lookup",
        "/api/v1/accounts/lookup",
        "/api/v1/timelines/tag/%E5%8F%8D%E8%85%90",
        "/api/v1/timelines/tag/%E5%8F%8D%E8%85%90",
        "/api/v1/accounts/100/statuses",
    ]
    assert "limit=40" in requests[2] and "max_id=112400000000000003" in requests[3]
    assert [p.native_id for p in collected.posts] == [
        "112399999999999001",
        "112400000000000003",
        "112400000000000004",
        "112400000000000004",  # page two repeats it: the pipeline's dedupe drops it, not the adapter
    ]
    assert len(collected.rejected) == 1
    assert outcome.error is not None and outcome.error.startswith("1 request(s) failed, first: HTTP 404")
