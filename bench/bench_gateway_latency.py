"""What the gateway adds to a unary call, TLS on both paths: latency at p50/p99 and calls per CPU-second.

    .venv/bin/python bench/bench_gateway_latency.py [--duration 10] [--concurrency 8] [--rps 0] [--method GetPolicy]

Needs the local stack (`qingfeng stack up`: Kafka and Elasticsearch answer the readiness checks) and the load tool
ghz. The script looks for `ghz` on PATH, then in ~/.cache/qingfeng/bin, and otherwise installs it there with the Go
toolchain (`go install github.com/bojand/ghz/cmd/ghz@v0.120.0`); `--ghz PATH` names another binary.

In one run it:

1. provisions, in a temporary state directory, what `qingfeng up` gives the processes (`security_environment`:
   a local CA, TLS certificates and keys, the gateway's signing key, the services' trust file), an access policy
   with one bench identity (a random bearer token, only its SHA-256 in the policy, granted exactly the benched
   method) and a per-identity rate limit raised out of the way;
2. starts the grader (`python -m services.grader`, its own topics, index prefix and SQLite file) and the gateway
   (`python -m gateway`, pointed at that grader), both serving gRPC with TLS on 127.0.0.1, logs at their defaults;
3. runs ghz twice with the same concurrency and duration, each after a short unmeasured warm-up: straight at the
   grader with a gateway credential minted once for the run (`x-qingfeng-credential`, bound to the method, alive
   300 s at most, which is why `--duration` stops at 280 s), then through the gateway with
   `authorization: Bearer <token>` (the gateway checks the token, the grant and the rate limit, audits, mints a
   credential per call and proxies it). Both verify the server's certificate against the local CA (`--cacert`);
   the method schema is handed to ghz as a protoset built from the generated descriptors, so no reflection is
   needed;
4. prints one table: calls/s and p50/p90/p99 latency of each path, the added latency at p50 and p99 (via the
   gateway minus direct), the gateway's calls per CPU-second (its process's user+system CPU time from
   /proc/<pid>/stat over the measured run: calls/s per core), the grader's calls per CPU-second on each path, and
   whether the target (at most 1 ms added at p50) is met, and by how much it is missed if not.

Reading the figures: ghz keeps `--concurrency` calls in flight (a closed loop), so at 8 the latencies include
queueing behind the slower path's throughput; `--concurrency 1` shows the gateway's cost per call, and `--rps N`
caps the offered rate (with spare concurrency: latency below saturation). The two paths run one after the other,
so a change in the machine's load between them shows up in the difference.

Every process is stopped, and the topics and indices it created are deleted, in `finally`. Traffic goes only to
127.0.0.1. The load tool runs on the same machine as the processes it measures, so on a small machine it competes
with them for CPU: compare the figures with the load average printed beside them. Exit status 1 when a call failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GHZ_MODULE = "github.com/bojand/ghz/cmd/ghz"
GHZ_VERSION = "v0.120.0"
GHZ_CACHE = Path.home() / ".cache" / "qingfeng" / "bin"
TARGET_ADDED_P50_MS = 1.0
MAX_DURATION_S = 280.0  # a direct-call credential lives 300 s at most
# Unary reads of the grader that need no Kafka traffic: the active policy (~5 KB of YAML) or the live events
# (an empty page on a fresh grader: the smallest reply there is).
METHODS = ("GetPolicy", "ListEvents")
SERVICE = "qingfeng.v1.GraderService"


# -- pure helpers (tested in tests/bench/test_bench_gateway_latency.py) ------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ascending ``ordered``, interpolating linearly between the closest ranks."""
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} outside 0..1")
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LoadResult:
    """One load run: calls made and answered OK, wall time, failures by message, sorted latencies of OK calls."""

    count: int
    ok: int
    duration_s: float
    errors: Mapping[str, int] = field(default_factory=dict)
    latencies_ms: tuple[float, ...] = ()
    # Quantiles as the tool reported them (percent -> ms), used when it gave no per-call details.
    reported_ms: Mapping[int, float] = field(default_factory=dict)

    @property
    def calls_per_s(self) -> float:
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0

    def quantile_ms(self, q: float) -> float:
        if self.latencies_ms:
            return percentile(self.latencies_ms, q)
        percent = round(q * 100)
        if percent not in self.reported_ms:
            raise ValueError(f"no p{percent} in the report and no per-call latencies")
        return self.reported_ms[percent]


