"""Benchmark: collector -> Kafka -> Elasticsearch end to end on the shared data, against the local stack.

    .venv/bin/python bench/bench_collector_e2e.py [--data DIR] [--limit N] [--via pipeline|grpc]
                                                  [--indexer inprocess|process [--indexers N]] [--skip-pipeline]
                                                  [--keep] [--per-record-produce] [--gc service|default]
                                                  [--indexer-nice N] [--refresh-every S]
                                                  [--tracing off|default|full [--tracing-drop] [--otlp-endpoint URL]]

Needs `qingfeng stack up` (Kafka 127.0.0.1:19092, Elasticsearch http://127.0.0.1:19200; override with QF_TEST_KAFKA,
QF_TEST_ES). Every run uses its own topics and index prefix, deleted afterwards unless --keep.

Two measurements, each with a fresh pipeline (empty dedupe window):

1. pipeline only: parsed posts through enrichment + dedupe + produce, until Kafka acknowledged every record;
2. end to end: the collector's path, from the first produce to the moment the last post is searchable in
   Elasticsearch: parse + enrich + dedupe + produce (``--via pipeline``, default: in process; ``--via grpc``:
   streamed through the collector's ImportPosts by a client in a child process, as `qingfeng import` does) while the
   indexer consumes the topic and bulk-indexes it in the same process, as ``QF_COLLECTOR_ROLE=all`` runs it
   (``--indexer process``: in ``--indexers`` `python -m services.collector` children with ``QF_COLLECTOR_ROLE=index``,
   one consumer group, as `qingfeng up --indexers N` runs them).

``--per-record-produce``: the producer as it was before batch-level produce (one aiokafka ``send`` per record,
16 KiB batches), to compare the two in one run.

``--gc service`` (default): this process (the collector, and the indexer when in process) runs its garbage
collector as ``python -m services.collector`` does (``qingfeng.gc_tuning``); ``--gc default`` keeps CPython's.

``--tracing`` (issue 12): ``off`` (no SDK, the API's no-op), ``default`` (the SDK at the default sample ratio) or
``full`` (ratio 1.0), as the collector sets it up (``qingfeng.telemetry``); spans go to ``--otlp-endpoint`` (the
local Jaeger of ``stack up --with-jaeger``) when given. ``--tracing-drop``: the ratio's rejects are DROPped instead of
recorded (RECORD_ONLY, the default, lets errors be kept).

Target (issue 3): end to end >= 2,315 posts/s sustained (200 million items a day) on this 2-core machine with Kafka
and Elasticsearch co-located.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so that `services` imports when run as a script from anywhere

from aiokafka.admin import AIOKafkaAdminClient  # noqa: E402
from elasticsearch import AsyncElasticsearch  # noqa: E402
from qingfeng.cli.pki import provision_identities  # noqa: E402
from qingfeng.cli.priority import niced  # noqa: E402
from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index  # noqa: E402
from qingfeng.gc_tuning import GcSettings, apply_gc_settings  # noqa: E402
from qingfeng.kafka import Producer, ensure_topics  # noqa: E402
from qingfeng.settings import ElasticsearchSettings, GrpcSettings, KafkaSettings  # noqa: E402
from qingfeng.v1 import common_pb2, post_pb2, source_pb2  # noqa: E402

from services.collector.app import build_pipeline, topic_specs_for  # noqa: E402
from services.collector.indexer import PostIndexer  # noqa: E402
from services.collector.pipeline import Pipeline  # noqa: E402
from services.collector.ports import Rejected  # noqa: E402
from services.collector.settings import CollectorSettings, CollectorTopics, IndexerSettings  # noqa: E402
from services.collector.sources import parse_jsonl_line  # noqa: E402

TARGET = 2_315
CHUNK = 5_000
IMPORT_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
# ``Producer`` options of the produce path before batch-level produce: one client send() per record, aiokafka's
# default 16 KiB batches.
PER_RECORD: Mapping[str, Any] = {"batched": False, "batch_bytes": 16_384}


def _default_data() -> Path:
    env = os.environ.get("QF_SHARED_DATA")
    return Path(env) if env else (REPO / ".." / "shared" / "data").resolve()


def _settings(run_id: str) -> CollectorSettings:
    return CollectorSettings(
        kafka=KafkaSettings(
            bootstrap_servers=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"), client_id=f"bench-{run_id}"
        ),
        elasticsearch=ElasticsearchSettings(
            url=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"), index_prefix=f"qfbench-{run_id}"
        ),
        topics=CollectorTopics(
            posts=f"qfbench.{run_id}.posts.v1",
            posts_deadletter=f"qfbench.{run_id}.posts.deadletter.v1",
            deadletter=f"qfbench.{run_id}.deadletter.v1",
        ),
        indexer=IndexerSettings(group_id=f"qfbench-{run_id}-indexer"),
        grpc=GrpcSettings(port=0, plaintext=True),
    )


def _lines(data: Path, limit: int | None) -> list[str]:
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for line in handle if line.strip()]
    return lines[:limit] if limit else lines


def _parse(lines: list[str], start: int = 0) -> list[post_pb2.Post | Rejected]:
    now = datetime.now(UTC)
    return [
        parse_jsonl_line(line, IMPORT_SOURCE, collected_at=now, origin=f"line {start + i + 1}")
        for i, line in enumerate(lines)
    ]


async def _delete_topics(settings: CollectorSettings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        topics = settings.topics
        await admin.delete_topics([topics.posts, topics.posts_deadletter, topics.deadletter])
    finally:
        await admin.close()


# How often the end-to-end measure reads the index's progress while it waits for the last post: the end is known
# within this much (0.25 s until 2026-12-02, stop 21: 0.125 s late on average, 1.7 % of a 7.5 s run).
_POLL_S = 0.1


async def _count(es: AsyncElasticsearch, index: str) -> int:
    return int((await es.count(index=index)).body["count"])


async def _indexed(es: AsyncElasticsearch, index: str) -> int:
    """Indexing operations the index's primaries completed (created or updated documents), refreshed or not."""
    stats = await es.indices.stats(index=index, metric="indexing")
    return int(stats.body["_all"]["primaries"]["indexing"]["index_total"])


