"""Client streams through the proxy (ImportPosts): the upstream's error code reaches the partner, every item counts
against the caller's rate limit, and every upstream call has a deadline."""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from qingfeng.rpc import CredentialInterceptor
from qingfeng.v1 import case_pb2, case_pb2_grpc, source_pb2, source_pb2_grpc

from gateway import proxy as gateway_proxy
from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.proxy import proxy_handler
from gateway.ratelimit import ConcurrencyLimiter, RateLimiter
from tests.identity import GATEWAY, TRUST

COLLECTOR = source_pb2.DESCRIPTOR.services_by_name["CollectorService"]
COORDINATOR = case_pb2.DESCRIPTOR.services_by_name["CoordinatorService"]
ROUNDS = 4


@dataclass
class _Collector(source_pb2_grpc.CollectorServiceServicer):
    """ImportPosts refuses an unknown source at item ``abort_at`` (0: before reading), like the real collector."""

    abort_at: int = 1
    received: int = 0
    deadlines: list[float | None] = field(default_factory=list)
    traceparents: list[str] = field(default_factory=list)

    async def ImportPosts(self, requests: AsyncIterator[source_pb2.ImportPostsRequest], context: object) -> object:
        ctx: grpc.aio.ServicerContext = context  # type: ignore[assignment]
        self.deadlines.append(ctx.time_remaining())
        self.traceparents += [v for k, v in ctx.invocation_metadata() or () if k == "traceparent"]
        if self.abort_at == 0:
            await ctx.abort(grpc.StatusCode.NOT_FOUND, "source 'nope' not found")
        mine = 0  # this call's items (``received`` counts every call's)
        async for request in requests:
            self.received += 1
            mine += 1
            if mine == self.abort_at:
                await ctx.abort(grpc.StatusCode.NOT_FOUND, f"source {request.source_id!r} not found")
        return source_pb2.ImportPostsResponse(summary=source_pb2.ImportSummary(accepted=self.received))


class _SlowCoordinator(case_pb2_grpc.CoordinatorServiceServicer):
    def __init__(self) -> None:
        self.deadlines: list[float | None] = []

    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: grpc.aio.ServicerContext) -> object:
        self.deadlines.append(context.time_remaining())
        return case_pb2.ListTasksResponse()


Start = Callable[..., Awaitable[grpc.aio.Channel]]


@pytest.fixture
async def start(policy: AccessPolicy) -> AsyncIterator[Start]:
    """Start an upstream with ``servicer`` and a gateway in front of it; returns a client channel to the gateway."""
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def run(
        servicer: object,
        *,
        limiter: RateLimiter,
        default_timeout_s: float = 30.0,
        wait_s: float = 1.0,
        max_bytes: int = 512 * 1024,
        per_method: dict[str, int] | None = None,
        separate_streams: bool = True,
        streams_per_identity: int = 8,
    ) -> grpc.aio.Channel:
        upstream = grpc.aio.server(interceptors=[CredentialInterceptor(TRUST)])
        if isinstance(servicer, source_pb2_grpc.CollectorServiceServicer):
            source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, upstream)
            descriptor = COLLECTOR
        else:
            case_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, upstream)
            descriptor = COORDINATOR
        port = upstream.add_insecure_port("127.0.0.1:0")
        await upstream.start()
        # As in the gateway: the channel for unary calls has the tracing interceptors, client streams a plain one.
        address = f"127.0.0.1:{port}"
        to_upstream = grpc.aio.insecure_channel(address, interceptors=aio_client_interceptors())
        plain = grpc.aio.insecure_channel(address) if separate_streams else to_upstream
        calls = RateLimiter(rate_per_s=1000.0, burst=1000)
        concurrency = ConcurrencyLimiter(per_identity=64, streams_per_identity=streams_per_identity, per_server=1024)
        gateway = grpc.aio.server(interceptors=[GuardInterceptor(policy, calls, concurrency=concurrency)])
        proxy = proxy_handler(
            {descriptor: to_upstream},
            GATEWAY,
            item_limiter=limiter,
            default_timeout_s=default_timeout_s,
            stream_item_wait_s=wait_s,
            max_request_bytes=max_bytes,
            method_max_request_bytes=per_method,
            stream_upstreams={descriptor: plain},
        )
        gateway.add_generic_rpc_handlers((proxy,))
        gateway_port = gateway.add_insecure_port("127.0.0.1:0")
        await gateway.start()
        client = grpc.aio.insecure_channel(f"127.0.0.1:{gateway_port}")
        servers.extend((upstream, gateway))
        channels.extend((to_upstream, plain, client))
        return client

    yield run
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _items(count: int) -> AsyncIterator[source_pb2.ImportPostsRequest]:
    for i in range(count):
        yield source_pb2.ImportPostsRequest(source_id="nope", jsonl_line=f'{{"id": "{i}", "text": "受贿"}}')


