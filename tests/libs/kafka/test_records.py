"""Decoding consumed records and building dead letters, without a broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import qingfeng.kafka as kafka
from qingfeng.kafka import BadRecord, DeadLetterSpec, Record, build_dead_letter, content_type_for, parse, parse_batch
from qingfeng.kafka.headers import header_value, proto_name_of
from qingfeng.v1 import post_pb2

POST = post_pb2.Post(id="p1", title="某局长涉嫌受贿")


def record(value: bytes | None, headers: tuple[tuple[str, bytes], ...] = (), offset: int = 7) -> Record:
    return Record(
        topic="qingfeng.posts.v1",
        partition=2,
        offset=offset,
        key=b"p1",
        value=value,
        headers=headers,
        timestamp_ms=1_700_000_000_000,
    )


def test_parse_decodes_the_expected_message() -> None:
    typed = (("content-type", content_type_for(POST).encode()),)
    assert parse(record(POST.SerializeToString(), typed), post_pb2.Post) == POST
    assert parse(record(POST.SerializeToString()), post_pb2.Post) == POST  # no content-type: decoding decides


@pytest.mark.parametrize(
    ("value", "headers", "fragment"),
    [
        (None, (), "no value"),
        (b"\xff\xff\xff", (), "cannot decode qingfeng.v1.Post"),
        (POST.SerializeToString(), (("content-type", b"application/json"),), "is not protobuf"),
        (
            POST.SerializeToString(),
            (("content-type", b"application/x-protobuf; proto=qingfeng.v1.Event"),),
            "payload is qingfeng.v1.Event",
        ),
    ],
)
def test_parse_turns_every_problem_into_a_bad_record(
    value: bytes | None, headers: tuple[tuple[str, bytes], ...], fragment: str
) -> None:
    result = parse(record(value, headers), post_pb2.Post)
    assert isinstance(result, BadRecord)
    assert result.reason == post_pb2.DEAD_LETTER_REASON_UNDECODABLE
    assert fragment in result.message


def test_parse_batch_keeps_order_and_every_record() -> None:
    batch = parse_batch([record(POST.SerializeToString(), offset=1), record(b"\xff", offset=2)], post_pb2.Post)
    assert [(r.offset, p.id) for r, p in batch.good] == [(1, "p1")]
    assert [b.record.offset for b in batch.bad] == [2]


def test_record_headers_and_time() -> None:
    r = record(b"", (("event-type", b"post.collected"), ("event-id", b"e1")))
    assert (r.event_type, r.event_id, r.content_type, r.key_text) == ("post.collected", "e1", None, "p1")
    assert r.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert header_value([("a", b"\xff")], "a") is None
    assert proto_name_of("application/x-protobuf; proto=qingfeng.v1.Post") == "qingfeng.v1.Post"
    assert proto_name_of("application/x-protobuf") is None


def test_dead_letter_keeps_position_and_truncates_huge_payloads() -> None:
    bad = parse(record(b"\xff" * 100, (("traceparent", b"00-abc"),)), post_pb2.Post)
    assert isinstance(bad, BadRecord)
    spec = DeadLetterSpec.from_bad_record(bad, source="grader")
    assert spec.event_id == "dl:qingfeng.posts.v1:2:7"
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    letter = build_dead_letter(spec, now=now, max_payload_bytes=10)
    assert letter.payload == b"\xff" * 10
    assert "payload truncated from 100 to 10 bytes" in letter.message
    assert letter.headers["traceparent"] == "00-abc"
    assert letter.occurred_at.ToDatetime(tzinfo=UTC) == now
    assert (letter.topic, letter.key, letter.source) == ("qingfeng.posts.v1", "p1", "grader")


def test_exported_names_exist() -> None:
    assert sorted(kafka.__all__) == sorted(set(kafka.__all__))
    for name in kafka.__all__:
        assert hasattr(kafka, name), name