async def bench_pipeline(
    data: Path, limit: int | None, keep: bool, producer_options: Mapping[str, Any] | None = None
) -> tuple[int, float]:
    settings = _settings(uuid.uuid4().hex[:10])
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    items = _parse(_lines(data, limit))
    try:
        async with Producer(settings.kafka, **(producer_options or {})) as producer:
            pipeline = build_pipeline(settings, producer)
            started = time.perf_counter()
            for i in range(0, len(items), CHUNK):
                await pipeline(items[i : i + CHUNK])
            elapsed = time.perf_counter() - started
    finally:
        if not keep:
            await _delete_topics(settings)
    return len(items), elapsed


async def _produce_in_process(pipeline: Pipeline, lines: list[str]) -> None:
    """Every line parsed and through ``pipeline`` (built beforehand, as a collector builds it at start-up), acked."""
    for i in range(0, len(lines), CHUNK):
        await pipeline(_parse(lines[i : i + CHUNK], i))


@contextlib.asynccontextmanager
async def _import_server(pipeline: Pipeline, grpc: GrpcSettings) -> AsyncIterator[tuple[int, Path]]:
    """The collector's ImportPosts over ``pipeline``, served here (its port, and the PKI state whose ops-import key
    signs the import), started before the clock as a running collector is."""
    from qingfeng.rpc import CredentialInterceptor, TrustFile, build_server
    from qingfeng.v1 import source_pb2_grpc

    from services.collector.server import CollectorServicer

    servicer = CollectorServicer(_BenchStore(), pipeline, tips=None)  # type: ignore[arg-type]
    # As in production, the import is signed by the ops-import identity and verified (on loopback, without TLS).
    state = Path(tempfile.mkdtemp(prefix="qfbench-"))
    trust = provision_identities(state)
    server = build_server(
        grpc,
        interceptors=[CredentialInterceptor(TrustFile(trust))],
        services=[
            (
                source_pb2.DESCRIPTOR.services_by_name["CollectorService"],
                lambda s: source_pb2_grpc.add_CollectorServiceServicer_to_server(servicer, s),
            )
        ],
    )
    await server.server.start()
    try:
        yield server.port, state
    finally:
        await server.server.stop(1)