def parse_ghz_report(report: Mapping[str, Any]) -> LoadResult:
    """A ghz JSON report (``-O json``): latencies in nanoseconds, per call under ``details`` when present."""
    count = int(report["count"])
    duration_s = float(report["total"]) / 1e9
    status = report.get("statusCodeDistribution") or {}
    details = report.get("details") or []
    latencies = sorted(
        float(d["latency"]) / 1e6 for d in details if d.get("status", "OK") == "OK" and not d.get("error")
    )
    ok = int(status.get("OK", len(latencies) if details else count))
    reported = {
        round(float(d["percentage"])): float(d["latency"]) / 1e6 for d in report.get("latencyDistribution") or []
    }
    errors = {str(k): int(v) for k, v in (report.get("errorDistribution") or {}).items()}
    return LoadResult(count, ok, duration_s, errors, tuple(latencies), reported)


def process_cpu_s(stat: str, ticks_per_s: int) -> float:
    """User + system CPU seconds of every thread of a process, from the text of ``/proc/<pid>/stat``."""
    # The command name (field 2) is in parentheses and may hold spaces or parentheses: split after the last ')'.
    rest = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(rest[11]), int(rest[12])  # fields 14 and 15 of proc(5); ``rest`` starts at field 3
    return (utime + stime) / ticks_per_s


def _per_cpu_s(calls: int, cpu_s: float) -> str:
    return f"{calls / cpu_s:.0f}" if cpu_s > 0 else "n/a"


def render_table(
    direct: LoadResult,
    via: LoadResult,
    gateway_cpu_s: float,
    *,
    grader_cpu_s: tuple[float, float] | None = None,
    target_ms: float = TARGET_ADDED_P50_MS,
) -> str:
    """The report: both paths, the gateway's addition at p50/p99, its calls per CPU-second, and the p50 target;
    ``grader_cpu_s`` (CPU seconds of the grader in the direct and in the gateway run) adds the grader's rate."""
    rows = [f"{'':24}{'calls/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'calls':>9}{'failed':>8}"]
    for name, r in (("direct to grader (TLS)", direct), ("via gateway (TLS)", via)):
        rows.append(
            f"{name:<24}{r.calls_per_s:>10.1f}{r.quantile_ms(0.5):>10.2f}{r.quantile_ms(0.9):>10.2f}"
            f"{r.quantile_ms(0.99):>10.2f}{r.ok:>9}{r.count - r.ok:>8}"
        )
    added = {q: via.quantile_ms(q) - direct.quantile_ms(q) for q in (0.5, 0.9, 0.99)}
    rows.append(
        f"{'added by the gateway':<24}{via.calls_per_s - direct.calls_per_s:>+10.1f}"
        f"{added[0.5]:>+10.2f}{added[0.9]:>+10.2f}{added[0.99]:>+10.2f}"
    )
    rows.append(
        f"gateway CPU               {gateway_cpu_s:.2f} s for {via.ok} calls = "
        f"{_per_cpu_s(via.ok, gateway_cpu_s)} calls per CPU-second (calls/s per core)"
    )
    if grader_cpu_s is not None:
        rows.append(
            f"grader CPU                {_per_cpu_s(direct.ok, grader_cpu_s[0])} calls per CPU-second direct, "
            f"{_per_cpu_s(via.ok, grader_cpu_s[1])} via the gateway"
        )
    verdict = "met" if added[0.5] <= target_ms else f"NOT met (over by {added[0.5] - target_ms:.2f} ms)"
    rows.append(f"target: added p50 <= {target_ms:.2f} ms: {verdict} (added p50 {added[0.5]:+.2f} ms)")
    for name, r in (("direct", direct), ("via gateway", via)):
        for message, n in sorted(r.errors.items()):
            rows.append(f"failed {name}: {n} x {message}")
    return "\n".join(rows)


