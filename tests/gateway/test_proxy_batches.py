"""ImportPosts batches (``jsonl_lines``) through the proxy: each line counts against the per-item rate limit and
the contract's bounds, so a batch cannot pass as one item."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest
from qingfeng.v1 import source_pb2, source_pb2_grpc

from gateway.ratelimit import RateLimiter
from gateway.validation import items_of
from tests.gateway.test_proxy_streams import Start, _bearer, _Collector, start
from tests.services.collector.unit.test_server import violations

__all__ = ["start"]  # the fixture, shared with test_proxy_streams


def _batch(lines: list[str]) -> source_pb2.ImportPostsRequest:
    return source_pb2.ImportPostsRequest(source_id="nope", jsonl_lines=source_pb2.JsonlLines(lines=lines))


async def _batches(count: int, size: int) -> AsyncIterator[source_pb2.ImportPostsRequest]:
    for b in range(count):
        yield _batch([f'{{"id": "{b}-{i}", "text": "受贿"}}' for i in range(size)])


def test_a_batch_counts_its_lines_and_a_single_item_one() -> None:
    assert items_of(_batch(["a"] * 7)) == 7
    assert items_of(_batch([])) == 1  # an empty message still costs a token
    assert items_of(source_pb2.ImportPostsRequest(jsonl_line="a")) == 1
    assert items_of(source_pb2.ImportPostsRequest()) == 1


async def test_each_line_of_a_batch_takes_a_token(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    # A frozen clock: nothing refills. One batch of 15 lines leaves 20 - 15 = 5 of the burst.
    limiter = RateLimiter(rate_per_s=50.0, burst=20, clock=lambda: 0.0)
    channel = await start(collector, limiter=limiter, wait_s=0.05)
    reply = await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
        _batches(1, 15), metadata=_bearer(tokens["office"]), timeout=10
    )
    assert reply.summary.accepted == 1  # the fake counts messages
    assert [limiter.allow("office-1") for _ in range(6)] == [True] * 5 + [False]


async def test_batches_beyond_the_rate_are_refused_like_their_lines(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    # Frozen clock, 20 tokens: the first batch of 20 lines spends them; the second would be due 0.02 s ahead
    # (allowed, debt 20 lines); the third 0.42 s ahead, beyond the 0.05 s allowed: refused.
    limiter = RateLimiter(rate_per_s=50.0, burst=20, clock=lambda: 0.0)
    channel = await start(collector, limiter=limiter, wait_s=0.05)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            _batches(25, 20), metadata=_bearer(tokens["office"]), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit exceeded for office-1 within the stream" in (err.value.details() or "")
    assert collector.received <= 2, "batches beyond the limit never reach the upstream"


async def test_batches_are_paced_per_line(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=100.0, burst=10))
    started = time.monotonic()
    reply = await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
        _batches(4, 10), metadata=_bearer(tokens["office"]), timeout=10
    )
    assert reply.summary.accepted == 4 == collector.received
    # 40 lines in 4 messages: 10 from the burst (one spent on the call), 31 paced at 100/s, as 40 single items.
    assert time.monotonic() - started >= 0.25


async def test_a_batch_breaking_the_bounds_is_invalid_argument_naming_the_field(
    start: Start, tokens: dict[str, str]
) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=1e6, burst=100_000))
    stub = source_pb2_grpc.CollectorServiceStub(channel)
    for batch, field, description in [
        (_batch(["{}"] * 1001), "jsonl_lines.lines", "at most 1000 items, got 1001"),
        (_batch(["{}", "x" * 262_145]), "jsonl_lines.lines[1]", "at most 262144 characters, got 262145"),
    ]:

        async def one(request: source_pb2.ImportPostsRequest = batch) -> AsyncIterator[source_pb2.ImportPostsRequest]:
            yield request

        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ImportPosts(one(), metadata=_bearer(tokens["office"]), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violations(err.value) == {field: description}
    assert collector.received == 0