@pytest.mark.parametrize(("abort_at", "count"), [(0, 1), (1, 1), (0, 300), (1, 300), (50, 300), (300, 300)])
async def test_an_aborted_stream_reaches_the_partner_with_the_upstreams_code(
    start: Start, tokens: dict[str, str], abort_at: int, count: int
) -> None:
    """Before reading, at the first item, mid-stream while the partner still sends, and at the last item."""
    channel = await start(_Collector(abort_at=abort_at), limiter=RateLimiter(rate_per_s=1e6, burst=10_000))
    stub = source_pb2_grpc.CollectorServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ImportPosts(_items(count), metadata=_bearer(tokens["office"]), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    assert err.value.details() == "source 'nope' not found"


@pytest.mark.parametrize("separate_streams", [True, False])
async def test_a_stream_within_its_rate_goes_through(
    start: Start, tokens: dict[str, str], separate_streams: bool
) -> None:
    """Also over a channel with the tracing interceptors only: they step aside instead of blocking the writes."""
    collector = _Collector(abort_at=-1)
    channel = await start(
        collector, limiter=RateLimiter(rate_per_s=1e6, burst=10_000), separate_streams=separate_streams
    )
    reply = await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
        _items(500), metadata=_bearer(tokens["office"]), timeout=10
    )
    assert reply.summary.accepted == 500 == collector.received


async def test_every_streamed_item_counts_against_the_rate_limit(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    # A frozen clock: the bucket never refills. 20 items from the burst, then items wait 0.02 s, 0.04 s (debt
    # grows), and the third would wait 0.06 s, more than the 0.05 s allowed: refused.
    limiter = RateLimiter(rate_per_s=50.0, burst=20, clock=lambda: 0.0)
    channel = await start(collector, limiter=limiter, wait_s=0.05)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            _items(500), metadata=_bearer(tokens["office"]), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit exceeded for office-1 within the stream" in (err.value.details() or "")
    assert collector.received <= 22, "items beyond the limit never reach the upstream"
    assert not limiter.allow("office-1"), "the stream spent the identity's budget"


async def test_a_stream_is_paced_not_refused_when_it_only_briefly_outruns_its_rate(
    start: Start, tokens: dict[str, str]
) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=100.0, burst=10))
    started = time.monotonic()
    reply = await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
        _items(40), metadata=_bearer(tokens["office"]), timeout=10
    )
    assert reply.summary.accepted == 40
    # 10 from the burst (one spent on the call), 31 paced at 100/s: about 0.3 s.
    assert time.monotonic() - started >= 0.25


async def test_upstream_calls_get_the_default_deadline_when_the_caller_sets_none(
    start: Start, tokens: dict[str, str]
) -> None:
    coordinator = _SlowCoordinator()
    channel = await start(coordinator, limiter=RateLimiter(rate_per_s=100.0, burst=100), default_timeout_s=7.0)
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=_bearer(tokens["office"]))
    await stub.ListTasks(case_pb2.ListTasksRequest(), metadata=_bearer(tokens["office"]), timeout=2.0)
    without, with_caller = coordinator.deadlines
    assert without is not None and 6.0 < without <= 7.1
    assert with_caller is not None and 1.0 < with_caller <= 2.1


async def test_a_stream_without_deadline_gets_the_default(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=1e6, burst=1000), default_timeout_s=5.0)
    await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(_items(3), metadata=_bearer(tokens["office"]))
    [remaining] = collector.deadlines
    assert remaining is not None and 4.0 < remaining <= 5.1
    await asyncio.sleep(0)


async def test_request_size_is_limited_per_method(start: Start, tokens: dict[str, str]) -> None:
    coordinator = _SlowCoordinator()
    list_tasks = "/qingfeng.v1.CoordinatorService/ListTasks"
    channel = await start(
        coordinator, limiter=RateLimiter(rate_per_s=100.0, burst=100), max_bytes=100, per_method={list_tasks: 2000}
    )
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    await stub.ListTasks(case_pb2.ListTasksRequest(case_id="c" * 1500), metadata=_bearer(tokens["office"]), timeout=5)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListTasks(
            case_pb2.ListTasksRequest(case_id="c" * 2500), metadata=_bearer(tokens["office"]), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than the 2000 bytes this method accepts" in (err.value.details() or "")
    assert len(coordinator.deadlines) == 1, "the oversized request never reached the upstream"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetCase(case_pb2.GetCaseRequest(id="x" * 200), metadata=_bearer(tokens["office"]), timeout=5)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "other methods keep the default of 100 bytes"


async def test_each_stream_item_is_size_limited(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=1e6, burst=1000), max_bytes=300)

    async def items() -> AsyncIterator[source_pb2.ImportPostsRequest]:
        yield source_pb2.ImportPostsRequest(jsonl_line="small")
        yield source_pb2.ImportPostsRequest(jsonl_line="x" * 1000)
        yield source_pb2.ImportPostsRequest(jsonl_line="never sent")

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            items(), metadata=_bearer(tokens["office"]), timeout=5
        )
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert collector.received <= 1


