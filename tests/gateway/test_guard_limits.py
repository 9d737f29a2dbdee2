"""The guard's abuse limits and live policy on a real in-process server: expired tokens, revocation without restart
(file change and SIGHUP), failed authentications per peer, and concurrent calls and streams per identity and server."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
from qingfeng.v1 import case_pb2, case_pb2_grpc, source_pb2, source_pb2_grpc

from gateway.access import PolicyFile, PolicySource, hash_token, parse_access_policy, reload_on_sighup
from gateway.interceptors import GuardInterceptor, peer_address
from gateway.ratelimit import ConcurrencyLimiter, FailureLimiter, RateLimiter

LIST_TASKS = "/qingfeng.v1.CoordinatorService/ListTasks"
IMPORT_POSTS = "/qingfeng.v1.CollectorService/ImportPosts"


def _policy(*, police: str = "police-secret", expires: str = "2099-01-01T00:00:00Z") -> str:
    return f"""
version: limits
identities:
  - name: police-1
    agency: police_cyber
    token_sha256: "{hash_token(police)}"
    grants: ["{LIST_TASKS}", "{IMPORT_POSTS}"]
  - name: office-1
    agency: opinion_office
    token_sha256: "{hash_token("office-secret")}"
    grants: ["{LIST_TASKS}"]
  - name: old-1
    agency: petitions
    token_sha256: "{hash_token("old-secret")}"
    expires_at: "{expires}"
    grants: ["{LIST_TASKS}"]
"""


class _Blocking(case_pb2_grpc.CoordinatorServiceServicer, source_pb2_grpc.CollectorServiceServicer):
    """Calls wait for ``release`` so that a test can hold several of them in flight."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0

    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: grpc.aio.ServicerContext) -> object:
        self.running += 1
        try:
            if request.case_id == "hold":
                await self.release.wait()
            return case_pb2.ListTasksResponse()
        finally:
            self.running -= 1

    async def ImportPosts(self, requests: AsyncIterator[object], context: grpc.aio.ServicerContext) -> object:
        self.running += 1
        try:
            await self.release.wait()
            return source_pb2.ImportPostsResponse()
        finally:
            self.running -= 1


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., object]]:
    servers: list[grpc.aio.Server] = []
    channels: list[grpc.aio.Channel] = []

    async def start(
        policy: PolicySource,
        *,
        failures: FailureLimiter | None = None,
        concurrency: ConcurrencyLimiter | None = None,
    ) -> tuple[grpc.aio.Channel, _Blocking]:
        servicer = _Blocking()
        guard = GuardInterceptor(
            policy, RateLimiter(rate_per_s=1000.0, burst=1000), failures=failures, concurrency=concurrency
        )
        server = grpc.aio.server(interceptors=[guard])
        case_pb2_grpc.add_CoordinatorServiceServicer_to_server(servicer, server)
        source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        servers.append(server)
        channels.append(channel)
        return channel, servicer

    yield start
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


async def _code(channel: grpc.aio.Channel, token: str, case_id: str = "") -> tuple[grpc.StatusCode, str]:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    try:
        await stub.ListTasks(case_pb2.ListTasksRequest(case_id=case_id), metadata=_bearer(token), timeout=5)
    except grpc.aio.AioRpcError as err:
        return err.code(), err.details() or ""
    return grpc.StatusCode.OK, ""


def _write(path: Path, text: str, mtime_s: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime_s, mtime_s))


async def test_an_expired_token_is_unauthenticated_with_a_clear_message(serve: Callable[..., object]) -> None:
    channel, _ = await serve(parse_access_policy(_policy(expires="2020-01-01T00:00:00Z")))  # type: ignore[misc]
    code, message = await _code(channel, "old-secret")
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert message == "the credentials of petitions/old-1 expired at 2020-01-01T00:00:00Z; ask for new ones"
    assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.OK


