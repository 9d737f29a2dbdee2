"""The indexer's bulk lines (``DocumentBuilder.line``) are byte for byte ``orjson.dumps`` of the former documents.

The former documents are the frozen copy in ``test_document_same``; the lines are what Elasticsearch receives, so
key order, the shared empty arrays, the enrichment fragments of untagged posts and the times must all come out as
before, on the first shared posts, on memo hits, and on hand-made posts."""

from __future__ import annotations

import random

import orjson
import pytest
from qingfeng.elastic.words import default_splitter
from qingfeng.v1 import post_pb2

from services.collector.documents import DocumentBuilder, post_document
from tests.services.collector.unit.test_document_same import _full_post, old_post_document, shared_posts

__all__ = ["shared_posts"]  # the fixture, imported to be used here


def _line_is_old(builder: DocumentBuilder, post: post_pb2.Post) -> None:
    assert builder.line(post) == orjson.dumps(old_post_document(post, default_splitter())), post.id


def test_shared_posts_give_the_former_bytes_also_from_the_memos(shared_posts: list[post_pb2.Post]) -> None:
    builder = DocumentBuilder(default_splitter())
    # The sample has untagged posts (the fragment path) and tagged ones (built in full).
    assert any(not p.enrichment.relevance_reasons and not p.enrichment.regions for p in shared_posts)
    assert any(p.enrichment.relevance_reasons for p in shared_posts)
    for post in shared_posts + shared_posts[:1000]:
        _line_is_old(builder, post)


def test_hand_made_posts_give_the_former_bytes() -> None:
    builder = DocumentBuilder(default_splitter())
    _line_is_old(builder, _full_post())
    _line_is_old(builder, post_pb2.Post())
    _line_is_old(builder, post_pb2.Post(id='q"\\\n\x01', text="\u2028 \U0001f600 \x7f", keywords=["a"]))


@pytest.mark.parametrize("first", [0.0, -0.0])
def test_zero_and_negative_zero_relevance_do_not_share_a_memo(first: float) -> None:
    # -0.0 == 0.0 as a dict key, but orjson writes them differently.
    builder = DocumentBuilder(default_splitter())
    for relevance in (first, -first, first, 0.5, float("nan"), float("nan")):
        post = post_pb2.Post(id="r")
        post.enrichment.relevance = relevance
        post.enrichment.lexicon_version = "v1"
        _line_is_old(builder, post)


def test_a_tag_after_an_untagged_post_of_the_same_relevance_is_not_the_memo() -> None:
    builder = DocumentBuilder(default_splitter())
    plain = post_pb2.Post(id="a")
    plain.enrichment.relevance = 0.25
    tagged = post_pb2.Post(id="b")
    tagged.enrichment.relevance = 0.25
    tagged.enrichment.regions.add(code="110000", name="北京市")
    for post in (plain, tagged, plain):
        _line_is_old(builder, post)
    assert b'"region_codes":["110000"]' in builder.line(tagged)


def test_post_document_is_the_line_read_back() -> None:
    post = _full_post()
    assert post_document(post) == orjson.loads(DocumentBuilder(default_splitter()).line(post))
    assert post_document(post)["enrichment"]["regions"] == [
        {"code": "110000", "name": "北京市"},
        {"code": "110101", "name": "东城区"},
    ]


def test_times_over_the_whole_range_are_timestamp_json() -> None:
    # Dates from the day memo, times of day from the tables, the last time again: all as ToJsonString writes them.
    rng = random.Random(12)
    builder = DocumentBuilder(default_splitter())
    stamps = [(rng.randint(-62_135_596_800, 253_402_300_799), rng.choice([0, 1, 1_000, 5_000_000, 999_999_999]))
              for _ in range(3000)]  # fmt: skip
    stamps += [(0, 0), (0, 0), (-1, 0), (86_399, 0), (86_400, 0), (-86_400, 0), (-86_401, 7)]
    for seconds, nanos in stamps + stamps[:50]:
        stamp = post_pb2.Post().created_at
        stamp.seconds, stamp.nanos = seconds, nanos
        assert builder.time(stamp) == stamp.ToJsonString(), (seconds, nanos)
