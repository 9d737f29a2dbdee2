"""One post followed across processes: gateway → collector → Kafka → grader → alert, in one trace.

A partner imports a small repost cascade through the gateway with its token and a W3C ``traceparent``. The collector
enriches and produces the posts, its indexer makes them searchable, the grader clusters them into one event, grades
it and emits an alert. The alert's Kafka headers carry the same trace id the partner started with, and the event,
with its reasons, and the posts are visible again through the gateway.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from qingfeng.v1 import common_pb2, event_pb2, event_pb2_grpc, search_pb2, search_pb2_grpc, source_pb2, source_pb2_grpc

from tests.e2e.processes import Running, free_port, start, tls_channel
from tests.shared_servers import drop_run, suite_env

pytestmark = pytest.mark.integration

CASCADE = [
    {"id": "e2e-1", "text": "网曝某县国土局长受贿千万，纪委已介入调查", "parent_id": None},
    {"id": "e2e-2", "text": "转发微博", "parent_id": "e2e-1"},
    {"id": "e2e-3", "text": "严查！", "parent_id": "e2e-1"},
    {"id": "e2e-4", "text": "真的假的", "parent_id": "e2e-2"},
]


def _lines(run_id: str) -> list[str]:
    lines = []
    for n, post in enumerate(CASCADE):
        parent = post["parent_id"]
        lines.append(
            json.dumps(
                {
                    "id": f"{post['id']}-{run_id}",
                    "text": post["text"],
                    "created_at": f"2026-11-29T10:0{n}:00+08:00",
                    "source": "weibo",
                    "author": f"author-{n}",
                    "followers": 1000 * (n + 1),
                    "reposts": 0,
                    "comments": 0,
                    "likes": 0,
                    "parent_id": f"{parent}-{run_id}" if parent else None,
                },
                ensure_ascii=False,
            )
        )
    return lines


@pytest.fixture
def suite(
    kafka_bootstrap: str, es_url: str, tmp_path: Path, access_policy_file: Path, identity_env: dict[str, str]
) -> Iterator[tuple[dict[str, Running], str]]:
    run_id = secrets.token_hex(4)
    prefix = f"qf-e2e-{run_id}"
    common = {"KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap, "ELASTICSEARCH__URL": es_url}
    tip_key = tmp_path / "tip.key"
    tip_key.write_text("c2VjcmV0LWtleS1mb3ItZTJlLXRlc3RzLW9ubHktMzI=\n")
    collector_port, grader_port = free_port(), free_port()
    envs = {
        "collector": {
            **{f"QF_COLLECTOR_{k}": v for k, v in common.items()},
            **suite_env("collector", prefix),
            "QF_COLLECTOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/collector.db",
            "QF_COLLECTOR_TIP_KEY_FILE": str(tip_key),
        },
        "grader": {
            **{f"QF_GRADER_{k}": v for k, v in common.items()},
            **suite_env("grader", prefix),
            "QF_GRADER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/grader.db",
        },
        "gateway": {
            **{f"QF_GATEWAY_{k}": v for k, v in common.items()},
            **suite_env("gateway", prefix),
            "QF_GATEWAY_ACCESS_POLICY": str(access_policy_file),
            "QF_GATEWAY_HTTP__PORT": str(free_port()),
            "QF_GATEWAY_COLLECTOR_ADDR": f"127.0.0.1:{collector_port}",
            "QF_GATEWAY_GRADER_ADDR": f"127.0.0.1:{grader_port}",
        },
    }
    ports = {"collector": collector_port, "grader": grader_port, "gateway": free_port()}
    modules = {"collector": "services.collector", "grader": "services.grader", "gateway": "gateway"}
    running: dict[str, Running] = {}
    try:
        for name in ("collector", "grader", "gateway"):
            running[name] = start(name, modules[name], {**envs[name], **identity_env}, tmp_path, port=ports[name])
        for process in running.values():
            assert process.wait_serving(timeout_s=90) == 1, process.log_tail()
        yield running, run_id
    finally:
        try:
            for process in running.values():
                process.stop()
        finally:  # after the processes, which would recreate what is deleted under them
            drop_run(kafka_bootstrap, es_url, prefix)


async def _first_alert(bootstrap: str, topic: str, timeout_s: float) -> tuple[event_pb2.Alert, dict[str, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    return event_pb2.Alert.FromString(record.value), dict(record.headers)
        raise AssertionError(f"no alert on {topic} within {timeout_s} s")
    finally:
        await consumer.stop()


async def test_an_imported_cascade_becomes_an_alert_in_one_trace(
    suite: tuple[dict[str, Running], str], kafka_bootstrap: str, gateway_tokens: dict[str, str], suite_state: Path
) -> None:
    running, run_id = suite
    trace_id = secrets.token_hex(16)
    metadata = (
        ("authorization", f"Bearer {gateway_tokens['office']}"),
        ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),
    )
    async with tls_channel(running["gateway"].port, suite_state) as channel:
        collector = source_pb2_grpc.CollectorServiceStub(channel)

        async def items() -> object:
            for line in _lines(run_id):
                yield source_pb2.ImportPostsRequest(jsonl_line=line)

        summary = (await collector.ImportPosts(items(), metadata=metadata, timeout=60)).summary
        assert (summary.accepted, summary.rejected) == (len(CASCADE), 0), summary

        alert, headers = await _first_alert(kafka_bootstrap, f"qf-e2e-{run_id}.alerts", timeout_s=60)
        assert alert.to_level >= common_pb2.WARNING_LEVEL_BLUE
        assert alert.reasons, "every grade carries its reasons"
        traceparent = headers["traceparent"].decode()
        assert traceparent.split("-")[1] == trace_id, f"the alert left the trace: {traceparent}"

        grader = event_pb2_grpc.GraderServiceStub(channel)
        event = (await grader.GetEvent(event_pb2.GetEventRequest(id=alert.event_id), metadata=metadata)).event
        assert event.post_count == len(CASCADE)
        assert event.grade.level == alert.to_level and event.grade.reasons

        search = search_pb2_grpc.SearchServiceStub(channel)
        deadline = time.monotonic() + 30
        hits: list[search_pb2.PostHit] = []
        while time.monotonic() < deadline and not hits:
            reply = await search.SearchPosts(search_pb2.SearchPostsRequest(query="受贿"), metadata=metadata)
            hits = [h for h in reply.hits if h.post.native_id == f"e2e-1-{run_id}"]
            if not hits:
                await asyncio.sleep(0.5)
        assert hits, "the source post is searchable through the gateway"
