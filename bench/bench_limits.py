"""The engines' limits and the project's ingest paths, measured in one run, each path as a ratio of its limit.

    .venv/bin/python bench/bench_limits.py [--data DIR] [--limit N] [--skip-grpc] [--indexers 1,2] [--repeat N]
                                           [--compare-produce] [--gc service|default] [--gc-compare]
                                           [--warmup N]

On the shared data (DIR/weibo_posts.jsonl, default $QF_SHARED_DATA else ../shared/data; 57,576 posts), against the
local stack on loopback (Kafka 127.0.0.1:19092, Elasticsearch http://127.0.0.1:19200; QF_TEST_KAFKA / QF_TEST_ES):

raw limits (one Python client, nothing of ours in the loop):
- **ES bulk**: the posts' own index documents (built once, beforehand, by the indexer's ``post_document``) into an
  index made from the project's posts template (``ensure_index``), as NDJSON prepared beforehand, 1,000 documents
  per request, one request in flight, ``index`` operations with ``_id`` = post id, timed until searchable: the last
  request acknowledged, then one refresh, as every end-to-end path ends (until 2026-12-02, stop 21, the limit
  stopped at the acknowledgement while the paths paid the refresh: 0.15-0.82 s of a 3.5-4.6 s raw run; the limit until
  acknowledged is still shown, and ``--repeat``'s summary gives the ratios against it too);
- **Kafka produce**: the same encoded ``Post`` records (``SerializeToString``), keyed by post id, with a bare
  ``AIOKafkaProducer`` (``acks=all``, idempotent, ``linger_ms=5`` as ours), all sends in flight, until all acked;
- **Kafka consume**: those records read back with a bare ``AIOKafkaConsumer`` (assigned, no group, no commit).

the project's paths (the code the services run, reused from ``_pipeline.py`` and ``bench_collector_e2e.py``):
- **enrichment**: ``services.collector.core.enrich_post`` over every post (conversion, tags, keywords, dedupe);
- **collector in process**: JSONL line → parse → validate, enrich, dedupe → ``Post`` → produce, acked (the
  collector's ``Pipeline`` over the real ``Producer``, in chunks of 5,000 as ``qingfeng import`` sends them);
- **indexer**: the ``PostIndexer`` consuming what the collector produced → documents → bulk (``create``, and
  ``update`` with ``doc_as_upsert`` for posts that exist), timed from its first batch (the consumer-group join is
  left out) to the last acknowledgement;
  (``bench/bench_indexer.py`` runs this stage alone, in child processes, one code tree against another, with a
  digest of the documents written);
- **end to end, one process**: collector and indexer in one process, until every post is searchable;
- **end to end via ImportPosts**: ``qingfeng import`` in a child process streams the file to the collector's
  ``ImportPosts`` (TLS off on loopback, signed credential verified), indexer in process, until all searchable;
- **the multi-process shape** (``--indexers 1,2``): the same two end-to-end paths with the indexer in N processes of
  its own (``QF_COLLECTOR_ROLE=index``, one consumer group, joined before the clock starts), the collector in this
  process, as ``qingfeng up --indexers N`` runs the suite (its collector in role ``fetch``).

Raw ES bulk is measured first and again last; paths are divided by the mean of the two (on a shared machine the
limit itself moves between the start and the end of a run). The last column is the CPU the path's own processes
used per item (this process, the indexer children and the import client; from ``/proc/*/schedstat`` and
``getrusage``): what a path costs, far less dependent on the load than its rate. The column after it is the CPU the
local Kafka and Elasticsearch (the processes listening on their ports, found in ``/proc``) used meanwhile, per item:
an upper bound, since they serve everyone's tests on this machine too.

``--compare-produce``: each one-process path (collector in process, end to end in one process and via ImportPosts)
is also run with the producer as it was before batch-level produce (one aiokafka ``send`` per record, 16 KiB
batches: ``bench_collector_e2e.PER_RECORD``), just before the same path with today's producer, so both sides of the
comparison share the run's load and its raw limits.

``--gc service`` (default): this process's garbage collector is tuned as the collector and grader processes tune
theirs at start-up (``qingfeng.gc_tuning`` with its defaults: start-up objects frozen, thresholds 20,000/50/100),
before anything is measured, so the collector (and the in-process indexer) in this process run as ``python -m
services.collector`` and ``qingfeng up`` run them; the indexer processes run the services' own start-up anyway.
``--gc default`` keeps CPython's (700/10/10, nothing frozen), as every row did before 2026-12-01 (stop 18): the
bench process then walked its own 57,576 prepared posts, documents and records in every old-generation collection,
which a collector process does not hold. ``--gc-compare``: the one-process paths once more with the other setting,
rows marked with it.

Elasticsearch is warmed up first (``--warmup`` documents, default 20,000, bulk-indexed into a throwaway index, not
counted, again until two rounds' rates are within 15 % of each other, at most 6 rounds): on a node started minutes
before, the first raw bulk ran at half the rate of the last one (its JIT still compiling), which lowered the limit
and so flattered every ratio.

``--repeat N``: everything (limits and paths) N times, each run's table printed as it ends, then each path's
ratio in every run, its median, and in how many runs it met issue 12's target (ImportPosts rows 0.4x, the other
end-to-end rows 0.5x). On this machine one run decides little: between two runs minutes apart the same code's CPU
per post moved by up to 30 % and the raw limit by 25 %.

Paths that end in Elasticsearch are divided by the ES bulk limit, paths that end in a produce by the Kafka produce
limit (enrichment, which ends in neither, is shown against ES bulk: the rate it would have to sustain). Every topic
and index has a unique name and is deleted afterwards. The machine's load average is printed before and after: on a
shared 2-core machine with Kafka and Elasticsearch co-located, every figure moves with what else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import _pipeline
import bench_collector_e2e as e2e
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from elasticsearch import AsyncElasticsearch
from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index
from qingfeng.gc_tuning import GcSettings, apply_gc_settings
from qingfeng.kafka import Producer, Record, ensure_topics
from qingfeng.text import Enricher
from qingfeng.v1 import post_pb2

from services.collector.app import build_pipeline, topic_specs_for
from services.collector.core import Deduper, enrich_post
from services.collector.indexer import PostIndexer, post_document
from services.collector.settings import CollectorSettings

ES_CHUNK = 1_000


ES_LIMIT, PRODUCE_LIMIT = "ES bulk", "Kafka produce"
# The raw bulk until acknowledged, without the refresh that makes the documents searchable: the ES limit of every
# run before 2026-12-02 (stop 21), while the paths were timed until searchable. Shown, and in the summary, not used.
ES_ACKED = "ES bulk, to acknowledged"
_BEFORE = "send() per record (before)"
_GC = {"service": "GC tuned as the services are", "default": "CPython's default GC"}


@contextlib.contextmanager
def gc_mode(mode: str) -> Iterator[None]:
    """Run the block with this process's collector as ``mode`` says ("service": tuned as the services tune theirs;
    "default": CPython's own), then restore it as it was."""
    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    if mode == "service":
        apply_gc_settings(GcSettings())
    else:
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if frozen and not gc.get_freeze_count():
            gc.freeze()
        elif not frozen:
            gc.unfreeze()


