"""End-to-end latency of the grader: a post entering Kafka -> its alert on the alerts topic, at a fixed post rate.

    .venv/bin/python bench/bench_grader_latency.py [--rate 2315] [--duration 60] [--in-process]
    .venv/bin/python bench/bench_grader_latency.py --memory 90000

``--memory N`` needs no stack: it grades N posts of the same stream in this process (no Kafka) and prints the
bytes each post leaves in the engine (tracemalloc, marginal between N/3 and N posts), just graded and after three
days of event time (the metrics' 2-day retention passed; what is left stays for the 7-day clustering horizon).

Needs the local stack (`qingfeng stack up`). Starts the grader (`python -m services.grader`, a subprocess by default)
on topics, an index prefix and a SQLite file of its own, produces synthetic posts at `--rate` posts/s for
`--duration` s, and reads the alerts topic as they arrive. Posts belong to ~200 concurrent stories (an original
and its reposts, some by media accounts, some mentioning planned gatherings across provinces), so alerts keep
coming: blue, yellow, orange and red as stories grow.

Latency of an alert = its arrival on the alerts topic (wall clock, this process) - the time the post that caused
it entered the producer. Posts carry that time as `created_at` (a live stream: event time = wall time), and an
alert's `grade.graded_at` is the event time at which it was graded, i.e. the `created_at` of the post that tipped
it (or of a post a few milliseconds newer from another partition, which makes the figure slightly optimistic by
at most the cross-partition skew). Throughput: posts the grader committed per second, from the first post produced
until its group offsets reach the end of the posts topic. Also printed: the grader's CPU seconds (user + system,
from /proc) per post committed, which depends far less than posts/s on what else runs on the machine, and its RSS
when producing starts and once drained. Everything it created is deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402
from _paced import produce_paced  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from qingfeng.cli.pki import provision_identities  # noqa: E402
from qingfeng.kafka import ensure_topics  # noqa: E402
from qingfeng.settings import ElasticsearchSettings, KafkaSettings  # noqa: E402
from qingfeng.v1 import common_pb2, event_pb2, post_pb2  # noqa: E402

from services.grader.app import topic_specs_for  # noqa: E402
from services.grader.settings import GraderSettings, GraderTopics  # noqa: E402
from tests.shared_servers import drop_run_async  # noqa: E402

PROVINCES = ("110105", "310101", "440103", "330106", "510104", "420102")


@dataclass
class Story:
    id: str
    origin: str
    started: float
    offline: bool
    posts: int = 0


@dataclass
class Stream:
    """Synthetic posts: new stories at a steady pace, each reposted by many authors for `lifetime_s`."""

    stories_per_s: float
    lifetime_s: float
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    active: list[Story] = field(default_factory=list)
    next_story: float = 0.0
    n: int = 0

    def post(self, now: float, at: datetime) -> post_pb2.Post:
        while now >= self.next_story:
            sid = f"s{len(self.active)}-{self.n}"
            self.active.append(Story(sid, f"bench:{sid}:0", now, offline=self.rng.random() < 0.3))
            self.next_story = max(self.next_story, now) + 1.0 / self.stories_per_s
        self.active = [s for s in self.active if now - s.started < self.lifetime_s] or self.active[-1:]
        story = self.rng.choice(self.active)
        self.n += 1
        first = story.posts == 0
        story.posts += 1
        post = post_pb2.Post(
            id=story.origin if first else f"bench:{story.id}:{self.n}",
            source_id="bench",
            source_kind=common_pb2.SOURCE_KIND_WEIBO_API,
            platform="weibo.com",
            author=post_pb2.Author(
                id=f"a{self.rng.randrange(10**9)}",
                followers=self.rng.choice((50, 500, 5000, 200_000, 3_000_000)),
                is_media=self.rng.random() < 0.02,
            ),
            text=f"某局长违规事件 {story.id}",
            text_simplified=f"某局长违规事件 {story.id}",
            parent_id="" if first else story.origin,
            root_id="" if first else story.origin,
            reposts=self.rng.randrange(20),
            comments=self.rng.randrange(25),
            likes=self.rng.randrange(50),
        )
        post.created_at.FromDatetime(at)
        post.collected_at.FromDatetime(at)
        post.enrichment.relevance = 0.6
        post.enrichment.regions.add(code=self.rng.choice(PROVINCES), name="")
        if story.offline and self.rng.random() < 0.05:
            post.enrichment.offline_signals.add(kind=post_pb2.OFFLINE_ACTION_KIND_GATHERING, term="聚集", planned=True)
        return post


def _spawn(settings: GraderSettings, log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m services.grader` with the settings as environment variables, logging to a file."""
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "services.grader"],
            cwd=ROOT,
            env=_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(args: argparse.Namespace, run: str, db: Path, port: int) -> GraderSettings:
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    return GraderSettings(
        kafka=KafkaSettings(bootstrap_servers=args.kafka, client_id=f"qfbench-{run}", partitions=args.partitions),
        elasticsearch=ElasticsearchSettings(url=args.es, index_prefix=f"qfbench-{run}"),
        topics=GraderTopics(
            posts=f"qfbench.{run}.posts.v1",
            events=f"qfbench.{run}.events.v1",
            alerts=f"qfbench.{run}.alerts.v1",
            deadletter=f"qfbench.{run}.deadletter.v1",
        ),
        database={"url": f"sqlite+aiosqlite:///{db}"},  # type: ignore[arg-type]
        consumer={"group_id": f"qfbench-{run}-grader", **batch},  # type: ignore[arg-type]
        # A benchmark on loopback: plaintext by explicit choice, and a trust file of its own (nobody calls the API).
        grpc={"port": port, "plaintext": True},  # type: ignore[arg-type]
        identity={"trust_file": provision_identities(db.parent / "pki-state")},  # type: ignore[arg-type]
    )


