"""ImportPosts through the gateway against the real collector servicer (in-process, SQLite, in-memory producer):
a stream the collector aborts reaches the partner with the collector's own code and message, as a direct call does
(README "Known limits" had it arrive as INTERNAL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings
from qingfeng.v1 import source_pb2, source_pb2_grpc

from gateway.access import AccessPolicy
from gateway.interceptors import GuardInterceptor
from gateway.proxy import proxy_handler
from gateway.ratelimit import RateLimiter
from services.collector.server import CollectorServicer
from services.collector.tips import TipCipher, TipDesk
from tests.identity import GATEWAY, TRUST, as_caller
from tests.services.collector.fakes import FakeProducer
from tests.services.collector.harness import NOW, migrated_store, pipeline_over

COLLECTOR = source_pb2.DESCRIPTOR.services_by_name["CollectorService"]
IMPORT_POSTS = f"/{COLLECTOR.full_name}/ImportPosts"


@pytest.fixture
async def addresses(tmp_path: Path, policy: AccessPolicy) -> AsyncIterator[tuple[str, str]]:
    """(collector address, gateway address), both on loopback."""
    async with migrated_store(tmp_path / "collector.db") as (_, store):
        pipeline = pipeline_over(FakeProducer())
        tips = TipDesk(store, pipeline, TipCipher(SecretStr(Fernet.generate_key().decode())))
        servicer = CollectorServicer(store, pipeline, tips, import_chunk=3, clock=lambda: NOW)
        collector = build_server(
            GrpcSettings(port=0, plaintext=True),
            services=[(COLLECTOR, lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s))],
            interceptors=[CredentialInterceptor(TRUST)],
        )
        await collector.server.start()
        upstream = grpc.aio.insecure_channel(f"127.0.0.1:{collector.port}")
        gateway = grpc.aio.server(interceptors=[GuardInterceptor(policy, RateLimiter(rate_per_s=100.0, burst=100))])
        gateway.add_generic_rpc_handlers((proxy_handler({COLLECTOR: upstream}, GATEWAY),))
        port = gateway.add_insecure_port("127.0.0.1:0")
        await gateway.start()
        try:
            yield f"127.0.0.1:{collector.port}", f"127.0.0.1:{port}"
        finally:
            await gateway.stop(None)
            await upstream.close()
            await collector.server.stop(None)


async def _items(count: int) -> AsyncIterator[source_pb2.ImportPostsRequest]:
    for i in range(count):
        yield source_pb2.ImportPostsRequest(source_id="no-such-source", jsonl_line=f'{{"id": "{i}", "text": "受贿"}}')


async def _import(address: str, metadata: tuple[tuple[str, str], ...], count: int) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = source_pb2_grpc.CollectorServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ImportPosts(_items(count), metadata=metadata, timeout=20)
    return err.value


@pytest.mark.parametrize("count", [1, 500])
async def test_an_import_naming_an_unknown_source_keeps_its_code_through_the_gateway(
    addresses: tuple[str, str], tokens: dict[str, str], count: int
) -> None:
    collector, gateway = addresses
    direct = await _import(collector, as_caller(IMPORT_POSTS, principal="office-1"), count)
    through = await _import(gateway, (("authorization", f"Bearer {tokens['office']}"),), count)
    assert direct.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), direct.details()
    assert (through.code(), through.details()) == (direct.code(), direct.details())


async def test_a_batched_import_is_answered_the_same_through_the_gateway(
    addresses: tuple[str, str], tokens: dict[str, str], tmp_path: Path
) -> None:
    """`qingfeng import`'s batches (jsonl_lines) pass the gateway's checks, and line numbers survive the proxy."""
    from qingfeng.cli.import_posts import import_file

    from tests.services.collector.unit.test_server import line

    lines = [line(f"g{i}", f"第{i}号通知：城东道路封闭施工一周，请绕行{i}") for i in range(25)]
    lines[4], lines[22] = "{broken", "[1]"
    data = tmp_path / "posts.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    collector, gateway = addresses

    def run(address: str, metadata: object) -> tuple[int, int, int, list[int]]:
        with grpc.insecure_channel(address) as channel:
            totals = import_file(
                source_pb2_grpc.CollectorServiceStub(channel),
                data,
                metadata=metadata,  # type: ignore[arg-type]
                chunk_lines=10,
                batch_lines=4,
            )
        return totals.accepted, totals.duplicate, totals.rejected, [n for n, _, _ in totals.rejections]

    direct = await asyncio.to_thread(run, collector, lambda: as_caller(IMPORT_POSTS, principal="office-1"))
    through = await asyncio.to_thread(run, gateway, (("authorization", f"Bearer {tokens['office']}"),))
    assert direct == (23, 0, 2, [5, 23])
    assert through == (0, 23, 2, [5, 23])  # the same posts again: duplicates, recognised by id