@dataclass(frozen=True)
class Row:
    """One line of the table: a path, its rate, and either the limit it is (``limit``) or the one it is bounded by."""

    path: str
    items: int
    seconds: float
    bound: str | None = None
    limit: str | None = None
    # CPU seconds the path's own processes used (this one, indexer children, the import client), when measured.
    cpu_s: float | None = None
    # CPU seconds the local Kafka and Elasticsearch used meanwhile (an upper bound: they serve others too).
    engines_cpu_s: float | None = None

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_us_per_item(self) -> float | None:
        """CPU microseconds per item: what a path costs, much less dependent on the machine's load than its rate."""
        return None if self.cpu_s is None or not self.items else self.cpu_s / self.items * 1e6

    @property
    def engines_us_per_item(self) -> float | None:
        return None if self.engines_cpu_s is None or not self.items else self.engines_cpu_s / self.items * 1e6


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} CPUs)"


# -- raw limits ----------------------------------------------------------------------------------------------------


async def raw_es_bulk(
    es: AsyncElasticsearch, prefix: str, docs: Sequence[tuple[str, dict[str, object]]]
) -> tuple[float, float, float]:
    """Seconds to bulk-index ``docs`` as prepared NDJSON into a fresh index of the posts template until the last
    request is acknowledged, then until they are searchable (one refresh after it, as the end-to-end paths end), and
    the CPU seconds Kafka and Elasticsearch used until searchable."""
    names = await ensure_index(es, prefix, "posts")
    bodies = []
    for start in range(0, len(docs), ES_CHUNK):
        lines = []
        for doc_id, doc in docs[start : start + ES_CHUNK]:
            lines.append(json.dumps({"index": {"_id": doc_id}}))
            lines.append(json.dumps(doc, ensure_ascii=False))
        bodies.append(("\n".join(lines) + "\n").encode("utf-8"))
    try:
        started, engines0 = time.perf_counter(), e2e.engines_cpu()
        for body in bodies:
            response = await es.bulk(index=names.write_alias, operations=body)  # type: ignore[arg-type]
            if response.body.get("errors"):
                first = next(i for i in response.body["items"] if i["index"].get("error"))
                raise RuntimeError(f"raw bulk refused a document: {first}")
        acknowledged = time.perf_counter() - started
        await es.indices.refresh(index=names.read_alias)
        return acknowledged, time.perf_counter() - started, e2e.engines_cpu() - engines0
    finally:
        with contextlib.suppress(Exception):
            await delete_family(es, IndexNames(prefix, "posts"))