def _env(settings: GraderSettings) -> dict[str, str]:
    t = settings.topics
    env = dict(os.environ)
    env.update(
        {
            "QF_GRADER_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
            "QF_GRADER_KAFKA__PARTITIONS": str(settings.kafka.partitions),
            "QF_GRADER_KAFKA__CLIENT_ID": settings.kafka.client_id,
            "QF_GRADER_ELASTICSEARCH__URL": settings.elasticsearch.url,
            "QF_GRADER_ELASTICSEARCH__INDEX_PREFIX": settings.elasticsearch.index_prefix,
            "QF_GRADER_TOPICS__POSTS": t.posts,
            "QF_GRADER_TOPICS__EVENTS": t.events,
            "QF_GRADER_TOPICS__ALERTS": t.alerts,
            "QF_GRADER_TOPICS__DEADLETTER": t.deadletter,
            "QF_GRADER_DATABASE__URL": settings.database.url.get_secret_value(),
            "QF_GRADER_CONSUMER__GROUP_ID": settings.consumer.group_id,
            "QF_GRADER_GRPC__PORT": str(settings.grpc.port),
            "QF_GRADER_GRPC__PLAINTEXT": "true",
            "QF_GRADER_IDENTITY__TRUST_FILE": str(settings.identity.trust_file),
            "QF_GRADER_LOG__LEVEL": "WARNING",
            "QF_GRADER_CONSUMER__BATCH_SIZE": str(settings.consumer.batch_size),
        }
    )
    return env


async def _wait_serving(port: int, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.5)
    raise TimeoutError("the grader did not become SERVING")


async def _collect_alerts(settings: GraderSettings, out: list[tuple[float, event_pb2.Alert]], ready: asyncio.Event,
                          stop: asyncio.Event) -> None:  # fmt: skip
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topics.alerts, p) for p in range(settings.kafka.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        ready.set()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            arrived = time.time()
            for messages in batch.values():
                out.extend((arrived, event_pb2.Alert.FromString(m.value)) for m in messages)
    finally:
        await consumer.stop()


async def _committed(settings: GraderSettings) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.consumer.group_id)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == settings.topics.posts and meta.offset > 0)
    finally:
        await admin.close()


