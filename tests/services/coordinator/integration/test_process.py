"""`python -m services.coordinator` as a process: it starts against the local Kafka with its own topics and SQLite
file, reports SERVING, believes only signed callers (the credential interceptor app.py installs), and stops cleanly
on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from grpc_health.v1 import health_pb2
from qingfeng.v1 import case_pb2, case_pb2_grpc

from services.coordinator.settings import CoordinatorTopics
from tests.e2e.processes import start
from tests.identity import signed_channel, trust_file

pytestmark = pytest.mark.integration


@pytest.fixture
async def topics(kafka_bootstrap: str) -> AsyncIterator[dict[str, str]]:
    run = uuid.uuid4().hex[:10]
    names = {name: f"qftest.{run}.{name}.v1" for name in CoordinatorTopics.model_fields}
    yield names
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics(sorted(names.values()))
    finally:
        await admin.close()


async def test_process_serves_signed_callers_only(kafka_bootstrap: str, topics: dict[str, str], tmp_path: Path) -> None:
    env = {
        "QF_COORDINATOR_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "QF_COORDINATOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'coordinator.db'}",
        "QF_COORDINATOR_GRPC__PLAINTEXT": "true",
        "QF_COORDINATOR_IDENTITY__TRUST_FILE": str(trust_file(tmp_path)),
        "QF_COORDINATOR_CONSUMER__GROUP_ID": f"{topics['alerts']}-group",
        **{f"QF_COORDINATOR_TOPICS__{name.upper()}": topic for name, topic in topics.items()},
    }
    process = start("coordinator", "services.coordinator", env, tmp_path)
    try:
        status = await asyncio.to_thread(process.wait_serving, 90.0)
        assert status == health_pb2.HealthCheckResponse.SERVING, process.log_tail()
        async with signed_channel(f"127.0.0.1:{process.port}", principal="office.li", agency="opinion_office") as ch:
            listed = await case_pb2_grpc.CoordinatorServiceStub(ch).ListCases(case_pb2.ListCasesRequest())
            assert list(listed.cases) == []
        async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as bare:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await case_pb2_grpc.CoordinatorServiceStub(bare).ListCases(case_pb2.ListCasesRequest())
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        code = await asyncio.to_thread(process.stop)
    assert code == 0, process.log_tail()