async def raw_kafka(
    settings: CollectorSettings, records: Sequence[tuple[bytes, bytes]]
) -> tuple[float, float, float, float]:
    """Seconds to produce ``records`` (key, value) with a bare idempotent producer, and to consume them back; the CPU
    seconds Kafka and Elasticsearch used during each."""
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    topic = settings.topics.posts
    try:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            started, engines0 = time.perf_counter(), e2e.engines_cpu()
            futures = [await producer.send(topic, value, key=key) for key, value in records]
            await asyncio.gather(*futures)
            produced, produce_cpu = time.perf_counter() - started, e2e.engines_cpu() - engines0
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            seen = 0
            started, engines0 = (
                time.perf_counter(),
                e2e.engines_cpu(),
            )  # assigned and positioned: from here on it is fetching
            while seen < len(records):
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                seen += sum(len(msgs) for msgs in batch.values())
            consumed, consume_cpu = time.perf_counter() - started, e2e.engines_cpu() - engines0
        finally:
            await consumer.stop()
        return produced, consumed, produce_cpu, consume_cpu
    finally:
        with contextlib.suppress(Exception):
            await e2e._delete_topics(settings)


# -- the project's paths -------------------------------------------------------------------------------------------


def enrichment(enricher: Enricher, posts: Sequence[post_pb2.Post]) -> float:
    """Wall seconds of the collector's per-post step over ``posts`` (fresh deduper, cold enrichment cache)."""
    items = [(p.id, p.text, p.created_at.ToDatetime(tzinfo=UTC), p.title) for p in posts]
    deduper = Deduper()
    # The enricher already saw these posts (building the raw inputs): its short-text cache would answer from memory.
    enricher.clear_cache()
    started = time.perf_counter()
    for post_id, text, created_at, title in items:
        enrich_post(post_id, text, created_at, title=title, enricher=enricher, deduper=deduper)
    return time.perf_counter() - started


