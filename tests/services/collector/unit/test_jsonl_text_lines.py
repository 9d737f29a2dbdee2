"""A text line (ImportPosts) is encoded only when needed; what a rejection carries is unchanged: the line's UTF-8."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import Rejected
from services.collector.sources.jsonl import MAX_LINE_BYTES, parse_jsonl_line

_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
_AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


def _parse(line: str | bytes) -> post_pb2.Post | Rejected:
    return parse_jsonl_line(line, _SOURCE, collected_at=_AT, origin="ImportPosts item 1")


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"id": "1", "text": "半个', post_pb2.DEAD_LETTER_REASON_MALFORMED),
        ("[1, 2]", post_pb2.DEAD_LETTER_REASON_MALFORMED),
        ('{"id": "1", "text": "无时间"}', post_pb2.DEAD_LETTER_REASON_INVALID),
        ('{"id": "1", "text": "\ud800孤立代理", "created_at": "2026-11-30T06:00:00Z"}', None),
        (
            '{"id": "1", "text": 5, "created_at": "2026-11-30T06:00:00Z", "x": "\udcff"}',
            post_pb2.DEAD_LETTER_REASON_INVALID,
        ),
        ('{"text": "x' + "长" * (MAX_LINE_BYTES // 3) + '"}', post_pb2.DEAD_LETTER_REASON_TOO_LARGE),
        ('{"text": "x' + "a" * (MAX_LINE_BYTES // 4 - 20) + '"}', post_pb2.DEAD_LETTER_REASON_INVALID),
    ],
)
def test_rejections_of_text_lines_carry_the_lines_bytes(line: str, reason: int | None) -> None:
    item = _parse(line)
    if reason is None:
        assert isinstance(item, post_pb2.Post)
        return
    assert isinstance(item, Rejected), item
    assert item.reason == reason
    expected = line.encode("utf-8", errors="surrogatepass")
    assert item.payload == expected[: len(item.payload)]
    assert len(item.payload) == min(len(expected), len(item.payload))
    if not any("\ud800" <= ch <= "\udfff" for ch in line):  # as bytes, a surrogate is not UTF-8 (another reason)
        as_bytes = _parse(expected)
        assert isinstance(as_bytes, Rejected) and as_bytes.reason == item.reason


def test_a_line_just_over_the_limit_in_bytes_but_not_in_characters_is_too_large() -> None:
    # 3 bytes a character: MAX_LINE_BYTES // 3 + 1 characters pass the character bound and fail the byte one
    line = '{"t": "' + "长" * (MAX_LINE_BYTES // 3) + '"}'
    assert len(line) > MAX_LINE_BYTES // 4
    item = _parse(line)
    assert isinstance(item, Rejected) and item.reason == post_pb2.DEAD_LETTER_REASON_TOO_LARGE