@dataclass(frozen=True)
class Usage:
    """A process's CPU seconds (user + system) and resident memory at one moment (Linux /proc)."""

    cpu_s: float
    rss_mb: float
    peak_rss_mb: float

    @classmethod
    def of(cls, pid: int) -> Usage:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        kib = {k: int(status[k].split()[0]) for k in ("VmRSS", "VmHWM")}
        return cls(cpu, kib["VmRSS"] / 1024, kib["VmHWM"] / 1024)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def main(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="qfbench-grader-"))
    settings = _settings(args, run, workdir / "grader.db", _free_port())
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    process: subprocess.Popen[bytes] | None = None
    app_task: asyncio.Task[None] | None = None
    stop_app = asyncio.Event()
    try:
        if args.in_process:
            from services.grader.app import build

            app = await build(settings)
            app_task = asyncio.create_task(app.consumer.run(stop_app))
        else:
            process = _spawn(settings, workdir / "grader.log")
            await _wait_serving(settings.grpc.port)
        alerts: list[tuple[float, event_pb2.Alert]] = []
        ready, stop = asyncio.Event(), asyncio.Event()
        collector = asyncio.create_task(_collect_alerts(settings, alerts, ready, stop))
        await ready.wait()
        load_before = os.getloadavg()
        pid = process.pid if process is not None else os.getpid()
        usage_start = Usage.of(pid)
        where = "in-process" if args.in_process else "grader subprocess"
        print(f"producing {args.rate:.0f} posts/s for {args.duration:.0f}s into {settings.kafka.partitions} "
              f"partitions ({where}); load {load_before[0]:.2f}", flush=True)  # fmt: skip
        started = time.monotonic()
        stream = Stream(stories_per_s=args.stories_per_s, lifetime_s=args.story_lifetime_s)
        sent, produce_s = await produce_paced(
            settings.kafka, settings.topics.posts, args.rate, args.duration, stream.post, tick_s=0.005
        )
        # Wait for the grader to commit every post (sustained throughput), then for the last alerts.
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline:
            committed = await _committed(settings)
            if committed >= sent:
                break
            await asyncio.sleep(0.2)
        drained_s = time.monotonic() - started
        usage_end = Usage.of(pid)
        await asyncio.sleep(2.0)
        stop.set()
        await collector
        load_after = os.getloadavg()
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if app_task is not None:
            stop_app.set()
            await app_task
            await app.close()
            c = app.consumer
            print(f"batches    {c.batches} of {c.posts / max(c.batches, 1):.0f} posts on average (in-process)")
        await _cleanup(settings)
        shutil.rmtree(workdir, ignore_errors=True)

    latencies = [arrived - a.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp() for arrived, a in alerts]
    escalations = [lat for lat, (_, a) in zip(latencies, alerts, strict=True) if a.to_level > a.from_level]
    levels = {name: sum(1 for _, a in alerts if a.to_level == value) for name, value in common_pb2.WarningLevel.items()}
    print(f"produced   {sent} posts in {produce_s:.1f}s = {sent / produce_s:.0f} posts/s")
    lagging = "" if committed >= sent else "  (NOT all committed within 120s)"
    print(f"graded     {committed} posts committed after {drained_s:.1f}s = "
          f"{committed / drained_s:.0f} posts/s sustained{lagging}")  # fmt: skip
    cpu = usage_end.cpu_s - usage_start.cpu_s
    who = "grader + producer (in-process)" if args.in_process else "grader"
    print(f"cpu        {who}: {cpu:.1f} s over {drained_s:.1f} s = {cpu / drained_s * 100:.0f} % of one core, "
          f"{cpu / max(committed, 1) * 1e6:.0f} µs per post committed")  # fmt: skip
    growth = (usage_end.rss_mb / usage_start.rss_mb - 1) * 100
    print(f"rss        {who}: {usage_start.rss_mb:.0f} MB at start, {usage_end.rss_mb:.0f} MB when drained "
          f"({growth:+.0f} %), peak {usage_end.peak_rss_mb:.0f} MB")  # fmt: skip
    shown = ", ".join(f"{k.removeprefix('WARNING_LEVEL_').lower()} {v}" for k, v in levels.items() if v)
    print(f"alerts     {len(alerts)} ({shown})")
    if latencies:
        print(f"latency    p50 {_pct(latencies, 0.50) * 1000:.0f} ms   p95 {_pct(latencies, 0.95) * 1000:.0f} ms   "
              f"p99 {_pct(latencies, 0.99) * 1000:.0f} ms   max {max(latencies) * 1000:.0f} ms   "
              f"mean {statistics.fmean(latencies) * 1000:.0f} ms")  # fmt: skip
        if escalations:
            print(f"escalations {len(escalations)}: p99 {_pct(escalations, 0.99) * 1000:.0f} ms")
        p99 = _pct(latencies, 0.99)
        print(f"target     p99 <= 2000 ms: {'met' if p99 <= 2.0 else 'NOT met'}")
    print(f"load avg   {load_before[0]:.2f} before, {load_after[0]:.2f} after ({os.cpu_count()} CPUs)")
    return 0


