"""A 3,000-post `qingfeng import` into a collector process that exports to the real local Jaeger yields bounded traces;
at sample ratio 0 an error and an alert still reach Jaeger, and nothing else does.

Needs `qingfeng stack up --with-jaeger` (OTLP 127.0.0.1:4317, API http://127.0.0.1:16686). Jaeger is opt-in: CI does
not build it (the Go build takes over three minutes), so without it this test is skipped, locally and in CI, and
``test_traces_bounded.py`` checks the same in memory. The collector runs as `python -m services.collector` (role
``all``) at sample ratio 1.0 under a service name of its own, so Jaeger's answer holds only this run's traces.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch
from opentelemetry.trace import Status, StatusCode
from qingfeng.cli.pki import IMPORT_ISSUER, ca_file, key_file
from qingfeng.settings import TelemetrySettings
from qingfeng.telemetry import build_provider
from qingfeng.trace_keep import keep

from services.collector.settings import CollectorSettings
from tests.services.collector.integration.test_import_shared_data import (
    POSTS_FILE,
    REPO,
    _environment,
    _free_port,
    _wait_serving,
)

pytestmark = [pytest.mark.integration, pytest.mark.data]

JAEGER = "http://127.0.0.1:16686"
POSTS = 3_000
BOUND = 50


def _get(path: str) -> Any:
    with urllib.request.urlopen(f"{JAEGER}{path}", timeout=30) as response:
        return json.loads(response.read())


def _jaeger_up() -> bool:
    try:
        _get("/api/services")
    except OSError:
        return False
    return True


def _traces(service: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = _get(f"/api/traces?service={service}&limit=20000&lookback=1h")["data"]
    return found


def _follows(span: dict[str, Any]) -> list[str]:
    """The trace ids a span links to (Jaeger shows OTLP links as FOLLOWS_FROM references)."""
    return [ref["traceID"] for ref in span.get("references", []) if ref["refType"] == "FOLLOWS_FROM"]


async def test_a_3000_post_import_is_many_small_traces_in_jaeger(
    shared_data: Path, settings: CollectorSettings, es: AsyncElasticsearch, tmp_path: Path
) -> None:
    if not _jaeger_up():
        pytest.skip(f"no Jaeger at {JAEGER}: `qingfeng stack up --with-jaeger` (opt-in, not built in CI)")
    service = f"qingfeng-collector-test-{uuid.uuid4().hex[:8]}"
    port = _free_port()
    env = {
        **_environment(settings, tmp_path, port),
        "QF_COLLECTOR_TELEMETRY__OTLP_ENDPOINT": "http://127.0.0.1:4317",
        "QF_COLLECTOR_TELEMETRY__SAMPLE_RATIO": "1.0",
        "QF_COLLECTOR_TELEMETRY__SERVICE_NAME": service,
    }
    log = (tmp_path / "collector.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.collector", env=env, cwd=str(REPO), stdout=log, stderr=log
    )
    try:
        await _wait_serving(f"127.0.0.1:{port}", process, tmp_path / "state")
        cli = Path(sys.executable).with_name("qingfeng")
        importer = await asyncio.create_subprocess_exec(
            str(cli), "import", str(shared_data / POSTS_FILE), "--collector", f"127.0.0.1:{port}", "--quiet",
            "--limit", str(POSTS), "--key-file", str(key_file(tmp_path / "state", IMPORT_ISSUER)),
            "--ca-file", str(ca_file(tmp_path / "state")),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(importer.communicate(), 150)
        assert importer.returncode == 0, err.decode(errors="replace")
        await asyncio.sleep(5.0)  # the indexer's last batches
    finally:
        process.send_signal(signal.SIGTERM)  # a clean stop flushes the span exporter
        await asyncio.wait_for(process.wait(), 60)
        log.close()

    traces: list[dict[str, Any]] = []
    for _ in range(30):  # Jaeger stores what its batch processor hands on: wait until every post's trace is in
        traces = await asyncio.to_thread(_traces, service)
        roots = [t for t in traces if any(s["operationName"].startswith("collect ") for s in t["spans"])]
        if len(roots) >= POSTS:
            break
        await asyncio.sleep(2.0)
    sizes = Counter({t["traceID"]: len(t["spans"]) for t in traces})
    assert len(roots) == POSTS, f"{len(roots)} post traces of {len(traces)}"
    assert max(sizes.values()) <= BOUND, f"biggest trace: {sizes.most_common(1)}"

    (call,) = [t for t in traces if any(s["operationName"].endswith("/ImportPosts") for s in t["spans"])]
    slices = [s for s in call["spans"] if s["operationName"] == "collector send slice"]
    linked = {trace_id for s in slices for trace_id in _follows(s)}
    post_traces = {t["traceID"] for t in roots}
    assert slices and linked and linked <= post_traces, "the call's slice spans link to the posts' traces"
    batches = [s for t in traces for s in t["spans"] if s["operationName"].endswith(" process batch")]
    assert batches and {tid for s in batches for tid in _follows(s)} <= post_traces
    # A link leads somewhere: the linked trace is in Jaeger with the post's collect and send spans.
    (one,) = (await asyncio.to_thread(_get, f"/api/traces/{sorted(linked)[0]}"))["data"]
    assert sorted(s["operationName"].split(" ")[0] for s in one["spans"]) == ["collect", "send"]


async def test_at_ratio_zero_errors_and_alerts_reach_jaeger_and_nothing_else() -> None:
    if not _jaeger_up():
        pytest.skip(f"no Jaeger at {JAEGER}: `qingfeng stack up --with-jaeger` (opt-in, not built in CI)")
    service = f"qingfeng-keep-test-{uuid.uuid4().hex[:8]}"
    settings = TelemetrySettings(sample_ratio=0.0, otlp_endpoint="http://127.0.0.1:4317", service_name=service)
    provider = build_provider(settings, process="grader")
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("grader process batch"):
        with tracer.start_as_current_span("fine"):
            pass
        with tracer.start_as_current_span("bulk") as failing:
            failing.set_status(Status(StatusCode.ERROR, "refused"))
    with tracer.start_as_current_span("quiet batch"):
        pass
    # As the grader's KafkaOutputSink sends an alert: the parent context marked keep().
    with tracer.start_as_current_span("send qingfeng.alerts.v1", context=keep()):
        pass
    provider.shutdown()  # flushes the OTLP exporter
    names: list[str] = []
    for _ in range(20):
        names = sorted(s["operationName"] for t in await asyncio.to_thread(_traces, service) for s in t["spans"])
        if len(names) >= 3:
            break
        await asyncio.sleep(1.0)
    assert names == ["bulk", "grader process batch", "send qingfeng.alerts.v1"]
