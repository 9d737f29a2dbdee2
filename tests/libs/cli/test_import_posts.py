"""`qingfeng import`: chunks, totals, and a chunk sent again after a dropped stream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from qingfeng.cli._console import CliError
from qingfeng.cli.import_posts import import_file
from qingfeng.v1 import source_pb2


class _Failure(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "Internal error from Core"


class FlakyStub:
    """Fails the first ``failures`` calls after reading half the stream, then answers with counts."""

    def __init__(self, failures: list[grpc.StatusCode]) -> None:
        self.failures = failures
        self.calls: list[int] = []

    def ImportPosts(
        self, requests: Iterator[source_pb2.ImportPostsRequest], **_: object
    ) -> source_pb2.ImportPostsResponse:
        items = list(requests)
        self.calls.append(len(items))
        if self.failures:
            raise _Failure(self.failures.pop(0))
        return source_pb2.ImportPostsResponse(summary=source_pb2.ImportSummary(accepted=len(items)))


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