async def _cleanup(settings: GraderSettings) -> None:
    """Drop the run's topics (``qfbench.<run>.…``), consumer group, indices and templates (``qfbench-<run>…``),
    checked gone (tests/shared_servers.py raises naming what is left)."""
    for prefix in (settings.topics.posts.removesuffix(".posts.v1"), settings.elasticsearch.index_prefix):
        await drop_run_async(settings.kafka.bootstrap_servers, settings.elasticsearch.url, prefix)


def _retained(n: int, rate: float) -> tuple[int, int]:
    """Bytes the engine holds after grading ``n`` posts, and after three more days of event time."""
    import gc
    import tracemalloc
    from datetime import timedelta

    from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
    from services.grader.convert import post_view
    from services.grader.core import Grader

    policy = load_policy_file(DEFAULT_POLICY)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    stream = Stream(stories_per_s=7.0, lifetime_s=30.0)
    # Through the wire form, as the service gets them (fresh id strings, no sharing with the generator).
    views = [post_view(post_pb2.Post.FromString(stream.post(i / rate, t0 + timedelta(seconds=i / rate))
                                                .SerializeToString())) for i in range(n)]  # fmt: skip
    grader = Grader(policy)
    for i in range(0, n, 500):
        grader.process_batch(views[i : i + 500])
    del views, stream
    gc.collect()
    graded = tracemalloc.get_traced_memory()[0] - base
    assert grader.clock_at is not None
    grader.tick(grader.clock_at + timedelta(days=3))
    gc.collect()
    later = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    if len(grader.clusterer.posts) != n:
        raise AssertionError(f"{len(grader.clusterer.posts)} of {n} posts in the clustering horizon")
    return graded, later


def memory(n: int, rate: float) -> int:
    small, large = _retained(n // 3, rate), _retained(n, rate)
    extra = n - n // 3
    print(f"engine memory per post (marginal, {n // 3} -> {n} posts): {(large[0] - small[0]) / extra:.0f} bytes just "
          f"graded, {(large[1] - small[1]) / extra:.0f} bytes after 3 days of event time (kept for the 7-day horizon); "
          f"{large[0] / 1e6:.1f} MB and {large[1] / 1e6:.1f} MB in all")  # fmt: skip
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2315.0, help="posts per second (default 2315)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of producing (default 60)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--stories-per-s", type=float, default=7.0, help="new stories per second (default 7)")
    parser.add_argument("--story-lifetime-s", type=float, default=30.0, help="seconds a story gets posts (default 30)")
    parser.add_argument("--batch-size", type=int, default=0, help="the grader's batch size (default: its own)")
    parser.add_argument("--in-process", action="store_true", help="run the grader in this process")
    parser.add_argument("--memory", type=int, default=0, metavar="N",
                        help="no stack: bytes per post the engine keeps, over N posts (module docstring)")  # fmt: skip
    parser.add_argument("--kafka", default=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--es", default=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    _args = parse_args()
    raise SystemExit(memory(_args.memory, _args.rate) if _args.memory else asyncio.run(main(_args)))
