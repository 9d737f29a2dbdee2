"""`qingfeng import` reads its file as bytes and sends valid lines as bytes: the same lines, numbers and requests as
the former text-mode reader (``_former_lines`` and ``_former_requests`` below, frozen copies of it).

Block edges are where a bytes reader can go wrong (a ``\\r\\n`` or a UTF-8 character cut in two, a line longer than
a block), so the files are read with blocks of a few bytes as well as with the default size.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qingfeng.cli import import_posts
from qingfeng.cli.import_posts import BATCH_BYTES, _batches, _count_lines, _numbered_lines, _payload, _raw_lines
from qingfeng.v1 import source_pb2


def _former_lines(path: Path, skip: int, limit: int | None) -> Iterator[tuple[int, str]]:
    """The former ``_numbered_lines`` (text mode, surrogate escapes, U+FFFD when sent)."""
    taken = 0
    with path.open("r", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        for number, raw in enumerate(handle, start=1):
            if number <= skip:
                continue
            if limit is not None and taken >= limit:
                return
            line = raw.rstrip("\r\n")
            if line.strip():
                taken += 1
                yield number, line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _former_requests(lines: list[str], batch_lines: int) -> list[bytes]:
    """The former batching and request building, serialised."""
    out: list[bytes] = []
    batch: list[str] = []
    size = 0
    for line in lines:
        length = len(line.encode("utf-8"))
        if batch and (len(batch) >= batch_lines or size + length > BATCH_BYTES):
            out.append(_request(batch))
            batch, size = [], 0
        batch.append(line)
        size += length
    if batch:
        out.append(_request(batch))
    return out


def _request(lines: list[str]) -> bytes:
    return source_pb2.ImportPostsRequest(
        source_id="s", jsonl_lines=source_pb2.JsonlLines(lines=lines)
    ).SerializeToString()


def _requests_now(path: Path, skip: int, limit: int | None, batch_lines: int) -> list[bytes]:
    chunk = [(number, *_payload(raw, valid)) for number, raw, valid in _raw_lines(path, skip, limit)]
    out = []
    for lines in _batches(chunk, batch_lines):
        request = source_pb2.ImportPostsRequest(source_id="s")
        request.jsonl_lines.lines.extend(lines)  # type: ignore[arg-type]
        out.append(request.SerializeToString())
    return out


# Line breaks of every kind, blank lines of str-only whitespace (\x1c, U+3000, U+0085), undecodable bytes (a lone
# continuation byte, an encoded surrogate, a cut character), non-ASCII first bytes, a final line without a break.
_TRICKY = (
    b"a\r\n\n  \t\n\xe3\x80\x80\nb\rc\n\x1c\n\xff\xfe{}\n\r\r\n\xc2\x85\n"
    b'{"t": "\xe4\xb8\xad\xe6\x96\x87"}\r\n\xed\xa0\x80x\n\xe4\xb8\n\x80\r \x0b\x0c\r\n\xe4\xb8\xadlast'
)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 8, 1 << 20])
@pytest.mark.parametrize(("skip", "limit"), [(0, None), (0, 3), (2, None), (4, 5), (30, None), (0, 0)])
def test_the_lines_and_their_numbers_are_the_former_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, block: int, skip: int, limit: int | None
) -> None:
    monkeypatch.setattr(import_posts, "_READ_BYTES", block)
    path = tmp_path / "lines.jsonl"
    path.write_bytes(_TRICKY)
    former = list(_former_lines(path, skip, limit))
    assert list(_numbered_lines(path, skip, limit)) == former
    assert _count_lines(path, skip, limit) == len(former)
    assert _requests_now(path, skip, limit, 3) == _former_requests([line for _, line in former], 3)
    if skip == 0 and limit is None:
        # the file does hold the cases above: \r, \r\n and \n breaks, str-only blanks skipped but counted
        assert [number for number, _ in former] == [1, 5, 6, 8, 12, 13, 14, 15, 17]


_BREAKS_AND_BLANKS = [b"\n", b"\r", b"\r\n", b" ", b"\t", b"\x1c", b"\xe3\x80\x80", b"\xc2\x85"]
_TEXT_AND_BROKEN = [b"{}", b"a", b"\xe4\xb8\xad", b'{"id": 1}', b"\xff", b"\xe4", b"\xb8", b"\xed\xa0\x80"]
_PIECES = st.sampled_from(_BREAKS_AND_BLANKS + _TEXT_AND_BROKEN)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(_PIECES, max_size=40).map(b"".join), block=st.integers(1, 9), batch_lines=st.integers(1, 4))
def test_any_bytes_give_the_former_lines_and_requests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body: bytes, block: int, batch_lines: int
) -> None:
    monkeypatch.setattr(import_posts, "_READ_BYTES", block)
    path = tmp_path / "any.jsonl"
    path.write_bytes(body)
    former = list(_former_lines(path, 0, None))
    assert list(_numbered_lines(path, 0, None)) == former
    assert _count_lines(path, 0, None) == len(former)
    assert _requests_now(path, 0, None, batch_lines) == _former_requests([line for _, line in former], batch_lines)


def test_a_long_line_is_sent_whole_across_many_blocks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(import_posts, "_READ_BYTES", 7)
    path = tmp_path / "long.jsonl"
    long = '{"text": "' + "长" * 500 + '"}'
    path.write_bytes(f"{long}\r\n\n{long}".encode())
    assert list(_numbered_lines(path, 0, None)) == [(1, long), (3, long)]
    assert [(n, raw.decode(), valid) for n, raw, valid in _raw_lines(path, 0, None)] == [
        (1, long, True),
        (3, long, True),
    ]
