"""``Pipeline.ingest(items, owned=True)`` (what ImportPosts hands over) enriches its posts in place: the same records
and results as copies would give, and an ingest without ``owned`` still leaves its items as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.pipeline import Outcome
from services.collector.ports import Rejected
from services.collector.server import jsonl_line_parser
from tests.services.collector.unit.test_pipeline import NOW, STORY, FakeSink, make_pipeline, post

_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)


def _items(shared_data: Path) -> list[post_pb2.Post | Rejected]:
    """Posts of every kind the preparation tells apart: shared lines (copies and near copies among them), a post with
    the source's regions and without times, an invalid one, a second copy of an id in the slice, one too large once
    enriched, and an unparsable line."""
    at = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    with (shared_data / "weibo_posts.jsonl").open(encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for _, line in zip(range(1_200), handle, strict=False)]
    items = [jsonl_line_parser(line, _SOURCE, line_number=i, collected_at=at) for i, line in enumerate(lines, 1)]
    regional = post_pb2.Post(id="r1", source_id="src", text=STORY)
    regional.enrichment.regions.add(code="110000", name="北京市")
    items += [
        regional,
        post("bad", ""),
        post("twice", STORY + "一"),
        post("twice", STORY + "二"),
        post("big", STORY * 40),
        jsonl_line_parser("{not json", _SOURCE, line_number=9_999, collected_at=at),
    ]
    return items


def _copies(items: list[post_pb2.Post | Rejected]) -> list[post_pb2.Post | Rejected]:
    return [post_pb2.Post.FromString(i.SerializeToString()) if isinstance(i, post_pb2.Post) else i for i in items]


async def test_owned_items_give_the_records_and_results_copies_give(shared_data: Path) -> None:
    items = _items(shared_data)
    copied_sink, owned_sink = FakeSink(max_request_size=8_000), FakeSink(max_request_size=8_000)
    given = _copies(items)
    copied = await make_pipeline(copied_sink, slice_size=500).ingest(given)
    owned = await make_pipeline(owned_sink, slice_size=500).ingest(_copies(items), owned=True)
    assert len(copied_sink.sent) == len(owned_sink.sent) == len(items) - 1  # the second "twice" is a re-delivery
    for a, b in zip(copied_sink.sent, owned_sink.sent, strict=True):
        assert (a.topic, a.key, a.event_type, a.event_id) == (b.topic, b.key, b.event_type, b.event_id)
        assert a.message.SerializeToString() == b.message.SerializeToString()
    assert [(r.outcome, r.duplicate_of) for r in copied.results] == [(r.outcome, r.duplicate_of) for r in owned.results]
    outcomes = {r.outcome for r in owned.results}
    assert outcomes == {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.REJECTED}
    # without ``owned`` the items are untouched (a caller may send them again)
    assert [i.SerializeToString() for i in given if isinstance(i, post_pb2.Post)] == [
        i.SerializeToString() for i in items if isinstance(i, post_pb2.Post)
    ]


async def test_an_owned_post_is_enriched_and_stamped_in_place() -> None:
    sink = FakeSink()
    item = post_pb2.Post(id="p1", source_id="src", text=STORY)
    report = await make_pipeline(sink).ingest([item], owned=True)
    [result] = report.results
    assert result.post is item
    assert item.text_simplified and item.enrichment.lexicon_version
    assert item.collected_at.ToDatetime(UTC) == NOW == item.created_at.ToDatetime(UTC)
    assert sink.sent[0].encoded == item.SerializeToString()