async def collector_and_indexer(
    settings: CollectorSettings,
    lines: list[str],
    producer_options: Mapping[str, Any] | None = None,
    *,
    index: bool = True,
) -> tuple[float, float, int, tuple[float, float, float, float]]:
    """Seconds of the collector in process (parse → … → produce, acked), then of the indexer over its output; the
    documents indexed; and the CPU seconds of each of the two, then of Kafka and Elasticsearch during each.
    ``index=False``: the collector alone (the indexer's figures are 0)."""
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    es = create_client(settings.elasticsearch)
    try:
        names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
        async with Producer(settings.kafka, **(producer_options or {})) as producer:
            pipeline = build_pipeline(settings, producer)  # before the clock, as a collector builds it at start-up
            started, cpu0, engines0 = time.perf_counter(), e2e.schedstat()[0], e2e.engines_cpu()
            await e2e._produce_in_process(pipeline, lines)
            produced, collector_cpu = time.perf_counter() - started, e2e.schedstat()[0] - cpu0
            collector_engines = e2e.engines_cpu() - engines0
            if not index:
                return produced, 0.0, 0, (collector_cpu, 0.0, collector_engines, 0.0)

            indexer = PostIndexer(
                es, names.write_alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer
            )
            first: list[float] = []
            handle = indexer.handle

            async def timed(records: list[Record]) -> None:
                if not first:
                    # from the first batch: the group join is not indexing
                    first.extend((time.perf_counter(), e2e.schedstat()[0], e2e.engines_cpu()))
                await handle(records)

            indexer.handle = timed  # type: ignore[method-assign]
            stop = asyncio.Event()
            task = asyncio.create_task(indexer.run(stop))
            try:
                while indexer.indexed < len(lines):
                    if task.done():
                        task.result()
                        raise RuntimeError("indexer stopped early")
                    await asyncio.sleep(0.05)
                indexed_s, indexer_cpu = time.perf_counter() - first[0], e2e.schedstat()[0] - first[1]
                indexer_engines = e2e.engines_cpu() - first[2]
            finally:
                stop.set()
                await task
        return produced, indexed_s, indexer.indexed, (collector_cpu, indexer_cpu, collector_engines, indexer_engines)
    finally:
        with contextlib.suppress(Exception):
            await delete_family(es, IndexNames(settings.elasticsearch.index_prefix, "posts"))
        with contextlib.suppress(Exception):
            await e2e._delete_topics(settings)
        await es.close()


def limits_of(rows: Sequence[Row]) -> dict[str, float]:
    """Each limit's rate: the mean of its rows (ES bulk is measured before and after the paths)."""
    rates: dict[str, list[float]] = {}
    for r in rows:
        if r.limit is not None:
            rates.setdefault(r.limit, []).append(r.rate)
    return {name: sum(values) / len(values) for name, values in rates.items()}


def _table(rows: Sequence[Row]) -> str:
    limits = limits_of(rows)
    out = [f"| {'path':66s} | {'items':>6s} | {'seconds':>7s} | {'per s':>8s} | ratio to its limit  | CPU µs/item |"
           " ES+Kafka µs/item |",
           f"|{'-' * 68}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 21}|{'-' * 13}|{'-' * 18}|"]  # fmt: skip
    for r in rows:
        ratio = "" if r.bound is None else f"{r.rate / limits[r.bound]:.2f}x {r.bound}"
        cpu = "" if r.cpu_us_per_item is None else f"{r.cpu_us_per_item:,.0f}"
        engines = "" if r.engines_us_per_item is None else f"{r.engines_us_per_item:,.0f}"
        out.append(f"| {r.path:66s} | {r.items:6d} | {r.seconds:7.2f} | {r.rate:8,.0f} | {ratio:19s} | {cpu:>11s} |"
                   f" {engines:>16s} |")  # fmt: skip
    return "\n".join(out)


def ceilings(rows: Sequence[Row], cpus: int) -> str:
    """Per end-to-end path with both CPU figures: the rate the machine's cores allow at its CPU per post (ours and the
    engines'), the share of that ceiling the run reached, and the CPU per post of ours that would meet the target at
    that share. A path under its target with a high share needs less CPU per post; one with a low share waits."""
    limits = limits_of(rows)
    out = [f"CPU ceilings ({cpus} CPUs; every process of the path and the engines on them):"]
    for r in rows:
        target = target_of(r.path)
        ours, engines = r.cpu_us_per_item, r.engines_us_per_item
        if target is None or r.bound is None or ours is None or engines is None or ours + engines <= 0:
            continue
        ceiling = cpus * 1e6 / (ours + engines)
        share = r.rate / ceiling
        wanted = target * limits[r.bound]
        budget = share * cpus * 1e6 / wanted - engines
        out.append(f"  {r.path}: {ours:,.0f} + {engines:,.0f} µs a post -> ceiling {ceiling:,.0f}/s, reached "
                   f"{share:.0%}; {target}x ({wanted:,.0f}/s) at that share needs ours <= {budget:,.0f} "
                   "µs a post")  # fmt: skip
    return "\n".join(out) if len(out) > 1 else ""


