"""Issue 13: re-importing a file already imported changes nothing downstream, across kill -9 of both processes.

The collector and the grader run as processes with TLS and signed credentials, as ``qingfeng up`` runs them. The
first 1,000 posts of the shared cascades (16 events over five months: events expire from the grader's memory
between them) are imported with ``qingfeng import --collector``; once every post is indexed and graded, both
processes are killed with SIGKILL (no final checkpoint), restarted, and the same file is imported again: nothing is
accepted, the alerts topic holds each alert once (one ``none -> level`` per event) and Elasticsearch each post once.
Then the collector loses its database and the file is imported a third time: it still knows what it produced from its
posts topic's tail (read at start), so nothing is produced. Then it loses all memory (another new database, the tail
recall off) and the file is imported a fourth time: every post goes to Kafka again and the grader drops them all
(already applied, or older than its horizon), so the alerts topic and the index are still unchanged. Before issue 13
the re-imports produced ``ev-…:1`` alerts a second time.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from qingfeng.cli.pki import IMPORT_ISSUER, ca_file, key_file
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import common_pb2, event_pb2

from services.grader.adapters.kafka import topic_partitions
from tests.e2e.processes import Running, free_port, start
from tests.shared_servers import drop_run_async, suite_env

pytestmark = pytest.mark.integration

LINES = 1000
_SUMMARY = re.compile(r"accepted ([\d,]+), duplicate ([\d,]+), rejected ([\d,]+)")


@dataclass
class Suite:
    tmp: Path
    state: Path
    identity: dict[str, str]
    bootstrap: str
    es_url: str
    run_id: str = field(default_factory=lambda: secrets.token_hex(4))
    running: dict[str, Running] = field(default_factory=dict)

    @property
    def posts_topic(self) -> str:
        return f"qf-e2e-{self.run_id}.posts"

    @property
    def alerts_topic(self) -> str:
        return f"qf-e2e-{self.run_id}.alerts"

    @property
    def prefix(self) -> str:
        return f"qf-e2e-{self.run_id}"

    def group(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def env(
        self, name: str, *, database: str, group: str = "grader", extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        service = f"QF_{name.upper()}_"
        env = {
            f"{service}KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            f"{service}ELASTICSEARCH__URL": self.es_url,
            **suite_env(name, self.prefix),
            f"{service}DATABASE__URL": f"sqlite+aiosqlite:///{self.tmp}/{database}",
        }
        if name == "grader":
            # A fresh group per run of the grader: its committed offsets then say how far this run has graded
            # (the checkpoint, not the group, says where it resumes).
            env[f"{service}CONSUMER__GROUP_ID"] = self.group(group)
        return {**env, **self.identity, **(extra or {})}

    def start(
        self, name: str, *, database: str, group: str = "grader", extra: Mapping[str, str] | None = None
    ) -> Running:
        module = {"collector": "services.collector", "grader": "services.grader"}[name]
        log_dir = self.tmp / f"logs-{secrets.token_hex(3)}"
        log_dir.mkdir()
        env = self.env(name, database=database, group=group, extra=extra)
        process = start(name, module, env, log_dir, port=free_port())
        self.running[name] = process
        assert process.wait_serving(timeout_s=120) == 1, process.log_tail()
        return process

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.proc.kill()  # SIGKILL: no shutdown, no final checkpoint
        process.proc.wait(timeout=30)

    def import_file(self, path: Path) -> tuple[int, int, int]:
        """``qingfeng import --collector`` as an operator runs it; (accepted, duplicate, rejected)."""
        cli = Path(sys.executable).with_name("qingfeng")
        args = [str(cli), "import", str(path), "--collector", f"127.0.0.1:{self.running['collector'].port}"]
        args += ["--key-file", str(key_file(self.state, IMPORT_ISSUER)), "--ca-file", str(ca_file(self.state))]
        out = subprocess.run(
            [*args, "--chunk-lines", "250", "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **self.identity},
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        found = _SUMMARY.search(out.stdout + out.stderr)
        assert found, out.stdout + out.stderr
        accepted, duplicate, rejected = (int(g.replace(",", "")) for g in found.groups())
        return accepted, duplicate, rejected


@pytest.fixture
async def suite(
    kafka_bootstrap: str, es_url: str, tmp_path: Path, suite_state: Path, identity_env: dict[str, str]
) -> AsyncIterator[Suite]:
    s = Suite(tmp_path, suite_state, identity_env, kafka_bootstrap, es_url)
    try:
        yield s
    finally:
        try:
            for process in s.running.values():
                process.stop()
        finally:  # after the processes, which would recreate what is deleted under them
            await drop_run_async(kafka_bootstrap, es_url, s.prefix)


def _cascades(shared_data: Path, dest: Path) -> Path:
    """The first LINES posts of the shared file (time-ordered, 16 cascades), written as a file to import."""
    with (shared_data / "weibo_posts.jsonl").open(encoding="utf-8") as src:
        lines = [line for _, line in zip(range(LINES), src, strict=False)]
    dest.write_text("".join(lines), encoding="utf-8")
    return dest


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        partitions = await topic_partitions(KafkaSettings(bootstrap_servers=bootstrap), topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
        return ends
    finally:
        await consumer.stop()


async def _graded_to_end(bootstrap: str, topic: str, group: str, timeout_s: float = 180.0) -> None:
    """Wait until the grader's group has committed the end of every posts partition (as of the call)."""
    ends = await _end_offsets(bootstrap, topic)
    assert ends and sum(ends.values()) > 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = {tp: await consumer.committed(tp) for tp in ends}
            if all((committed[tp] or 0) >= end for tp, end in ends.items()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(f"group {group} did not reach {ends} in {timeout_s} s: {committed}")
    finally:
        await consumer.stop()


async def _alerts(bootstrap: str, topic: str) -> list[event_pb2.Alert]:
    ends = await _end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed")
    await consumer.start()
    out: list[event_pb2.Alert] = []
    try:
        consumer.assign(list(ends))
        await consumer.seek_to_beginning(*ends)
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            for records in (await consumer.getmany(*pending, timeout_ms=1000)).values():
                out.extend(event_pb2.Alert.FromString(r.value) for r in records)
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return out


def _indexed(es_url: str, prefix: str) -> int:
    request = urllib.request.Request(f"{es_url}/{prefix}-posts/_refresh", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    with urllib.request.urlopen(f"{es_url}/{prefix}-posts/_count", timeout=30) as reply:
        return int(json.load(reply)["count"])


def _wait_indexed(es_url: str, prefix: str, expected: int, timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        try:
            count = _indexed(es_url, prefix)
        except OSError:
            count = -1
        if count >= expected:
            return count
        time.sleep(0.5)
    raise AssertionError(f"{count} posts indexed, expected {expected}")


def _check_alerts(alerts: list[event_pb2.Alert]) -> None:
    ids = Counter(a.id for a in alerts)
    assert [i for i, n in ids.items() if n > 1] == [], "an alert id was emitted twice"
    openings = Counter(a.event_id for a in alerts if a.from_level == common_pb2.WARNING_LEVEL_NONE)
    assert [e for e, n in openings.items() if n > 1] == [], "an event was announced as new twice"


async def test_reimport_after_kill_9_changes_nothing_downstream(suite: Suite, shared_data: Path) -> None:
    path = _cascades(shared_data, suite.tmp / "cascades.jsonl")
    suite.start("collector", database="collector.db")
    suite.start("grader", database="grader.db", group="grader-1")

    accepted, duplicate, rejected = suite.import_file(path)
    posts = accepted + duplicate
    assert posts > 900 and accepted + duplicate + rejected == LINES
    _wait_indexed(suite.es_url, suite.prefix, posts)
    await _graded_to_end(suite.bootstrap, suite.posts_topic, suite.group("grader-1"))
    before = await _alerts(suite.bootstrap, suite.alerts_topic)
    assert len({a.event_id for a in before}) >= 3, "the cascades raise alerts"
    _check_alerts(before)
    produced = sum((await _end_offsets(suite.bootstrap, suite.posts_topic)).values())

    # kill -9 both (no final checkpoint, the collector's memory only in its database), restart, import again
    suite.kill("collector")
    suite.kill("grader")
    suite.start("collector", database="collector.db")
    suite.start("grader", database="grader.db", group="grader-2")
    assert suite.import_file(path) == (0, posts, rejected)
    assert sum((await _end_offsets(suite.bootstrap, suite.posts_topic)).values()) == produced, "nothing produced"
    await _graded_to_end(suite.bootstrap, suite.posts_topic, suite.group("grader-2"))
    after = await _alerts(suite.bootstrap, suite.alerts_topic)
    _check_alerts(after)
    assert sorted(a.id for a in after) == sorted(a.id for a in before)
    assert _indexed(suite.es_url, suite.prefix) == posts
    dropped_before = _dropped(suite.running["grader"])  # by the replay, as the killed run decided

    # The collector loses its database: it still knows what it produced from its posts topic's tail, read at start.
    suite.kill("collector")
    suite.start("collector", database="collector-new.db")
    assert suite.import_file(path) == (0, posts, rejected)
    assert sum((await _end_offsets(suite.bootstrap, suite.posts_topic)).values()) == produced, "nothing produced"

    # It loses all memory (another new database, the tail not read): every post goes to Kafka again; the grader
    # drops them all.
    suite.kill("collector")
    suite.start("collector", database="collector-newer.db", extra={"QF_COLLECTOR_PIPELINE__RECALL_TAIL": "0"})
    accepted, duplicate, _ = suite.import_file(path)
    assert accepted + duplicate == posts
    assert sum((await _end_offsets(suite.bootstrap, suite.posts_topic)).values()) >= produced + posts
    await _graded_to_end(suite.bootstrap, suite.posts_topic, suite.group("grader-2"))
    again = await _alerts(suite.bootstrap, suite.alerts_topic)
    _check_alerts(again)
    assert sorted(a.id for a in again) == sorted(a.id for a in before)
    await asyncio.sleep(2)  # the indexer's last batch
    assert _indexed(suite.es_url, suite.prefix) == posts
    # Every re-produced post was dropped: already applied, or older than the horizon with its event gone.
    assert _dropped(suite.running["grader"]) - dropped_before == posts


def _dropped(grader: Running) -> int:
    """Posts the grader dropped since it started (already applied + older than the horizon), from its JSON log."""
    total = 0
    for line in grader.log_path.read_text(errors="replace").splitlines():
        if '"posts dropped' in line:
            total = sum(json.loads(line)["dropped_total"].values())
    return total