async def _produce_via_grpc(port: int, state: Path, data: Path, limit: int | None) -> None:
    """The file streamed to the ImportPosts on ``port`` by `qingfeng import` in a child process (its start-up
    included, as an operator's import pays it)."""
    from qingfeng.cli.pki import IMPORT_ISSUER, key_file

    file = data / "weibo_posts.jsonl"
    args = [
        sys.executable,
        "-m",
        "qingfeng.cli.main",
        "import",
        str(file),
        "--collector",
        f"127.0.0.1:{port}",
        "--plaintext",
        "--key-file",
        str(key_file(state, IMPORT_ISSUER)),
    ]
    if limit:
        args += ["--limit", str(limit)]
    process = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"qingfeng import failed ({process.returncode}): {out.decode()}")


def schedstat(pid: int | str = "self") -> tuple[float, float]:
    """Seconds a process's threads ran on a CPU and waited, runnable, for one (Linux ``/proc/PID/task/*/schedstat``).

    Wall time minus both is time the process had nothing to run (waiting on I/O, on Kafka, on Elasticsearch): that
    splits a path's wall time into its own work, the machine being busy, and waiting, whatever the load average.
    (0, 0) where there is no /proc.
    """
    run = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as handle:
                fields = handle.read().split()
        except OSError:  # a thread that ended meanwhile
            continue
        run += int(fields[0])
        wait += int(fields[1])
    return run / 1e9, wait / 1e9


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN on that port
                inodes.add(fields[9])
    return inodes


def engine_pids(*ports: int) -> list[int]:
    """The processes listening on ``ports`` (the local Kafka and Elasticsearch), with their descendants."""
    wanted = {f"socket:[{inode}]" for port in ports for inode in _listening_inodes(port)}
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                parents[pid] = int(handle.read().rsplit(")", 1)[1].split()[1])
            if wanted and any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in os.listdir(f"/proc/{pid}/fd")):
                found.add(pid)
        except OSError:  # gone, or not ours to read
            continue
    tree = set(found)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return sorted(tree)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (all their threads) so far; 0 for one that is gone."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


_ENGINES: list[int] = []


def engines_cpu() -> float:
    """CPU seconds used so far by the local Kafka and Elasticsearch (0 where they cannot be found or read).

    They serve every engineer's tests on this machine too: what they spend during a measurement is an upper bound
    of what the measured path cost them.
    """
    if not _ENGINES:
        _ENGINES.extend(engine_pids(*stack_ports()))
    return cpu_seconds(_ENGINES)


def stack_ports() -> tuple[int, int]:
    """The ports of the local Kafka and Elasticsearch this benchmark talks to."""
    kafka = os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092").split(",")[0].rsplit(":", 1)[1]
    es = os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200").rstrip("/").rsplit(":", 1)[1]
    return int(kafka), int(es)


async def _watch(child: asyncio.subprocess.Process) -> None:
    code = await child.wait()
    if code not in (0, -15):
        raise RuntimeError(f"indexer process exited with {code}")


class _BenchStore:
    """Just enough of the source registry for ImportPosts into the built-in import source."""

    async def find_source(self, source_id: str) -> source_pb2.Source | None:
        return IMPORT_SOURCE if source_id == IMPORT_SOURCE.id else None

    async def record_import(self, source_id: str, summary: object) -> None:
        return None

    async def audit(self, *args: object) -> None:
        return None


