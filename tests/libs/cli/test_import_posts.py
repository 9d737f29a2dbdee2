"""`qingfeng import`: chunks, totals, and a chunk sent again after a dropped stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from qingfeng.cli._console import CliError
from qingfeng.cli.import_posts import BATCH_BYTES, import_file
from qingfeng.v1 import post_pb2, source_pb2


class _Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "Internal error from Core"


class FlakyStub:
    """Fails the first ``failures`` calls after reading the stream, then answers with counts (of lines) and, for
    the stream's lines numbered in ``reject``, a rejection each."""

    def __init__(self, failures: list[grpc.StatusCode], reject: tuple[int, ...] = ()) -> None:
        self.failures = failures
        self.reject = reject
        self.calls: list[int] = []  # lines per call
        self.messages: list[list[int]] = []  # lines per message, per call
        self.lines: list[list[str]] = []  # the lines of each call

    def ImportPosts(
        self, requests: Iterator[source_pb2.ImportPostsRequest], **_: object
    ) -> source_pb2.ImportPostsResponse:
        items = list(requests)
        lines = [x for r in items for x in (r.jsonl_lines.lines if r.HasField("jsonl_lines") else [r.jsonl_line])]
        self.calls.append(len(lines))
        self.messages.append([len(r.jsonl_lines.lines) for r in items])
        self.lines.append(lines)
        if self.failures:
            raise _Failure(self.failures.pop(0))
        rejections = [
            source_pb2.ImportRejection(index=i, reason=post_pb2.DEAD_LETTER_REASON_MALFORMED, message="bad")
            for i in self.reject
            if i <= len(lines)
        ]
        summary = source_pb2.ImportSummary(
            accepted=len(lines) - len(rejections), rejected=len(rejections), rejections=rejections
        )
        return source_pb2.ImportPostsResponse(summary=summary)


def _file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(f'{{"id": "{i}"}}\n' for i in range(n)), encoding="utf-8")
    return path


def test_a_dropped_chunk_is_sent_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("qingfeng.cli.import_posts.time.sleep", lambda s: None)
    stub = FlakyStub([grpc.StatusCode.INTERNAL])
    totals = import_file(stub, _file(tmp_path, 5), metadata=(), chunk_lines=3)  # type: ignore[arg-type]
    assert stub.calls == [3, 3, 2]
    assert (totals.accepted, totals.lines_sent) == (5, 5)


def test_a_persistent_failure_says_where_to_resume(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("qingfeng.cli.import_posts.time.sleep", lambda s: None)
    stub = FlakyStub([grpc.StatusCode.UNAVAILABLE] * 3)
    with pytest.raises(CliError, match=r"(?s)UNAVAILABLE.*resume with --skip 0"):
        import_file(stub, _file(tmp_path, 5), metadata=(), chunk_lines=3)  # type: ignore[arg-type]
    assert stub.calls == [3, 3, 3]


def test_invalid_argument_is_not_retried(tmp_path: Path) -> None:
    stub = FlakyStub([grpc.StatusCode.INVALID_ARGUMENT])
    with pytest.raises(CliError, match="INVALID_ARGUMENT"):
        import_file(stub, _file(tmp_path, 2), metadata=(), chunk_lines=3)  # type: ignore[arg-type]
    assert stub.calls == [2]


def test_lines_travel_in_batches_and_rejections_keep_their_file_line(tmp_path: Path) -> None:
    stub = FlakyStub([], reject=(4,))
    totals = import_file(stub, _file(tmp_path, 12), metadata=(), chunk_lines=7, batch_lines=3)  # type: ignore[arg-type]
    assert stub.messages == [[3, 3, 1], [3, 2]]
    assert stub.lines[0] + stub.lines[1] == [f'{{"id": "{i}"}}' for i in range(12)]
    # The collector numbers a stream's lines (not its messages) from 1: line 4 of each chunk is file line 4 and 11.
    assert [line for line, _, _ in totals.rejections] == [4, 11]
    assert (totals.accepted, totals.rejected, totals.lines_sent) == (10, 2, 12)


def test_a_batch_is_bounded_by_bytes_too(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    long = "长" * (BATCH_BYTES // 3 // 2)  # two such lines and a little more exceed BATCH_BYTES
    path.write_text("".join(f'{{"id": "{i}", "text": "{long}"}}\n' for i in range(5)), encoding="utf-8")
    stub = FlakyStub([])
    import_file(stub, path, metadata=(), chunk_lines=100, batch_lines=200)  # type: ignore[arg-type]
    assert stub.messages == [[1, 1, 1, 1, 1]]


def test_an_advised_retry_sends_the_same_lines_in_the_same_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("qingfeng.cli.import_posts.time.sleep", slept.append)
    monkeypatch.setattr("qingfeng.cli.import_posts.retry_delay_of", lambda err: 2.0)
    stub = FlakyStub([grpc.StatusCode.RESOURCE_EXHAUSTED])
    totals = import_file(stub, _file(tmp_path, 5), metadata=(), chunk_lines=5, batch_lines=2)  # type: ignore[arg-type]
    assert stub.messages == [[2, 2, 1], [2, 2, 1]]
    assert stub.lines[0] == stub.lines[1]
    assert slept == [2.0]
    assert (totals.accepted, totals.lines_sent, totals.advised_retries) == (5, 5, 1)


@pytest.mark.parametrize(("skip", "limit"), [(0, None), (0, 3), (2, None), (2, 2), (9, None), (0, 0)])
def test_count_lines_counts_what_numbered_lines_yields(tmp_path: Path, skip: int, limit: int | None) -> None:
    from qingfeng.cli.import_posts import _count_lines, _numbered_lines

    body = "a\r\n\n  \t\n\u3000\nb\rc\n\x1c\n\xff\xfe{}\nlast"
    path = tmp_path / "lines.jsonl"
    path.write_bytes(body.encode("utf-8").replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe"))
    assert _count_lines(path, skip, limit) == len(list(_numbered_lines(path, skip, limit)))
