"""ImportPosts with ``jsonl_lines`` batches: a batch is its lines one after the other, numbered, deduped and bounded
as that many ``jsonl_line`` items would be."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from qingfeng.rpc.errors import retry_delay_of
from qingfeng.v1 import post_pb2, source_pb2

from services.collector.server import MAX_BATCH_LINES, CollectorServicer
from services.collector.sources.jsonl import MAX_LINE_BYTES
from services.collector.tips import TipDesk
from tests.services.collector.fakes import FakeProducer
from tests.services.collector.harness import NOW, TOPICS, migrated_store, pipeline_over, serving
from tests.services.collector.unit.test_backpressure import BrokenSink, _pipeline
from tests.services.collector.unit.test_server import Env, _stream, env, line, violations

__all__ = ["env"]  # the fixture, shared with test_server

LINES = [
    line("1", "某县局长涉嫌受贿，纪委已介入调查此事"),
    line("2", "某县局长涉嫌受贿，纪委已介入调查此事"),  # a copy of 1
    "{broken",
    line("3", "全市中小学九月一日开学，家长注意接送安全"),
    line("1", "某县局长涉嫌受贿，纪委已介入调查此事"),  # 1 again
    "[1, 2]",
    line("4", "道路施工通知：城东道路封闭施工一周，请绕行"),
]


def _batch(lines: list[str]) -> source_pb2.ImportPostsRequest:
    return source_pb2.ImportPostsRequest(jsonl_lines=source_pb2.JsonlLines(lines=lines))


def _outcome(response: source_pb2.ImportPostsResponse, env: Env) -> tuple[object, ...]:
    summary = response.summary
    produced = sorted(r.message.id for r in env.sink.sent if r.topic == TOPICS.posts)  # type: ignore[union-attr]
    return (
        (summary.accepted, summary.duplicate, summary.rejected),
        [(r.index, r.reason, r.message) for r in summary.rejections],
        produced,
    )


async def test_a_batch_is_answered_as_its_lines_sent_one_by_one(env: Env, tmp_path: Path) -> None:
    # The same lines, once as single items and once as a single item, a batch of 3 and a batch of 3: same answer,
    # line numbers counting lines (not messages), chunk boundaries (import_chunk=3) falling inside batches.
    singles = await env.stub.ImportPosts(_stream(*(source_pb2.ImportPostsRequest(jsonl_line=x) for x in LINES)))
    expected = _outcome(singles, env)
    assert expected[0] == (3, 2, 2)
    assert [(i, reason) for i, reason, _ in expected[1]] == [  # type: ignore[misc]
        (3, post_pb2.DEAD_LETTER_REASON_MALFORMED),
        (6, post_pb2.DEAD_LETTER_REASON_MALFORMED),
    ]
    async with migrated_store(tmp_path / "second.db") as (_, store):
        sink = FakeProducer()
        pipeline = pipeline_over(sink)
        servicer = CollectorServicer(store, pipeline, TipDesk(store, pipeline, None), import_chunk=3, clock=lambda: NOW)
        async with serving(servicer) as stub:
            mixed = [source_pb2.ImportPostsRequest(jsonl_line=LINES[0]), _batch(LINES[1:4]), _batch(LINES[4:])]
            batched = await stub.ImportPosts(_stream(*mixed))
            fresh = Env(stub, sink, store, "")
            assert _outcome(batched, fresh) == expected
            status = (await stub.GetSource(source_pb2.GetSourceRequest(id="import"))).source.status
            assert (status.items_seen, status.items_accepted) == (7, 3)


async def test_an_over_long_line_inside_a_batch_is_rejected_at_its_own_line_number(env: Env) -> None:
    too_long = line("9", "长" * (MAX_LINE_BYTES // 3 + 10))
    assert len(too_long.encode()) > MAX_LINE_BYTES
    response = await env.stub.ImportPosts(_stream(_batch([LINES[0], too_long, LINES[3]])))
    summary = response.summary
    assert (summary.accepted, summary.rejected) == (2, 1)
    assert [(r.index, r.reason) for r in summary.rejections] == [(2, post_pb2.DEAD_LETTER_REASON_TOO_LARGE)]


async def test_a_batch_of_too_many_lines_is_invalid_argument_and_nothing_is_produced(env: Env) -> None:
    lines = [line(str(i), f"第{i}条：某局长涉嫌受贿，网友热议。") for i in range(MAX_BATCH_LINES + 1)]
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await env.stub.ImportPosts(_stream(_batch(lines)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(refused.value) == {"jsonl_lines.lines": f"at most {MAX_BATCH_LINES} items, got 1001"}
    assert [r for r in env.sink.sent if r.topic == TOPICS.posts] == []
    # The largest allowed batch goes through whole.
    response = await env.stub.ImportPosts(_stream(_batch(lines[:MAX_BATCH_LINES])))
    assert response.summary.accepted + response.summary.duplicate == MAX_BATCH_LINES


async def test_a_batch_over_an_unreachable_kafka_is_unavailable_with_retry_info(tmp_path: Path) -> None:
    pipeline = _pipeline(BrokenSink())
    async with migrated_store(tmp_path / "c.db") as (_, store):
        servicer = CollectorServicer(store, pipeline, TipDesk(store, pipeline, None), kafka_retry_after_s=4.0)
        async with serving(servicer) as stub:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ImportPosts(_stream(_batch(LINES)))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert retry_delay_of(refused.value) == 4.0