async def _wait_for_group(settings: CollectorSettings, members: int, timeout_s: float = 90.0) -> None:
    """Wait until the indexer group is stable with ``members`` members (every child joined and was assigned)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            (response,) = await admin.describe_consumer_groups([settings.indexer.group_id])
            group = response.groups[0]
            state, joined = group[2], group[5]  # (error_code, group, state, protocol_type, protocol, members)
            if state == "Stable" and len(joined) == members:
                return
            await asyncio.sleep(0.5)
        raise RuntimeError(f"indexer group {settings.indexer.group_id} not stable with {members} members")
    finally:
        await admin.close()


def _indexer_env(settings: CollectorSettings) -> dict[str, str]:
    """Environment of a `python -m services.collector` child in role ``index`` for this run's topics and index."""
    topics = settings.topics
    inherited = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        # The repository first (and whatever was on the path before: a checkout of another commit, when comparing).
        "PYTHONPATH": os.pathsep.join([str(REPO), *([inherited] if inherited else [])]),
        "QF_COLLECTOR_ROLE": "index",
        "QF_COLLECTOR_GRPC__PORT": "0",
        "QF_COLLECTOR_GRPC__PLAINTEXT": "true",  # loopback benchmark; the index role serves only health
        "QF_COLLECTOR_IDENTITY__TRUST_FILE": str(provision_identities(Path(tempfile.mkdtemp(prefix="qfbench-")))),
        "QF_COLLECTOR_LOG__LEVEL": "WARNING",
        "QF_COLLECTOR_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "QF_COLLECTOR_ELASTICSEARCH__URL": settings.elasticsearch.url,
        "QF_COLLECTOR_ELASTICSEARCH__INDEX_PREFIX": settings.elasticsearch.index_prefix,
        "QF_COLLECTOR_TOPICS__POSTS": topics.posts,
        "QF_COLLECTOR_TOPICS__POSTS_DEADLETTER": topics.posts_deadletter,
        "QF_COLLECTOR_TOPICS__DEADLETTER": topics.deadletter,
        "QF_COLLECTOR_INDEXER__GROUP_ID": settings.indexer.group_id,
    }