# Issue 12's targets: end to end through ImportPosts >= 0.4x the raw bulk rate, fed in process >= 0.5x.
TARGETS: Final = (("end to end via ImportPosts", 0.4), ("end to end, ", 0.5))


def target_of(path: str) -> float | None:
    """The ratio issue 12 asks of a path's row (None: a stage or a limit, which has no target)."""
    return next((ratio for prefix, ratio in TARGETS if path.startswith(prefix)), None)


def summary(tables: Sequence[Sequence[Row]]) -> str:
    """Per path, its ratio in each run (each against that run's own limits), the median, and how many runs met the
    target: the limit and the paths move by a quarter between runs on this machine, so one run decides little."""
    ratios: dict[str, list[float]] = {}
    acked: dict[str, list[float]] = {}
    for rows in tables:
        limits = limits_of(rows)
        for r in rows:
            if r.bound is not None:
                ratios.setdefault(r.path, []).append(r.rate / limits[r.bound])
            if r.bound == ES_LIMIT and ES_ACKED in limits and target_of(r.path) is not None:
                acked.setdefault(r.path, []).append(r.rate / limits[ES_ACKED])
    out = [f"ratios over {len(tables)} runs (each against its own run's limits):"]
    out += [_ratios_line(path, values) for path, values in ratios.items()]
    if acked:
        out.append("the same against the raw bulk until acknowledged, without its refresh (the measure until stop 20):")
        out += [_ratios_line(path, values) for path, values in acked.items()]
    return "\n".join(out)


