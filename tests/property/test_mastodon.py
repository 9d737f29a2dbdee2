"""Mastodon timelines: any text is a timeline's posts and dead letters, a ``ValueError`` (not JSON) or a
``ShapeError`` (not a list of statuses); one broken status among 20 costs only itself; any Link header gives a URL
or nothing."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.sources._json import ShapeError, loads
from services.collector.sources.base import post_id
from services.collector.sources.mastodon import next_link, parse_statuses
from tests.property._posts import check_items, posts_of
from tests.property._support import fewer, run
from tests.property.strategies import NOW, any_text, field_values, json_documents, mutate, mutations, time_texts

SOURCE = common_pb2.SOURCE_KIND_MASTODON
INSTANCE = source_pb2.Source(id="md", kind=SOURCE, url="https://mastodon.example")


def good_status(i: int) -> dict[str, Any]:
    return {
        "id": f"good-{i}",
        "created_at": "2024-05-01T12:00:00.000Z",
        "url": f"https://mastodon.example/@alice/good-{i}",
        "content": f"<p>第{i}条<br>内容</p>",
        "spoiler_text": "",
        "language": "zh",
        "account": {"id": "1", "acct": "alice", "display_name": "Alice", "followers_count": 7, "fields": []},
        "reblogs_count": 1,
        "replies_count": 2,
        "favourites_count": 3,
        "media_attachments": [{"url": "https://mastodon.example/m.png"}],
    }


PATHS = (
    "id", "created_at", "url", "uri", "content", "spoiler_text", "language", "account", "account.id",
    "account.acct", "account.display_name", "account.followers_count", "account.fields", "reblogs_count",
    "replies_count", "favourites_count", "media_attachments", "in_reply_to_id", "reblog", "reblog.id",
    "reblog.created_at", "reblog.account", "reblog.account.id", "reblog.in_reply_to_id", "reblog.content",
)  # fmt: skip
_values = st.one_of(field_values, time_texts)
statuses = st.builds(
    lambda i, boost, changes: mutate({**good_status(i), **({"reblog": good_status(i + 1)} if boost else {})}, changes),
    st.integers(0, 50),
    st.booleans(),
    mutations(PATHS, _values),
)
answers = st.one_of(
    st.lists(statuses, max_size=3).map(lambda s: json.dumps(s, allow_nan=True)),
    json_documents,
)


def _parse(text: str) -> object:
    return parse_statuses(loads(text), INSTANCE, collected_at=NOW, origin="https://mastodon.example/api/v1/timelines")


@given(answers)
@example(json.dumps([{**good_status(1), "favourites_count": "²"}]))
@example(json.dumps([{**good_status(1), "reblogs_count": 2**63}]))
@example(json.dumps([{**good_status(1), "content": "\ud800"}]))
@example(json.dumps([{**good_status(1), "created_at": "10000-01-01T00:00:00Z"}]))
@example(json.dumps([{**good_status(1), "in_reply_to_id": 2**64}]))
@example(json.dumps({"error": "record not found"}))
@example("[" * 100_000 + "]" * 100_000)
def test_any_answer_is_posts_dead_letters_or_a_shape_error(text: str) -> None:
    items, error = run("mastodon.parse_statuses", _parse, text, errors=(ValueError,))
    if error is None:
        check_items(items)
    else:
        assert isinstance(error, ShapeError | json.JSONDecodeError) or "nested too deeply" in str(error), repr(error)


@fewer(2_000)
@given(st.integers(0, 19), st.builds(lambda changes: mutate(good_status(99), changes), mutations(PATHS, _values)))
@example(5, {**good_status(99), "replies_count": "²"})
@example(19, {**good_status(99), "account": {"id": "\ud800", "followers_count": 2**64}})
def test_one_bad_status_among_20_costs_only_itself(bad_at: int, bad: dict[str, Any]) -> None:
    timeline = [good_status(i) for i in range(20)]
    timeline[bad_at] = bad
    items, _ = run("mastodon.parse_statuses", _parse, json.dumps(timeline, allow_nan=True))
    posts = posts_of(check_items(items))
    for i in range(20):
        if i != bad_at:
            post = posts[post_id(SOURCE, "md", f"good-{i}")]
            assert post.text == f"第{i}条\n内容" and post.likes == 3


@fewer(1_000)
@given(st.one_of(any_text, st.builds(lambda url, rel: f'<{url}>; rel="{rel}"', any_text, any_text)))
def test_any_link_header_gives_a_url_or_nothing(header: str) -> None:
    link, _ = run("mastodon.next_link", next_link, header)
    assert isinstance(link, str)