async def test_a_revoked_token_stops_working_without_a_restart(serve: Callable[..., object], tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    _write(path, _policy(), 1_000)
    source = PolicyFile(path, check_interval_s=0.05)
    channel, _ = await serve(source)  # type: ignore[misc]
    assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.OK
    _write(path, _policy(police="rotated-secret"), 2_000)
    await asyncio.sleep(0.1)
    assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert (await _code(channel, "rotated-secret"))[0] == grpc.StatusCode.OK
    # A broken file does not lock everybody out: the last good policy stays.
    _write(path, "version: [broken", 3_000)
    await asyncio.sleep(0.1)
    assert (await _code(channel, "rotated-secret"))[0] == grpc.StatusCode.OK
    assert source.last_error and "not valid YAML" in source.last_error


async def test_sighup_rereads_the_policy_at_once(serve: Callable[..., object], tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    _write(path, _policy(), 1_000)
    source = PolicyFile(path, check_interval_s=3600.0)  # the stat check alone would not notice for an hour
    channel, _ = await serve(source)  # type: ignore[misc]
    stop = asyncio.Event()
    watching = asyncio.create_task(reload_on_sighup(source)(stop))
    await asyncio.sleep(0)
    try:
        _write(path, _policy(police="rotated-secret"), 2_000)
        assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.OK
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.05)
        assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.UNAUTHENTICATED
        assert (await _code(channel, "rotated-secret"))[0] == grpc.StatusCode.OK
    finally:
        stop.set()
        await watching


async def test_failed_authentications_are_limited_per_peer(serve: Callable[..., object]) -> None:
    failures = FailureLimiter(max_failures=3, window_s=60.0)
    channel, _ = await serve(parse_access_policy(_policy()), failures=failures)  # type: ignore[misc]
    codes = [(await _code(channel, f"guess-{i}"))[0] for i in range(5)]
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    code, message = await _code(channel, "police-secret")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, "the right token waits out the window too"
    assert message == "too many failed authentications from this address"
    assert failures.blocked("ipv4:127.0.0.1") and not failures.blocked("ipv4:10.0.0.9")


def test_failures_count_per_address_not_per_connection() -> None:
    assert peer_address("ipv4:127.0.0.1:53311") == peer_address("ipv4:127.0.0.1:40000") == "ipv4:127.0.0.1"
    assert peer_address("ipv6:[::1]:53311") == "ipv6:[::1]"
    now = [0.0]
    limiter = FailureLimiter(max_failures=2, window_s=10.0, max_peers=2, clock=lambda: now[0])
    limiter.record_failure("a")
    limiter.record_failure("a")
    assert limiter.blocked("a")
    now[0] = 10.0
    assert not limiter.blocked("a"), "a new window starts"
    for peer in ("b", "c", "d"):
        limiter.record_failure(peer)
    assert len(limiter._windows) == 2, "memory stays bounded"


async def _await(call: object) -> object:
    return await call  # type: ignore[misc]


async def _hold(channel: grpc.aio.Channel, token: str, count: int) -> list[asyncio.Task[object]]:
    stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    return [
        asyncio.create_task(
            _await(stub.ListTasks(case_pb2.ListTasksRequest(case_id="hold"), metadata=_bearer(token), timeout=10))
        )
        for _ in range(count)
    ]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_concurrent_calls_are_bounded_per_identity_and_per_server(serve: Callable[..., object]) -> None:
    limits = ConcurrencyLimiter(per_identity=2, streams_per_identity=1, per_server=3)
    channel, servicer = await serve(parse_access_policy(_policy()), concurrency=limits)  # type: ignore[misc]
    held = await _hold(channel, "police-secret", 2)
    await _until(lambda: servicer.running == 2)
    code, message = await _code(channel, "police-secret")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "police-1 has 2 calls in flight" in message
    held += await _hold(channel, "office-secret", 1)
    await _until(lambda: servicer.running == 3)
    code, message = await _code(channel, "office-secret")
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 3 concurrent calls" in message
    servicer.release.set()
    await asyncio.gather(*held)
    assert limits.in_flight() == 0, "every admitted call was counted out again"
    assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.OK


async def test_concurrent_streams_are_bounded_per_identity(serve: Callable[..., object]) -> None:
    limits = ConcurrencyLimiter(per_identity=10, streams_per_identity=1, per_server=10)
    channel, servicer = await serve(parse_access_policy(_policy()), concurrency=limits)  # type: ignore[misc]
    stub = source_pb2_grpc.CollectorServiceStub(channel)

    async def nothing() -> AsyncIterator[source_pb2.ImportPostsRequest]:
        for _ in range(0):
            yield source_pb2.ImportPostsRequest()

    first = asyncio.create_task(_await(stub.ImportPosts(nothing(), metadata=_bearer("police-secret"), timeout=10)))
    await _until(lambda: servicer.running == 1)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ImportPosts(nothing(), metadata=_bearer("police-secret"), timeout=10)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "streams open already" in (err.value.details() or "")
    assert (await _code(channel, "police-secret"))[0] == grpc.StatusCode.OK, "unary calls are not streams"
    servicer.release.set()
    await first
    assert limits.in_flight("police-1") == 0