def _ratios_line(path: str, values: Sequence[float]) -> str:
    """A path's ratio in each run, their median and, for a path with a target, how many runs met it."""
    target = target_of(path)
    verdict = "" if target is None else f"; >= {target}x in {sum(v >= target for v in values)} of {len(values)}"
    each = " ".join(f"{v:.2f}" for v in values)
    return f"  {path}: {each} (median {statistics.median(values):.2f}{verdict})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=_pipeline.default_data_dir(), help="dir with weibo_posts.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="only the first N posts")
    parser.add_argument("--skip-grpc", action="store_true", help="leave out the end-to-end runs through ImportPosts")
    parser.add_argument("--repeat", type=int, default=1, help="run everything N times, then the ratios of each run")
    parser.add_argument(
        "--compare-produce",
        action="store_true",
        help="also run the one-process paths with one producer send per record (the produce path before batching)",
    )
    parser.add_argument(
        "--gc",
        choices=("service", "default"),
        default="service",
        help="this process's garbage collector: tuned as the services run it (default) or CPython's own",
    )
    parser.add_argument(
        "--gc-compare",
        action="store_true",
        help="also run the one-process paths with the other --gc setting",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=20_000,
        help="documents bulk-indexed, untimed, into a throwaway index before the first raw limit (0: none)",
    )
    parser.add_argument(
        "--indexers",
        default="1,2",
        help="indexer process counts of the multi-process shape, comma-separated (default 1,2; 0 or '' for none)",
    )
    args = parser.parse_args(argv)
    args.indexers = [int(n) for n in str(args.indexers).split(",") if n.strip() and int(n) > 0]
    file = args.data / "weibo_posts.jsonl"
    if not file.is_file():
        print(f"no weibo_posts.jsonl in {args.data} (set QF_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    print(f"limits benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, data {file}")
    print(f"load average before: {_load()}")
    lines = e2e._lines(args.data, args.limit)
    rows = _pipeline.read_rows(file, args.limit or 0)
    enricher = Enricher()
    collected = _pipeline.collect(rows, enricher=enricher)  # the collector's own posts, for the raw inputs
    posts = collected.posts
    docs = [(p.id, post_document(p)) for p in posts]
    records = [(p.id.encode(), p.SerializeToString()) for p in posts]
    print(f"{len(lines)} lines, {len(posts)} posts; {sum(len(v) for _, v in records) / len(records):.0f} B/record")
    print(f"garbage collector of this process: {_GC[args.gc]}")
    tables = []
    for run in range(1, args.repeat + 1):
        with gc_mode(args.gc):
            table = asyncio.run(_measure(args, lines, enricher, posts, docs, records))
        tables.append(table)
        print(f"\nrun {run} of {args.repeat}, ended {datetime.now(UTC):%H:%M:%S} UTC, load average {_load()}")
        print(_table(table), flush=True)
        if lines_of_ceilings := ceilings(table, os.cpu_count() or 1):
            print(lines_of_ceilings, flush=True)
    if len(tables) > 1:
        print()
        print(summary(tables))
    print(f"\nload average after: {_load()}")
    print(
        "the machine is shared (other engineers' tests and Kafka/Elasticsearch on the same 2 cores): figures are noisy"
    )
    return 0


async def _measure(
    args: argparse.Namespace,
    lines: list[str],
    enricher: Enricher,
    posts: Sequence[post_pb2.Post],
    docs: Sequence[tuple[str, dict[str, object]]],
    records: Sequence[tuple[bytes, bytes]],
) -> list[Row]:

    run = uuid.uuid4().hex[:8]
    other = "default" if args.gc == "service" else "service"
    if args.warmup > 0:
        await _warm_up(run, docs[: args.warmup])
    es_before_acked, es_before, es_before_cpu = await _raw_es(run, "raw", docs)
    produce_s, consume_s, produce_engines, consume_engines = await raw_kafka(e2e._settings(f"{run}-raw"), records)
    cpu0 = e2e.schedstat()[0]
    enrich_s = enrichment(enricher, posts)
    enrich_cpu = e2e.schedstat()[0] - cpu0
    before: list[Row] = []
    if args.compare_produce:
        collector_s0, _, _, (collector_cpu0, _, collector_engines0, _) = await collector_and_indexer(
            e2e._settings(f"{run}-path0"), lines, e2e.PER_RECORD, index=False
        )
        before.append(
            Row(f"collector in process, {_BEFORE}", len(lines), collector_s0, PRODUCE_LIMIT, cpu_s=collector_cpu0,
                engines_cpu_s=collector_engines0)
        )  # fmt: skip
    (
        collector_s,
        indexer_s,
        indexed,
        (collector_cpu, indexer_cpu, collector_engines, indexer_engines),
    ) = await collector_and_indexer(e2e._settings(f"{run}-path"), lines)
    if args.gc_compare:
        with gc_mode(other):
            collector_s1, _, _, (collector_cpu1, _, collector_engines1, _) = await collector_and_indexer(
                e2e._settings(f"{run}-path1"), lines, index=False
            )
        before.append(
            Row(f"collector in process, {_GC[other]}", len(lines), collector_s1, PRODUCE_LIMIT, cpu_s=collector_cpu1,
                engines_cpu_s=collector_engines1)
        )  # fmt: skip
    n = len(docs)
    table = [
        Row("raw ES bulk, before the paths (NDJSON ready, 1 client, 1 in flight)", n, es_before, limit=ES_LIMIT,
            engines_cpu_s=es_before_cpu),
        Row("  the same until acknowledged (no refresh; the limit before stop 21)", n, es_before_acked,
            limit=ES_ACKED),
        Row("raw Kafka produce (aiokafka, acks=all, idempotent)", len(records), produce_s, limit=PRODUCE_LIMIT,
            engines_cpu_s=produce_engines),
        Row("raw Kafka consume (aiokafka, no group)", len(records), consume_s, engines_cpu_s=consume_engines),
        Row("enrichment (enrich_post: convert, tag, keywords, dedupe)", len(posts), enrich_s, ES_LIMIT,
            cpu_s=enrich_cpu),
        *before,
        Row("collector in process (parse→enrich→dedupe→encode→produce)", len(lines), collector_s, PRODUCE_LIMIT,
            cpu_s=collector_cpu, engines_cpu_s=collector_engines),
        Row("indexer (consume→document→bulk create)", indexed, indexer_s, ES_LIMIT, cpu_s=indexer_cpu,
            engines_cpu_s=indexer_engines),
    ]  # fmt: skip

    async def end_to_end(
        label: str,
        via: str,
        mode: str,
        n: int = 1,
        producer_options: Mapping[str, Any] | None = None,
        gc_setting: str | None = None,
    ) -> None:
        with gc_mode(gc_setting) if gc_setting else contextlib.nullcontext():
            result = await e2e.bench_end_to_end(args.data, args.limit, via, mode, False, n, producer_options)
        table.append(
            Row(
                label,
                int(result["posts"]),
                result["searchable_s"],
                ES_LIMIT,
                cpu_s=result["cpu_s"],
                engines_cpu_s=result["engines_cpu_s"],
            )
        )

    if args.compare_produce:
        await end_to_end(f"end to end, one process, {_BEFORE}", "pipeline", "inprocess", 1, e2e.PER_RECORD)
    await end_to_end("end to end, one process (collector→Kafka→ES)", "pipeline", "inprocess")
    if args.gc_compare:
        await end_to_end(f"end to end, one process, {_GC[other]}", "pipeline", "inprocess", gc_setting=other)
    for n in args.indexers:
        await end_to_end(
            f"end to end, collector + {n} indexer process{'es' if n > 1 else ''}", "pipeline", "process", n
        )
    if not args.skip_grpc:
        if args.compare_produce:
            await end_to_end(f"end to end via ImportPosts, one process, {_BEFORE}", "grpc", "inprocess", 1,
                             e2e.PER_RECORD)  # fmt: skip
        await end_to_end("end to end via ImportPosts, one process", "grpc", "inprocess")
        if args.gc_compare:
            await end_to_end(
                f"end to end via ImportPosts, one process, {_GC[other]}", "grpc", "inprocess", gc_setting=other
            )
        for n in args.indexers:
            label = f"end to end via ImportPosts + {n} indexer process{'es' if n > 1 else ''} (qingfeng up)"
            await end_to_end(label, "grpc", "process", n)
    es_after_acked, es_after, es_after_cpu = await _raw_es(run, "raw2", docs)
    table[2:2] = [
        Row("raw ES bulk, after the paths", len(docs), es_after, limit=ES_LIMIT, engines_cpu_s=es_after_cpu),
        Row("  the same until acknowledged", len(docs), es_after_acked, limit=ES_ACKED),
    ]
    return table


# A warm-up round is repeated until its rate is within this share of the round before (at most WARMUP_ROUNDS).
WARMUP_SETTLED: Final = 0.15
WARMUP_ROUNDS: Final = 6


def warmed_up(rates: Sequence[float]) -> bool:
    """Whether the node's raw bulk rate has settled: the last warm-up round within WARMUP_SETTLED of the one before."""
    return len(rates) >= 2 and abs(rates[-1] - rates[-2]) <= WARMUP_SETTLED * rates[-2]


async def _warm_up(run: str, docs: Sequence[tuple[str, dict[str, object]]]) -> None:
    """Raw bulk rounds, untimed for the table, until the rate settles: a node started seconds before still compiles
    (20,000 documents once were not enough 20 s after a start: the first limit then came out at 8,881 docs/s, the
    last at 15,109)."""
    rates: list[float] = []
    while len(rates) < WARMUP_ROUNDS and not warmed_up(rates):
        seconds, _, _ = await _raw_es(run, f"warmup{len(rates)}", docs)
        rates.append(len(docs) / seconds)
    print(f"Elasticsearch warm-up: {', '.join(f'{r:,.0f}' for r in rates)} docs/s", flush=True)


async def _raw_es(run: str, name: str, docs: Sequence[tuple[str, dict[str, object]]]) -> tuple[float, float, float]:
    es = create_client(e2e._settings(run).elasticsearch)
    try:
        return await raw_es_bulk(es, f"qfbench-{run}-{name}", docs)
    finally:
        await es.close()


if __name__ == "__main__":
    # As the services run: without protobuf's periodic malloc_trim (qingfeng.malloc_trim); QF_NO_MALLOC_TRIM=0 runs
    # with it, as before 2026-12-01 (stop 20).
    from qingfeng.malloc_trim import exec_without_malloc_trim

    exec_without_malloc_trim()
    sys.exit(main())