# -- the run ----------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_ghz(explicit: str | None) -> Path:
    """The ghz binary: ``--ghz``, then PATH, then the cache dir; installed there with ``go install`` if missing."""
    if explicit:
        return Path(explicit)
    for candidate in (shutil.which("ghz"), GHZ_CACHE / "ghz"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    go = shutil.which("go")
    if go is None:
        raise SystemExit("ghz not found and no Go toolchain to install it: install ghz or pass --ghz PATH")
    GHZ_CACHE.mkdir(parents=True, exist_ok=True)
    print(f"installing ghz {GHZ_VERSION} into {GHZ_CACHE} (go install, once)", flush=True)
    env = {**os.environ, "GOBIN": str(GHZ_CACHE)}
    subprocess.run([go, "install", f"{GHZ_MODULE}@{GHZ_VERSION}"], check=True, env=env, cwd=tempfile.gettempdir())
    return GHZ_CACHE / "ghz"


def write_protoset(path: Path) -> None:
    """The grader's API and everything it imports as a FileDescriptorSet, from the generated Python descriptors."""
    from google.protobuf import descriptor_pb2
    from qingfeng.v1 import event_pb2

    ordered: list[Any] = []
    seen: set[str] = set()

    def visit(file: Any) -> None:  # dependencies first, each once
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            visit(dependency)
        ordered.append(file)

    visit(event_pb2.DESCRIPTOR)
    files = descriptor_pb2.FileDescriptorSet()
    for file in ordered:
        file.CopyToProto(files.file.add())
    path.write_bytes(files.SerializeToString())


@dataclass
class Processes:
    """The two processes under test and where they listen."""

    workdir: Path
    run: str
    grader_port: int = 0
    gateway_port: int = 0
    running: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, module: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        with (self.workdir / f"{name}.log").open("wb") as log:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [sys.executable, "-m", module], cwd=ROOT, env={**os.environ, **env}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.running[name] = proc
        return proc

    def log_tail(self, name: str, chars: int = 2500) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop_all(self) -> None:
        for name, proc in reversed(list(self.running.items())):  # the gateway first
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"{name} ignored SIGTERM for 30 s; killed", flush=True)
                proc.kill()
                proc.wait()


