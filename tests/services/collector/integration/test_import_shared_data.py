"""`qingfeng import` of ../shared/data into a started collector process puts every post in Elasticsearch exactly once.

The collector runs as `python -m services.collector` (role ``all``: API, pipeline and indexer in one process) with
this test's own topics, index prefix, consumer group and SQLite file; the file is streamed by the real CLI
(`qingfeng import FILE --collector HOST:PORT`). Then: 57,576 documents, and a search finds them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography.fernet import Fernet
from elasticsearch import AsyncElasticsearch
from grpc_health.v1 import health_pb2, health_pb2_grpc
from qingfeng.cli.pki import IMPORT_ISSUER, ca_file, key_file, security_environment
from qingfeng.elastic import IndexNames

from services.collector.settings import CollectorSettings
from tests.services.collector.integration.helpers import wait_for_count

pytestmark = [pytest.mark.integration, pytest.mark.data]

REPO = Path(__file__).resolve().parents[4]
POSTS_FILE = "weibo_posts.jsonl"
EXPECTED = 57_576


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _environment(settings: CollectorSettings, tmp_path: Path, port: int) -> dict[str, str]:
    topics = settings.topics
    # As `qingfeng up` does: TLS by the local CA, the trust file, and the ops-import key the CLI signs with.
    security = {k: v for k, v in security_environment(tmp_path / "state", {}).items() if k.startswith("QF_COLLECTOR_")}
    return {
        **os.environ,
        **security,
        "PYTHONPATH": str(REPO),
        "QF_COLLECTOR_ROLE": "all",
        "QF_COLLECTOR_GRPC__PORT": str(port),
        "QF_COLLECTOR_LOG__LEVEL": "WARNING",
        "QF_COLLECTOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'collector.db'}",
        "QF_COLLECTOR_TIP_KEY": Fernet.generate_key().decode(),
        "QF_COLLECTOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "QF_COLLECTOR_ELASTICSEARCH__URL": settings.elasticsearch.url,
        "QF_COLLECTOR_ELASTICSEARCH__INDEX_PREFIX": settings.elasticsearch.index_prefix,
        "QF_COLLECTOR_TOPICS__POSTS": topics.posts,
        "QF_COLLECTOR_TOPICS__POSTS_DEADLETTER": topics.posts_deadletter,
        "QF_COLLECTOR_TOPICS__DEADLETTER": topics.deadletter,
        "QF_COLLECTOR_INDEXER__GROUP_ID": settings.indexer.group_id,
    }


async def _wait_serving(
    address: str, process: asyncio.subprocess.Process, state: Path, timeout_s: float = 90.0
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    credentials = grpc.ssl_channel_credentials(ca_file(state).read_bytes())
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while loop.time() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"collector exited with {process.returncode} before serving")
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"collector at {address} not SERVING within {timeout_s} s")


@pytest.fixture
async def collector(settings: CollectorSettings, tmp_path: Path) -> AsyncIterator[str]:
    """A started collector process; yields its gRPC address, then stops it with SIGTERM (it must exit cleanly)."""
    port = _free_port()
    log = (tmp_path / "collector.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.collector",
        env=_environment(settings, tmp_path, port),
        cwd=str(REPO),
        stdout=log,
        stderr=log,
    )
    try:
        await _wait_serving(f"127.0.0.1:{port}", process, tmp_path / "state")
        yield f"127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                code = await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                code = await process.wait()
            assert code == 0, (tmp_path / "collector.log").read_text(errors="replace")[-3000:]
        log.close()


async def test_import_of_the_shared_data_indexes_every_post_once(
    shared_data: Path, settings: CollectorSettings, es: AsyncElasticsearch, collector: str, tmp_path: Path
) -> None:
    data = shared_data / POSTS_FILE
    if not data.is_file():
        pytest.skip(f"{data} not found")
    cli = Path(sys.executable).with_name("qingfeng")
    importer = await asyncio.create_subprocess_exec(
        str(cli), "import", str(data), "--collector", collector, "--quiet",
        "--key-file", str(key_file(tmp_path / "state", IMPORT_ISSUER)), "--ca-file", str(ca_file(tmp_path / "state")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(importer.communicate(), 150)
    assert importer.returncode == 0, err.decode(errors="replace")
    summary = out.decode()
    match = re.search(r"accepted ([\d,]+), duplicate ([\d,]+), rejected ([\d,]+)", summary)
    assert match is not None, summary
    accepted, duplicate, rejected = (int(g.replace(",", "")) for g in match.groups())
    assert rejected == 0 and accepted + duplicate == EXPECTED, summary

    names = IndexNames(settings.elasticsearch.index_prefix, "posts")
    assert await wait_for_count(es, names.read_alias, EXPECTED, timeout_s=120) == EXPECTED
    await asyncio.sleep(1.0)
    assert int((await es.count(index=names.read_alias)).body["count"]) == EXPECTED  # exactly once, not more

    # The search console's kind of query: a two-character word finds the posts that contain it.
    found = await es.search(
        index=names.read_alias, query={"match_phrase": {"text_simplified": "谣言"}}, size=5, track_total_hits=True
    )
    hits = found.body["hits"]
    assert hits["total"]["value"] > 10
    assert all("谣言" in hit["_source"]["text_simplified"] for hit in hits["hits"])
    first = await es.get(index=names.write_alias, id="jsonl:import:4473713031")  # the first line of the file
    assert "临沂市委书记" in first.body["_source"]["text"]


async def test_a_batched_import_numbers_rejections_by_file_line_and_indexes_each_post_once(
    settings: CollectorSettings, es: AsyncElasticsearch, collector: str, tmp_path: Path
) -> None:
    # 45 posts, each of the first 10 again further down, and two broken lines: in chunks of 20 lines sent in
    # batches of 7, so batches and chunks end at different places and the broken lines sit inside batches.
    from tests.services.collector.unit.test_server import line

    posts = [line(f"b{i}", f"第{i}号通知：某县道路封闭施工，第{i}段请绕行，施工期间注意安全{i}") for i in range(45)]
    lines = [*posts[:30], "{broken", *posts[:10], *posts[30:], "[1, 2]"]
    data = tmp_path / "batched.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cli = Path(sys.executable).with_name("qingfeng")
    importer = await asyncio.create_subprocess_exec(
        str(cli), "import", str(data), "--collector", collector, "--quiet", "--chunk-lines", "20",
        "--batch-lines", "7", "--key-file", str(key_file(tmp_path / "state", IMPORT_ISSUER)),
        "--ca-file", str(ca_file(tmp_path / "state")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(importer.communicate(), 60)
    assert importer.returncode == 0, err.decode(errors="replace")
    summary = out.decode()
    assert "imported 57 lines: accepted 45, duplicate 10, rejected 2" in summary, summary
    assert "  line 31: MALFORMED" in summary and "  line 57: MALFORMED" in summary, summary

    names = IndexNames(settings.elasticsearch.index_prefix, "posts")
    assert await wait_for_count(es, names.read_alias, 45, timeout_s=60) == 45
    await asyncio.sleep(1.0)
    assert int((await es.count(index=names.read_alias)).body["count"]) == 45  # each once, not more
    found = await es.mget(index=names.write_alias, ids=[f"jsonl:import:b{i}" for i in range(45)])
    assert all(doc["found"] for doc in found.body["docs"])
