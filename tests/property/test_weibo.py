"""Weibo API answers: any text is an answer's posts and dead letters, a ``ValueError`` (not JSON) or a ``ShapeError``
(not a statuses answer); one broken status among 20 costs only itself."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.sources._json import ShapeError, loads
from services.collector.sources.base import post_id
from services.collector.sources.weibo import parse_statuses
from tests.property._posts import check_items, posts_of
from tests.property._support import fewer, run
from tests.property.strategies import NOW, field_values, json_documents, mutate, mutations, time_texts

SOURCE = common_pb2.SOURCE_KIND_WEIBO_API
WEIBO = source_pb2.Source(id="wb", kind=SOURCE, url="https://api.weibo.example/2/")


def good_status(i: int) -> dict[str, Any]:
    return {
        "idstr": f"good-{i}",
        "created_at": "Tue May 31 17:46:55 +0800 2011",
        "text": f"第{i}条 <a href='/n/x'>@某人</a>",
        "user": {"idstr": f"user-{i}", "screen_name": "网友", "followers_count": 12, "verified": False},
        "reposts_count": 3,
        "comments_count": "4",
        "attitudes_count": 5,
    }


PATHS = (
    "idstr", "id", "created_at", "text", "user", "user.idstr", "user.id", "user.screen_name", "user.followers_count",
    "user.verified", "user.verified_type", "reposts_count", "comments_count", "attitudes_count", "deleted", "pic_urls",
    "retweeted_status", "retweeted_status.idstr", "retweeted_status.id", "retweeted_status.created_at",
    "retweeted_status.user", "retweeted_status.user.idstr", "retweeted_status.deleted", "retweeted_status.text",
    "retweeted_status.reposts_count",
)  # fmt: skip
_values = st.one_of(field_values, time_texts)
# A valid status (sometimes a repost) with up to four fields changed or removed.
statuses = st.builds(
    lambda i, repost, changes: mutate(
        {**good_status(i), **({"retweeted_status": good_status(i + 1)} if repost else {})}, changes
    ),
    st.integers(0, 50),
    st.booleans(),
    mutations(PATHS, _values),
)
answers = st.one_of(
    st.lists(statuses, max_size=3).map(lambda s: json.dumps({"statuses": s}, allow_nan=True)),
    st.lists(statuses, max_size=3).map(lambda s: json.dumps(s, allow_nan=True)),
    json_documents,
)


def _parse(text: str) -> object:
    return parse_statuses(loads(text), WEIBO, collected_at=NOW, origin="https://api.weibo.example/2/statuses")


@given(answers)
@example(json.dumps({"statuses": [{**good_status(1), "reposts_count": "²"}]}))
@example(json.dumps({"statuses": [{**good_status(1), "attitudes_count": 2**63}]}))
@example(json.dumps({"statuses": [{**good_status(1), "text": "\ud800"}]}))
@example(json.dumps({"statuses": [{**good_status(1), "created_at": "今天 24:00"}]}))
@example(json.dumps({"statuses": [{**good_status(1), "created_at": "999999999天前"}]}))
@example('{"statuses": [' + "[" * 100_000 + "]" * 100_000 + "]}")
@example('{"statuses": [{"idstr": ' + "9" * 5000 + "}]}")
def test_any_answer_is_posts_dead_letters_or_a_shape_error(text: str) -> None:
    items, error = run("weibo.parse_statuses", _parse, text, errors=(ValueError,))
    if error is None:
        check_items(items)
    else:
        assert isinstance(error, ShapeError | json.JSONDecodeError) or "nested too deeply" in str(error), repr(error)


@fewer(2_000)
@given(st.integers(0, 19), st.builds(lambda changes: mutate(good_status(99), changes), mutations(PATHS, _values)))
@example(3, {**good_status(99), "reposts_count": "²"})
@example(7, {**good_status(99), "created_at": "今天 24:00"})
@example(0, {**good_status(99), "user": {"idstr": "\ud800", "followers_count": 2**64}})
def test_one_bad_status_among_20_costs_only_itself(bad_at: int, bad: dict[str, Any]) -> None:
    answer = [good_status(i) for i in range(20)]
    answer[bad_at] = bad
    items, _ = run("weibo.parse_statuses", _parse, json.dumps({"statuses": answer}, allow_nan=True))
    posts = posts_of(check_items(items))
    for i in range(20):
        if i != bad_at:
            post = posts[post_id(SOURCE, "wb", f"good-{i}")]
            assert post.text == f"第{i}条 @某人" and post.comments == 4