async def test_a_stream_continues_the_callers_trace(start: Start, tokens: dict[str, str]) -> None:
    collector = _Collector(abort_at=-1)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=1e6, burst=1000))
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
        _items(2), metadata=(*_bearer(tokens["office"]), ("traceparent", traceparent)), timeout=5
    )
    [seen] = collector.traceparents
    assert seen.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"


async def _long_items(count: int, size: int) -> AsyncIterator[source_pb2.ImportPostsRequest]:
    text = "受" * (size // 3)  # three bytes each in UTF-8
    for i in range(count):
        yield source_pb2.ImportPostsRequest(source_id="nope", jsonl_line=f'{{"id": "{i}", "text": "{text}"}}')


@pytest.mark.parametrize("abort_at", [0, 1, 50])
async def test_a_refused_stream_is_read_to_its_end_before_the_partner_gets_the_answer(
    start: Start, tokens: dict[str, str], abort_at: int
) -> None:
    """So no send of the partner's is still on its way when the answer comes (the race below). 500 items of 10 kB
    are far more than HTTP/2 flow control lets a partner send ahead of a gateway that stopped reading."""
    channel = await start(_Collector(abort_at=abort_at), limiter=RateLimiter(rate_per_s=1e6, burst=10_000))
    sent: list[int] = []

    async def items() -> AsyncIterator[source_pb2.ImportPostsRequest]:
        async for item in _long_items(500, 10_000):
            yield item
            sent.append(len(sent))
        sent.append(-1)  # the partner asked for more after its last item: it half-closes next

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            items(), metadata=_bearer(tokens["office"]), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    assert sent[-1] == -1 and len(sent) == 501, f"the answer came after {len(sent)} items were sent"


@pytest.mark.parametrize("abort_at", [0, 1])
async def test_an_aborted_stream_keeps_its_code_however_its_last_send_races_the_answer(
    start: Start, tokens: dict[str, str], abort_at: int
) -> None:
    """The symptom itself: a partner still sending when the answer comes. Unless the gateway drains the rest of its
    stream first, grpc.aio's client now and then turns its failing last send into INTERNAL "Internal error from
    Core" over the real status (1 to 3 in 100 of these calls when measured). A few rounds of calls, 16 at a time
    with a garbage collection before each, give it chances to show; the test above checks the drain for sure."""
    collector = _Collector(abort_at=abort_at)
    channel = await start(collector, limiter=RateLimiter(rate_per_s=1e9, burst=10**9), streams_per_identity=16)
    stub = source_pb2_grpc.CollectorServiceStub(channel)

    async def one(size: int) -> str:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ImportPosts(_long_items(300, size), metadata=_bearer(tokens["office"]), timeout=10)
        return f"{err.value.code().name}: {err.value.details()}"

    answers: list[str] = []
    for _ in range(ROUNDS):
        gc.collect()
        answers += await asyncio.gather(*(one(size) for size in (1_000, 10_000) * 8))
    assert set(answers) == {"NOT_FOUND: source 'nope' not found"}, Counter(answers)


async def test_a_refused_stream_is_drained_for_a_bounded_time(
    start: Start, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner that neither half-closes nor sends more gets its answer after the drain time, not its deadline.

    The upstream refuses the call before reading; the partner's first item comes later, so the gateway sees the
    refusal when it has that item and drains from there. (While the gateway waits for an item to forward it does
    not watch the upstream: a partner that stalls before the upstream ends holds the call until its deadline.)"""
    monkeypatch.setattr(gateway_proxy, "_DRAIN_S", 0.3)
    channel = await start(_Collector(abort_at=0), limiter=RateLimiter(rate_per_s=1e6, burst=1000))

    async def stalls() -> AsyncIterator[source_pb2.ImportPostsRequest]:
        await asyncio.sleep(0.3)
        yield source_pb2.ImportPostsRequest(source_id="nope", jsonl_line="{}")
        await asyncio.sleep(30)

    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            stalls(), metadata=_bearer(tokens["office"]), timeout=20
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    assert 0.5 <= time.monotonic() - started < 5


async def test_a_refused_stream_is_drained_for_a_bounded_amount(
    start: Start, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partner that keeps sending gets its answer once the drain read ``_DRAIN_BYTES``, long before the drain time
    or its deadline. (Its last send may then race the answer: that is the bound's price, so the code is not checked.)"""
    monkeypatch.setattr(gateway_proxy, "_DRAIN_S", 30.0)
    monkeypatch.setattr(gateway_proxy, "_DRAIN_BYTES", 200_000)
    channel = await start(_Collector(abort_at=1), limiter=RateLimiter(rate_per_s=1e6, burst=1000))
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):
        await source_pb2_grpc.CollectorServiceStub(channel).ImportPosts(
            _long_items(1_000_000, 10_000), metadata=_bearer(tokens["office"]), timeout=20
        )
    assert time.monotonic() - started < 10
