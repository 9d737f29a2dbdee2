"""A gateway in process over real Elasticsearch indices made for one test, for the search tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
from qingfeng.elastic import FAMILIES, IndexNames, bulk_index, create_client, delete_family, ensure_index
from qingfeng.settings import ElasticsearchSettings, GrpcSettings

from gateway.app import Gateway, build_gateway, load_policy
from gateway.settings import GatewaySettings
from tests.identity import GATEWAY

__all__ = ["indexed_gateway", "with_ids"]


def with_ids(docs: Sequence[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """Documents as the indexer writes them: the id inside the source too."""
    return [(i, {"id": i, **d}) for i, d in docs]


@asynccontextmanager
async def indexed_gateway(
    es_url: str,
    policy_file: Path,
    tag: str,
    documents: Mapping[str, Sequence[tuple[str, dict[str, Any]]]],
    *,
    merge: bool = False,
    **settings: Any,
) -> AsyncIterator[tuple[Gateway, grpc.aio.Channel]]:
    """Index ``documents`` (family → (id, document)) under a fresh prefix, serve a gateway over them on loopback and
    yield it with a client channel; the indices are deleted afterwards."""
    prefix = f"qftest-{tag}-{uuid.uuid4().hex[:10]}"
    es = create_client(ElasticsearchSettings(url=es_url))
    try:
        for family, docs in documents.items():
            names = await ensure_index(es, prefix, family)
            result = await bulk_index(es, names.write_alias, list(docs), refresh=True, merge=merge)
            assert result.ok, result.failed
        gateway_settings = GatewaySettings(
            access_policy=policy_file,
            grpc=GrpcSettings(port=0, plaintext=True),
            elasticsearch=ElasticsearchSettings(url=es_url, index_prefix=prefix),
            **settings,
        )
        built = build_gateway(gateway_settings, load_policy(gateway_settings), GATEWAY)
        try:
            await built.grpc_server.server.start()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{built.grpc_server.port}") as channel:
                yield built, channel
        finally:
            await built.grpc_server.server.stop(None)
            for cleanup in built.cleanups:
                await cleanup()
    finally:
        for family in FAMILIES:
            await delete_family(es, IndexNames(prefix, family))
        await es.close()
