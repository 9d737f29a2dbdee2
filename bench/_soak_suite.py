"""The suite processes of the soak: collector (fetch role, ImportPosts), indexer (index role), grader (grade role)
and grader-index (the grader's index role: events index and posts' event ids), as subprocesses with TLS and signed
identities (as `qingfeng up` gives them), on the soak's own stack.

Each process runs at the CPU priority of its role (the indexer and grader-index at nice 10 by default, as `qingfeng
up` starts them; see qingfeng.cli.priority). Each can be killed with SIGKILL and started again with the same
environment, database, consumer group and priority, as an operator's supervisor would; every start is one
*incarnation* with its own pid, and a sampler reads each incarnation's resident memory from /proc.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from _periodic import PeriodicSampler
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from qingfeng.cli.pki import ca_file, security_environment
from qingfeng.cli.priority import DEFAULT_NICE, niced
from qingfeng.kafka import EVENTS
from qingfeng.kafka.topics import POST_EVENTS

__all__ = [
    "GRADER_INDEX_GROUP",
    "STANDBY",
    "Incarnation",
    "RssSampler",
    "SuiteProcess",
    "grader_index_lag",
    "group_offsets",
    "suite_processes",
]

# The grader's index role's consumer group (its default: "<grader group>-index").
GRADER_INDEX_GROUP = "grader-index"
# The warm standby grader's process name (``standby=True``).
STANDBY = "grader-standby"

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Incarnation:
    """One run of a process: from its start (monotonic) until it was killed or stopped."""

    pid: int
    started: float
    ended: float | None = None


@dataclass
class SuiteProcess:
    """A `python -m <module>` child: start, wait SERVING, kill -9, stop."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    log_dir: Path
    ca: Path
    nice: int = 0  # CPU priority of every incarnation (qingfeng.cli.priority)
    proc: subprocess.Popen[bytes] | None = None
    incarnations: list[Incarnation] = field(default_factory=list)

    def start(self) -> None:
        number = len(self.incarnations) + 1
        log = (self.log_dir / f"{self.name}.{number}.log").open("wb")
        with log:
            # Own session: a kill -9 of the group leaves nothing behind and never reaches the soak itself.
            self.proc = subprocess.Popen(
                niced([sys.executable, "-m", self.module], self.nice),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.incarnations.append(Incarnation(self.proc.pid, time.monotonic()))

    def wait_serving(self, timeout_s: float = 120.0) -> float:
        """Seconds until gRPC health answers SERVING over TLS; raises with the log tail if it never does."""
        started = time.monotonic()
        credentials = grpc.ssl_channel_credentials(self.ca.read_bytes())
        while time.monotonic() - started < timeout_s:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                with grpc.secure_channel(f"127.0.0.1:{self.port}", credentials) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return time.monotonic() - started
            except grpc.RpcError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not SERVING after {timeout_s:.0f}s:\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed or checkpointed."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.incarnations[-1].ended = time.monotonic()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (graceful), SIGKILL after ``timeout_s``; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if self.incarnations and self.incarnations[-1].ended is None:
            self.incarnations[-1].ended = time.monotonic()
        return self.proc.returncode

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted(self.log_dir.glob(f"{self.name}.*.log"))
        return logs[-1].read_text(errors="replace")[-chars:] if logs else ""


def _database_of(name: str) -> str:
    return "grader" if name == STANDBY else name


def suite_processes(
    state: Path,
    bootstrap: str,
    es_url: str,
    *,
    partitions: int = 3,
    grader_horizon_s: float | None = None,
    nices: Mapping[str, int] | None = None,
    standby: bool = False,
) -> dict[str, SuiteProcess]:
    """collector (fetch), indexer (index), grader (grade) and grader-index, configured for the soak's stack; not
    started yet.

    ``standby``: also a warm standby grader (``STANDBY``) over the grader's database, not started here (see soak.py).
    ``nices``: each process's nice value by name (default: the roles' defaults, the indexer 10, the others 0);
    grader-index takes the indexer's unless named.
    """
    nices = {"indexer": DEFAULT_NICE["indexer"]} if nices is None else nices
    state.mkdir(parents=True, exist_ok=True)
    log_dir = state / "logs"
    log_dir.mkdir(exist_ok=True)
    base = {**os.environ, "PYTHONUNBUFFERED": "1", **security_environment(state, {})}
    # Nothing of the shared stack or a developer's environment may leak into the soak's processes.
    base = {k: v for k, v in base.items() if not k.startswith(("QF_STACK_", "QF_TEST_"))}
    ca = ca_file(state)

    def shared(prefix: str, port: int) -> dict[str, str]:
        return {
            f"{prefix}KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            f"{prefix}KAFKA__PARTITIONS": str(partitions),
            f"{prefix}ELASTICSEARCH__URL": es_url,
            f"{prefix}GRPC__PORT": str(port),
            # QF_SOAK_LOG_LEVEL=INFO keeps the step logs (checkpoints, recoveries) for --logs; costs a little CPU.
            f"{prefix}LOG__LEVEL": os.environ.get("QF_SOAK_LOG_LEVEL", "WARNING"),
        }

    specs = {
        "collector": ("services.collector", "QF_COLLECTOR_", {"QF_COLLECTOR_ROLE": "fetch"}),
        "indexer": ("services.collector", "QF_COLLECTOR_", {"QF_COLLECTOR_ROLE": "index"}),
        "grader": (
            "services.grader",
            "QF_GRADER_",
            {"QF_GRADER_ROLE": "grade"}
            | ({} if grader_horizon_s is None else {"QF_GRADER_HORIZON_S": str(grader_horizon_s)}),
        ),
        "grader-index": ("services.grader", "QF_GRADER_", {"QF_GRADER_ROLE": "index"}),
    }
    if standby:
        # The grader's twin over the same database (so the same lease) and topics. It follows at nice 10 and, as
        # root, takes nice 0 back when it leads; the grader, restarted after its kill, follows the same way.
        grader = specs["grader"]
        specs[STANDBY] = (grader[0], grader[1], {**grader[2], "QF_GRADER_STANDBY__NICE": "10"})
        specs["grader"] = (grader[0], grader[1], {**grader[2], "QF_GRADER_STANDBY__NICE": "10"})
    if "grader-index" not in nices:
        nices = {**nices, "grader-index": nices.get("indexer", 0)}
    processes = {}
    for name, (module, prefix, extra) in specs.items():
        port = _free_port()
        env = {
            **base,
            **shared(prefix, port),
            f"{prefix}DATABASE__URL": f"sqlite+aiosqlite:///{state / f'{_database_of(name)}.db'}",
            **extra,
        }
        processes[name] = SuiteProcess(name, module, port, env, log_dir, ca, nice=nices.get(name, 0))
    return processes


async def group_offsets(bootstrap: str, group: str, topics: Sequence[str]) -> tuple[int, int] | None:
    """(end offsets, offsets the group committed, each at most its end) summed over ``topics``; a partition the group
    never committed on counts as committed at 0. None when Kafka does not answer or the topics have no partitions."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(t, p) for t in topics for p in cluster.partitions_for_topic(t) or ()]
        if not tps:
            return None
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group)
        done = sum(min(end, committed[tp].offset) if tp in committed else 0 for tp, end in ends.items())
        return int(sum(ends.values())), int(done)
    except Exception:
        return None
    finally:
        await consumer.stop()
        await admin.close()


async def grader_index_lag(bootstrap: str, group: str = GRADER_INDEX_GROUP) -> int | None:
    """Records of the events and post-events topics the grader's index role has not committed (None: no answer)."""
    offsets = await group_offsets(bootstrap, group, (EVENTS, POST_EVENTS))
    return None if offsets is None else max(0, offsets[0] - offsets[1])


@dataclass
class RssSampler(PeriodicSampler):
    """Resident memory (VmRSS, KiB) of every live incarnation, every ``every_s`` seconds, in a thread."""

    processes: dict[str, SuiteProcess]
    every_s: float = 2.0
    samples: list[tuple[float, str, int, int]] = field(default_factory=list)  # (t, name, pid, kib)
    thread_name = "rss-sampler"

    def _sample(self) -> None:
        now = time.monotonic()
        for name, process in self.processes.items():
            pid = process.pid
            kib = _rss_kib(pid) if pid else None
            if pid and kib is not None:
                self.samples.append((now, name, pid, kib))


def _rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