async def bench_end_to_end(
    data: Path,
    limit: int | None,
    via: str,
    indexer_mode: str,
    keep: bool,
    indexers: int = 1,
    producer_options: Mapping[str, Any] | None = None,
    refresh_every_s: float = 0.0,
    indexer_nice: int = 0,
) -> dict[str, float]:
    """Seconds until every post is produced and searchable (``indexers`` children with ``indexer_mode`` process);
    ``producer_options`` for the collector's ``Producer`` (e.g. ``PER_RECORD``).

    Every ``_POLL_S`` (0.1 s) the index's count of indexing operations is read (``_stats/indexing``: no refresh
    needed); once it reaches the number of posts, one refresh makes them searchable and the count of searchable
    documents must agree.
    Elasticsearch refreshes on the posts template's own interval meanwhile (5 s), as in the suite.
    ``refresh_every_s`` > 0 forces a refresh that often as well (1.0: the measure of the rows before 2026-12-01,
    stop 18, which kept Elasticsearch's 1 s default and cost the node ~10 % more CPU). ``indexer_nice``: the indexer
    processes' nice value (`qingfeng up` starts them at QF_SUITE_NICE_INDEXER, 10 by default; the rows run them at 0,
    this process's own)."""
    settings = _settings(uuid.uuid4().hex[:10])
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    es = create_client(settings.elasticsearch)
    names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
    lines = _lines(data, limit)
    expected = len(lines)
    stop = asyncio.Event()
    children: list[asyncio.subprocess.Process] = []
    try:
        async with contextlib.AsyncExitStack() as stack:
            producer = await stack.enter_async_context(Producer(settings.kafka, **(producer_options or {})))
            # Built before the clock, as a collector builds its pipeline (lexicons, automata) at start-up.
            pipeline = build_pipeline(settings, producer)
            if via == "grpc":
                port, state = await stack.enter_async_context(_import_server(pipeline, settings.grpc))
            if indexer_mode == "process":
                # QF_COLLECTOR_ROLE=index in processes of their own (one consumer group), as `qingfeng up --indexers
                # N` runs them; started, and the group joined by all, before the clock starts (long-running indexers).
                env = _indexer_env(settings)
                for _ in range(indexers):
                    children.append(
                        await asyncio.create_subprocess_exec(
                            *niced([sys.executable, "-m", "services.collector"], indexer_nice), env=env, cwd=str(REPO)
                        )
                    )
                consuming = asyncio.ensure_future(asyncio.gather(*(_watch(child) for child in children)))
                await _wait_for_group(settings, indexers)
            else:
                indexer = PostIndexer(
                    es,
                    names.write_alias,
                    producer,
                    kafka=settings.kafka,
                    topics=settings.topics,
                    settings=settings.indexer,
                )
                consuming = asyncio.create_task(indexer.run(stop))
            started = time.perf_counter()
            engines0 = engines_cpu()
            run0, wait0 = schedstat()
            for child in children:  # their start-up and group join are not part of the path
                child_run, child_wait = schedstat(child.pid)
                run0, wait0 = run0 + child_run, wait0 + child_wait
            client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            if via == "grpc":
                await _produce_via_grpc(port, state, data, limit)
            else:
                await _produce_in_process(pipeline, lines)
            produced = time.perf_counter() - started
            client_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the import client, once it exited
            client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
                client_before.ru_utime + client_before.ru_stime
            )
            searchable = 0
            polls = 0
            every = max(1, round(refresh_every_s / _POLL_S)) if refresh_every_s > 0 else 0
            while searchable < expected:
                if consuming.done():
                    consuming.result()  # raises what stopped the indexer
                    raise RuntimeError("indexer stopped early")
                await asyncio.sleep(_POLL_S)
                polls += 1
                if every and polls % every == 0:
                    await es.indices.refresh(index=names.read_alias)
                if await _indexed(es, names.read_alias) >= expected:
                    await es.indices.refresh(index=names.read_alias)
                    searchable = await _count(es, names.read_alias)
            finished = time.perf_counter() - started
            engines = engines_cpu() - engines0
            run, wait = schedstat()
            for child in children:
                child_run, child_wait = schedstat(child.pid)
                run, wait = run + child_run, wait + child_wait
            stop.set()
            for child in children:
                child.terminate()
            await consuming
        hits = await es.search(
            index=names.read_alias, query={"match_phrase": {"text_simplified": "谣言"}}, size=0, track_total_hits=True
        )
        return {
            "posts": expected,
            "produced_s": produced,
            "searchable_s": finished,
            "phrase_hits": float(hits.body["hits"]["total"]["value"]),
            # CPU seconds of this process, the indexer children and the `qingfeng import` client; run-queue seconds of
            # the first two (the client's are not known once it exited).
            "cpu_s": run - run0 + client_cpu,
            "client_cpu_s": client_cpu,
            "engines_cpu_s": engines,
            "cpu_wait_s": wait - wait0,
        }
    finally:
        stop.set()
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
        if not keep:
            with contextlib.suppress(Exception):
                await delete_family(es, IndexNames(settings.elasticsearch.index_prefix, "posts"))
            with contextlib.suppress(Exception):
                await _delete_topics(settings)
        await es.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=_default_data())
    parser.add_argument("--limit", type=int, default=None, help="only the first N posts")
    parser.add_argument("--via", choices=("pipeline", "grpc"), default="pipeline")
    parser.add_argument(
        "--indexer",
        choices=("inprocess", "process"),
        default="inprocess",
        help="indexer in the collector's process (QF_COLLECTOR_ROLE=all) or in its own (role=index)",
    )
    parser.add_argument("--indexers", type=int, default=1, help="with --indexer process: how many processes")
    parser.add_argument("--keep", action="store_true", help="keep the topics and the index afterwards")
    parser.add_argument("--skip-pipeline", action="store_true", help="only the end-to-end measurement")
    parser.add_argument(
        "--per-record-produce", action="store_true", help="one producer send per record, as before batch produce"
    )
    parser.add_argument(
        "--indexer-nice",
        type=int,
        default=0,
        help="nice value of the indexer processes (qingfeng up: QF_SUITE_NICE_INDEXER, 10 by default); default 0",
    )
    parser.add_argument(
        "--refresh-every",
        type=float,
        default=0.0,
        help="force a refresh every S seconds while waiting (1.0: the measure before stop 18); default: none",
    )
    parser.add_argument(
        "--gc", choices=("service", "default"), default="service", help="this process's GC: the services' or CPython's"
    )
    parser.add_argument("--tracing", choices=("off", "default", "full"), default="off")
    parser.add_argument("--tracing-drop", action="store_true", help="DROP unsampled spans instead of RECORD_ONLY")
    parser.add_argument("--otlp-endpoint", default=None, help="export spans over OTLP, e.g. http://127.0.0.1:4317")
    args = parser.parse_args()
    if args.tracing != "off":
        from qingfeng.settings import TelemetrySettings
        from qingfeng.telemetry import setup_tracing

        ratio = 1.0 if args.tracing == "full" else TelemetrySettings().sample_ratio
        telemetry = TelemetrySettings(sample_ratio=ratio, otlp_endpoint=args.otlp_endpoint)
        setup_tracing(telemetry, process="collector", record_unsampled=not args.tracing_drop)
        mode = "DROP" if args.tracing_drop else "RECORD_ONLY"
        print(f"tracing {args.tracing}: ratio {ratio}, unsampled {mode}, export {args.otlp_endpoint or 'none'}")
    if not (args.data / "weibo_posts.jsonl").is_file():
        print(f"no weibo_posts.jsonl in {args.data} (set QF_SHARED_DATA)", file=sys.stderr)
        return 2
    print(f"collector end-to-end benchmark, {os.cpu_count()} CPUs, data {args.data}, GC {args.gc}")
    if args.gc == "service":
        apply_gc_settings(GcSettings())
    if not args.skip_pipeline:
        options = PER_RECORD if args.per_record_produce else None
        n, elapsed = await bench_pipeline(args.data, args.limit, args.keep, options)
        rate = n / elapsed
        print(f"pipeline only  (enrich + dedupe + produce, acked): {n} posts in {elapsed:6.2f} s = {rate:8.0f} posts/s")
    e2e = await bench_end_to_end(
        args.data,
        args.limit,
        args.via,
        args.indexer,
        args.keep,
        args.indexers,
        PER_RECORD if args.per_record_produce else None,
        args.refresh_every,
        args.indexer_nice,
    )
    n = int(e2e["posts"])
    rate = n / e2e["searchable_s"]
    print(f"end to end via {args.via}, indexer {args.indexer} (collector -> Kafka -> ES): {n} posts")
    print(f"  all produced and acked after {e2e['produced_s']:6.2f} s = {n / e2e['produced_s']:8.0f} posts/s")
    print(f"  all searchable in ES after  {e2e['searchable_s']:6.2f} s = {rate:8.0f} posts/s sustained")
    print(
        f"  CPU per post: ours {e2e['cpu_s'] / n * 1e6:.0f} µs (this process, indexer children, import client), "
        f"local Kafka + Elasticsearch {e2e['engines_cpu_s'] / n * 1e6:.0f} µs"
    )
    print(f"  search check: {int(e2e['phrase_hits'])} posts match the phrase 谣言")
    verdict = "meets" if rate >= TARGET else "MISSES"
    print(f"target >= {TARGET} posts/s end to end: {verdict} ({rate / TARGET:.1f}x)")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    # As the services run: without protobuf's periodic malloc_trim (qingfeng.malloc_trim); QF_NO_MALLOC_TRIM=0 runs
    # with it, as before 2026-12-01 (stop 20).
    from qingfeng.malloc_trim import exec_without_malloc_trim

    exec_without_malloc_trim()
    sys.exit(asyncio.run(main()))
