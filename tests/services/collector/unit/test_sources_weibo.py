from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import Rejected
from services.collector.sources import SourceContext, WeiboSource, secrets_from_dir
from services.collector.sources._json import ShapeError
from services.collector.sources.weibo import parse_statuses
from tests.services.collector.fakes import Collected, FakeTime, fixture_bytes, make_source, mock_fetcher

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
API = "https://api.weibo.example/2/"


def _source(**config: object) -> source_pb2.Source:
    return make_source(
        common_pb2.SOURCE_KIND_WEIBO_API, "wb", API, weibo_api=source_pb2.WeiboApiConfig(**config), max_attempts=1
    )


def _items() -> list[post_pb2.Post | Rejected]:
    payload = json.loads(fixture_bytes("api/weibo_statuses.json"))
    return parse_statuses(payload, _source(), collected_at=NOW, origin="fixture")


def test_statuses_reposts_and_originals() -> None:
    posts = [i for i in _items() if isinstance(i, post_pb2.Post)]
    original, repost, orphan = posts
    assert original.id == "weibo:wb:11488058246" and original.native_id == "11488058246"
    assert original.url == "https://weibo.com/1404376560/11488058246" and original.platform == "weibo.com"
    assert original.text == "求关注#清河# 某局长的车天天停在酒店门口"  # the link markup is gone
    assert original.created_at.ToDatetime(UTC) == datetime(2011, 5, 31, 9, 46, 55, tzinfo=UTC)
    assert (original.reposts, original.comments, original.likes) == (8, 9, 2)
    assert original.author.id == "1404376560" and original.author.name == "清河网友"
    assert original.author.followers == 1204 and not original.author.is_verified
    assert list(original.media_urls) == ["http://ww1.sinaimg.example/thumbnail/a.jpg"]
    assert not original.parent_id
    # The repost points at the original, which is emitted once although it came twice (standalone and embedded).
    assert repost.parent_id == repost.root_id == original.id
    assert repost.author.is_verified and repost.author.is_media and repost.author.followers == 880000
    # A repost of a deleted original keeps the link to it; the deleted original itself is not a post.
    assert orphan.parent_id == "weibo:wb:11480000000"


def test_broken_statuses_are_rejected_one_by_one() -> None:
    rejects = [i for i in _items() if isinstance(i, Rejected)]
    assert [r.reason for r in rejects] == [post_pb2.DEAD_LETTER_REASON_INVALID] * 3
    assert rejects[0].message == "fixture statuses[3].user is NoneType, expected an object"
    assert rejects[1].message == "fixture statuses[4].created_at '昨天下午' is not a time"
    assert rejects[2].message == "fixture statuses[5] is str, expected an object"
    assert json.loads(rejects[0].payload)["text"] == "没有作者的微博"


@pytest.mark.parametrize("payload", [{"error": "expired_token", "error_code": 21327}, {"statuses": "x"}, 42])
def test_answers_that_are_not_status_lists(payload: object) -> None:
    with pytest.raises(ShapeError):
        parse_statuses(payload, _source(), collected_at=NOW, origin="x")


async def test_adapter_queries_with_token_in_header() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("user_timeline.json"):
            return httpx.Response(200, content=fixture_bytes("api/weibo_statuses.json"))
        return httpx.Response(200, text="{not json")

    time = FakeTime()
    collected = Collected()
    secrets = {"weibo-token": "s3cret\n"}
    async with mock_fetcher(handler, time) as fetcher:
        adapter = WeiboSource(SourceContext(fetcher, now=time.now, secret=secrets.get))
        outcome = await adapter.collect(
            _source(user_ids=["1404376560"], keywords=["清河"], page_size=20, token_secret_name="weibo-token"),
            None,
            collected,
        )
    timeline, search = requests
    assert timeline.url.params["uid"] == "1404376560" and timeline.url.params["count"] == "20"
    assert search.url.path == "/2/search/topics.json" and search.url.params["q"] == "清河"
    assert all(r.headers["authorization"] == "OAuth2 s3cret" for r in requests)
    assert all("s3cret" not in str(r.url) for r in requests)
    assert len(collected.posts) == 3 and len(collected.rejected) == 4
    malformed = collected.rejected[-1]
    assert malformed.reason == post_pb2.DEAD_LETTER_REASON_MALFORMED and malformed.payload == b"{not json"
    assert outcome.error is not None and outcome.error.startswith("1 of 2 queries failed")


async def test_adapter_without_queries_or_secret() -> None:
    async with mock_fetcher(lambda r: httpx.Response(500), FakeTime()) as fetcher:
        adapter = WeiboSource(SourceContext(fetcher))
        assert (await adapter.collect(_source(), None, Collected())).error == (
            "weibo source has neither user_ids nor keywords"
        )
        missing = await adapter.collect(_source(keywords=["x"], token_secret_name="nope"), None, Collected())
    assert missing.error == "secret 'nope' not found"


def test_secrets_from_dir_reads_names_not_paths(tmp_path: Path) -> None:
    (tmp_path / "weibo-token").write_text("abc\n")
    (tmp_path.parent / "outside").write_text("leak")
    read = secrets_from_dir(tmp_path)
    assert read("weibo-token") == "abc"
    assert read("../outside") is None and read("missing") is None and read("") is None