def _wait_serving(procs: Processes, name: str, port: int, ca: bytes, timeout_s: float = 120.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout_s
    with grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if procs.running[name].poll() is not None:
                raise SystemExit(f"{name} exited with {procs.running[name].returncode}:\n{procs.log_tail(name)}")
            with contextlib.suppress(grpc.RpcError):
                reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            time.sleep(0.5)
    raise SystemExit(f"{name} not SERVING within {timeout_s:.0f} s:\n{procs.log_tail(name)}")


def _access_policy(path: Path, token: str, method: str) -> None:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    identity = {
        "name": "bench",
        "agency": "opinion_office",
        "roles": ["analyst"],
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "grants": [method],
        "expires_at": expires.isoformat().replace("+00:00", "Z"),
    }
    path.write_text(json.dumps({"version": f"bench-{path.parent.name}", "identities": [identity]}), encoding="utf-8")


def _grader_env(args: argparse.Namespace, procs: Processes) -> dict[str, str]:
    run = procs.run
    return {
        "QF_GRADER_GRPC__PORT": str(procs.grader_port),
        "QF_GRADER_KAFKA__BOOTSTRAP_SERVERS": args.kafka,
        "QF_GRADER_ELASTICSEARCH__URL": args.es,
        "QF_GRADER_ELASTICSEARCH__INDEX_PREFIX": f"qfbench-gw-{run}",
        "QF_GRADER_DATABASE__URL": f"sqlite+aiosqlite:///{procs.workdir}/grader.db",
        "QF_GRADER_CONSUMER__GROUP_ID": f"qfbench-gw-{run}-grader",
        **{f"QF_GRADER_TOPICS__{t.upper()}": f"qfbench-gw.{run}.{t}.v1" for t in _TOPICS},
    }


_TOPICS = ("posts", "events", "alerts", "deadletter")


def _gateway_env(args: argparse.Namespace, procs: Processes, policy: Path) -> dict[str, str]:
    nowhere = f"127.0.0.1:{_free_port()}"  # the other services are not part of the bench: never called
    return {
        "QF_GATEWAY_GRPC__PORT": str(procs.gateway_port),
        "QF_GATEWAY_HTTP__PORT": str(_free_port()),
        "QF_GATEWAY_ACCESS_POLICY": str(policy),
        "QF_GATEWAY_GRADER_ADDR": f"127.0.0.1:{procs.grader_port}",
        "QF_GATEWAY_COLLECTOR_ADDR": nowhere,
        "QF_GATEWAY_COORDINATOR_ADDR": nowhere,
        "QF_GATEWAY_PUBLISHER_ADDR": nowhere,
        "QF_GATEWAY_KAFKA__BOOTSTRAP_SERVERS": args.kafka,
        "QF_GATEWAY_ELASTICSEARCH__URL": args.es,
        "QF_GATEWAY_ELASTICSEARCH__INDEX_PREFIX": f"qfbench-gw-{procs.run}",
        # The limiter guards partners from each other; here one identity is the whole load.
        "QF_GATEWAY_RATE_LIMIT__RATE_PER_S": "1000000",
        "QF_GATEWAY_RATE_LIMIT__BURST": "1000000",
    }


def run_ghz(ghz: Path, *, target: str, ca: Path, protoset: Path, method: str, metadata: Mapping[str, str],
            concurrency: int, duration_s: float, rps: int, out: Path) -> LoadResult:  # fmt: skip
    command = [
        str(ghz), "--cacert", str(ca), "--protoset", str(protoset), "--call", f"{SERVICE}.{method}",
        "-d", "{}", "-m", json.dumps(dict(metadata)), "-c", str(concurrency), "-z", f"{duration_s}s",
        # Calls in flight when the time is up finish and count (ghz's default cuts them off as UNAVAILABLE).
        "--duration-stop", "wait", "--connections", "1", "-O", "json", "-o", str(out), target,
    ]  # fmt: skip
    if rps > 0:
        command[1:1] = ["--rps", str(rps)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return parse_ghz_report(json.loads(out.read_text(encoding="utf-8")))


def _cpu_s(pid: int) -> float:
    return process_cpu_s(Path(f"/proc/{pid}/stat").read_text(), os.sysconf("SC_CLK_TCK"))


@dataclass(frozen=True)
class Measured:
    direct: LoadResult
    via: LoadResult
    gateway_cpu_s: float
    grader_cpu_s: tuple[float, float]  # during the direct run, during the gateway run


def measure(args: argparse.Namespace, procs: Processes, ghz: Path) -> Measured:
    from qingfeng.cli.pki import GATEWAY_ISSUER, ca_file, key_file, security_environment
    from qingfeng.rpc import load_signer

    state = procs.workdir / "state"
    security = security_environment(state, {})
    ca = ca_file(state)
    method_path = f"/{SERVICE}/{args.method}"
    token = secrets.token_urlsafe(32)
    policy = procs.workdir / "access.yaml"
    _access_policy(policy, token, method_path)
    procs.grader_port, procs.gateway_port = _free_port(), _free_port()
    procs.start("grader", "services.grader", {**security, **_grader_env(args, procs)})
    _wait_serving(procs, "grader", procs.grader_port, ca.read_bytes())
    gateway = procs.start("gateway", "gateway", {**security, **_gateway_env(args, procs, policy)})
    _wait_serving(procs, "gateway", procs.gateway_port, ca.read_bytes())

    protoset = procs.workdir / "grader.protoset"
    write_protoset(protoset)
    signer = load_signer(GATEWAY_ISSUER, key_file(state, GATEWAY_ISSUER), ttl_s=300)
    caller = {"principal": "bench", "agency": "opinion_office", "roles": ("analyst",)}
    bearer = {"authorization": f"Bearer {token}"}
    common = {"ca": ca, "protoset": protoset, "method": args.method, "concurrency": args.concurrency, "rps": args.rps}

    def one(name: str, port: int, metadata: Mapping[str, str], duration_s: float) -> LoadResult:
        return run_ghz(ghz, target=f"127.0.0.1:{port}", metadata=metadata, duration_s=duration_s,
                       out=procs.workdir / f"{name}.json", **common)  # fmt: skip

    def direct_metadata() -> dict[str, str]:  # minted just before each run, reused by all its calls
        return dict(signer.metadata(method_path, **caller))

    print(f"warming up ({args.warmup:.0f} s each path)", flush=True)
    one("warmup-direct", procs.grader_port, direct_metadata(), args.warmup)
    one("warmup-gateway", procs.gateway_port, bearer, args.warmup)
    rate = f", at most {args.rps} calls/s" if args.rps else ""
    print(f"measuring {args.method}: {args.concurrency} concurrent{rate}, {args.duration:.0f} s per path; "
          f"load {os.getloadavg()[0]:.2f}", flush=True)  # fmt: skip
    grader = procs.running["grader"].pid
    start = _cpu_s(grader)
    direct = one("direct", procs.grader_port, direct_metadata(), args.duration)
    middle, gateway_start = _cpu_s(grader), _cpu_s(gateway.pid)
    via = one("gateway", procs.gateway_port, bearer, args.duration)
    end, gateway_end = _cpu_s(grader), _cpu_s(gateway.pid)
    return Measured(direct, via, gateway_end - gateway_start, (middle - start, end - middle))


async def _cleanup(args: argparse.Namespace, run: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from qingfeng.elastic import IndexNames, create_client, delete_family
    from qingfeng.settings import ElasticsearchSettings

    admin = AIOKafkaAdminClient(bootstrap_servers=args.kafka)
    await admin.start()
    try:
        with contextlib.suppress(Exception):
            await admin.delete_topics([f"qfbench-gw.{run}.{t}.v1" for t in _TOPICS])
    finally:
        await admin.close()
    es = create_client(ElasticsearchSettings(url=args.es, index_prefix=f"qfbench-gw-{run}"))
    try:
        with contextlib.suppress(Exception):
            await delete_family(es, IndexNames(f"qfbench-gw-{run}", "events"))
    finally:
        await es.close()


def main(args: argparse.Namespace) -> int:
    ghz = find_ghz(args.ghz)
    procs = Processes(Path(tempfile.mkdtemp(prefix="qfbench-gateway-")), uuid.uuid4().hex[:8])
    try:
        measured = measure(args, procs, ghz)
        load = os.getloadavg()
    finally:
        procs.stop_all()
        asyncio.run(_cleanup(args, procs.run))
        if not args.keep:
            shutil.rmtree(procs.workdir, ignore_errors=True)
    direct, via = measured.direct, measured.via
    print(render_table(direct, via, measured.gateway_cpu_s, grader_cpu_s=measured.grader_cpu_s))
    cpus = os.cpu_count()
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {cpus} CPUs (ghz on the same machine)")
    return 0 if direct.ok == direct.count and via.ok == via.count else 1


def _duration(text: str) -> float:
    value = float(text)
    if not 0 < value <= MAX_DURATION_S:
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_DURATION_S:.0f}] s (the direct credential's lifetime)")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=_duration, default=10.0, help="measured seconds per path (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="calls in flight (default 8; the gateway allows "
                        "32 per identity: QF_GATEWAY_LIMITS__CONCURRENT_CALLS_PER_IDENTITY)")  # fmt: skip
    parser.add_argument("--warmup", type=_duration, default=2.0, help="unmeasured seconds per path first (default 2)")
    parser.add_argument("--rps", type=int, default=0, help="fixed offered rate in calls/s (default 0: as fast as "
                        "the concurrency allows)")  # fmt: skip
    parser.add_argument("--method", choices=METHODS, default="GetPolicy", help="grader method (default GetPolicy)")
    parser.add_argument("--ghz", help="path of the ghz binary (default: PATH, then ~/.cache/qingfeng/bin)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, ghz reports)")
    parser.add_argument("--kafka", default=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--es", default=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"))
    args = parser.parse_args(argv)
    kafka_host = args.kafka.rsplit(":", 1)[0].strip("[]")
    if kafka_host not in _LOOPBACK or urlsplit(args.es).hostname not in _LOOPBACK:
        parser.error("--kafka and --es must be loopback addresses: the bench sends traffic nowhere else")
    return args


_LOOPBACK = ("127.0.0.1", "::1", "localhost")


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
