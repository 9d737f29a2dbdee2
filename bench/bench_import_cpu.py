"""CPU per post of the ImportPosts path, stage by stage, for two trees in turn, with a check that the outputs match.

    .venv/bin/python bench/bench_import_cpu.py [--old DIR] [--limit 20000] [--rounds 3] [--gc service|default]

Each round runs a child process per tree (``--old DIR``: a copy made with ``git archive <commit> | tar -x -C DIR``,
run with ``PYTHONPATH=DIR/libs:DIR``; the current tree otherwise), trees alternating, and reads its own CPU time
(``time.process_time``: the machine is shared, wall clock would measure the neighbours) of each stage over the first
``--limit`` posts of the shared data:

1. **parse**: every line through the collector's ImportPosts line parser (``server.jsonl_line_parser``);
2. **ingest**: the parsed items through the collector's ``Pipeline`` (validation, enrichment, dedupe, protobuf
   encode) into the real ``Producer`` and the local Kafka, acknowledged (``acks=all``), in chunks of 1,000 as
   ImportPosts hands them over (``owned=True`` where the tree's ``Pipeline.ingest`` has it);
3. **decode**: the records read back from Kafka turned into ``Record`` and ``Post`` as the indexer does
   (``record_of`` + ``parse_batch``); the fetch itself (aiokafka) is not counted;
4. **index**: the posts topic's records, in (partition, offset) order and batches of the indexer's ``batch_size``,
   through the collector's ``PostIndexer.handle`` as its consumer hands them over: its own decode (``parse_batch``),
   the event-id join against an ``AssignmentMap`` holding an assignment for every post (as when the grader keeps
   up; the reader task is not run), the documents and the bulk request bodies, sent to a stand-in client that
   answers every document ``created`` (Elasticsearch's own work, HTTP and the response parsing are not counted).

Outputs: a SHA-256 of every record read back (topic, partition, key, value, headers, in offset order), one of
the decoded records (key, headers, decoded Post re-serialised deterministically) and one of the bulk request bodies
the indexer made (every byte, in request order). The trees must agree on all three (the run fails otherwise): the
produced protobuf bytes and headers and the documents sent are the same before and after. Times are fixed
(collected_at and the pipeline's clock), tracing is off (no SDK: no traceparent header); records are compared in
(topic, partition, offset) order.

``--client``: also the CPU of the tree's `qingfeng import` (a child process, start-up included, from
``getrusage``) sending the same lines to a bare ImportPosts served by this process that only reads the stream.

``--callgrind 400,2400``: instead of CPU time, instructions per post of the whole child (every stage, start-up,
Kafka client and the digests included) under ``valgrind --tool=callgrind``, as the difference of a run over the
larger and one over the smaller number of posts divided by the difference (start-up cancels), per tree, trees
alternating. Instruction counts hardly depend on the machine's load; the digests must still agree.

``--gc service`` (default) applies the collector's garbage-collector settings (``qingfeng.gc_tuning``) in the child
as ``python -m services.collector`` does; ``--gc default`` keeps CPython's.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_COLLECTED_AT = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
_CHUNK = 1_000
_STAGES = ("parse", "ingest", "decode", "index")


class _BulkSink:
    """A stand-in for ``AsyncElasticsearch`` in the index stage: keeps a digest of every bulk body and answers each
    document ``created``, as Elasticsearch does for a new post (the answers made once per request size)."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.requests = 0
        self._answers: dict[int, Any] = {}

    async def bulk(self, *, index: str, operations: bytes, refresh: Any = False, filter_path: Any = None) -> Any:
        self.digest.update(operations)
        self.requests += 1
        items = operations.count(b"\n") // 2
        answer = self._answers.get(items)
        if answer is None:
            from types import SimpleNamespace

            answer = self._answers[items] = SimpleNamespace(
                body={"items": [{"create": {"status": 201, "result": "created"}}] * items}
            )
        return answer


def _child(limit: int, data: Path, gc_mode: str) -> dict[str, Any]:
    """One measurement in this process (whatever tree PYTHONPATH points to)."""
    from aiokafka import AIOKafkaConsumer
    from qingfeng.kafka import Producer, ensure_topics
    from qingfeng.kafka.records import parse_batch, record_of
    from qingfeng.settings import KafkaSettings
    from qingfeng.v1 import common_pb2, post_pb2, source_pb2

    import services
    from services.collector.app import build_enricher, topic_specs_for
    from services.collector.core import Deduper
    from services.collector.indexer import PostIndexer
    from services.collector.pipeline import Pipeline
    from services.collector.server import jsonl_line_parser
    from services.collector.settings import CollectorSettings, CollectorTopics

    run = f"cpu-{uuid.uuid4().hex[:8]}"
    kafka = os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092")
    settings = CollectorSettings(
        kafka=KafkaSettings(bootstrap_servers=kafka, client_id=f"bench-{run}"),
        topics=CollectorTopics(
            posts=f"qfbench.{run}.posts.v1",
            posts_deadletter=f"qfbench.{run}.posts.deadletter.v1",
            deadletter=f"qfbench.{run}.deadletter.v1",
        ),
    )
    if gc_mode == "service":
        from qingfeng.gc_tuning import apply_gc_settings

        apply_gc_settings(settings.gc)
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for _, line in zip(range(limit), handle, strict=False)]
    source = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
    enricher = build_enricher(settings)
    cpu: dict[str, float] = {}

    t0 = time.process_time()
    items = [
        jsonl_line_parser(line, source, line_number=i, collected_at=_COLLECTED_AT) for i, line in enumerate(lines, 1)
    ]
    cpu["parse"] = time.process_time() - t0

    async def produce_and_read() -> tuple[str, str, int, int, str]:
        specs = topic_specs_for(settings)
        await ensure_topics(settings.kafka, specs)
        try:
            async with Producer(settings.kafka) as producer:
                pipeline = Pipeline(
                    producer,
                    enricher=enricher,
                    deduper=Deduper(),
                    settings=settings.pipeline,
                    topics=settings.topics,
                    clock=lambda: _COLLECTED_AT,
                )
                # ImportPosts hands its parsed items over (``owned``: enriched in place) where the tree's pipeline
                # takes that; an older tree's copies them.
                handed = {"owned": True} if "owned" in inspect.signature(pipeline.ingest).parameters else {}
                started = time.process_time()
                for i in range(0, len(items), _CHUNK):
                    await pipeline.ingest(items[i : i + _CHUNK], **handed)
                cpu["ingest"] = time.process_time() - started
            topics = [settings.topics.posts, settings.topics.posts_deadletter]
            consumer = AIOKafkaConsumer(
                *topics, bootstrap_servers=kafka, auto_offset_reset="earliest", enable_auto_commit=False
            )
            await consumer.start()
            raw = hashlib.sha256()
            decoded = hashlib.sha256()
            got: list[Any] = []
            consumed: list[Any] = []  # the Records of the posts topic, for the index stage
            decoded_rows: list[tuple[str, int, int, str]] = []
            decode_s = 0.0
            try:
                deadline = time.monotonic() + 120
                while len(got) < len(items) and time.monotonic() < deadline:
                    fetched = await consumer.getmany(timeout_ms=1000, max_records=500)
                    for msgs in fetched.values():
                        started = time.process_time()
                        records = [record_of(msg) for msg in msgs]
                        parsed = parse_batch(records, post_pb2.Post)
                        decode_s += time.process_time() - started
                        got.extend(msgs)
                        consumed.extend(r for r in records if r.topic == settings.topics.posts)
                        for record, post in parsed.good:
                            seen = (
                                record.topic,
                                record.key,
                                record.headers,
                                post.SerializeToString(deterministic=True),
                            )
                            decoded_rows.append((record.topic, record.partition, record.offset, repr(seen)))
                        for bad in parsed.bad:
                            seen_bad = (bad.record.topic, bad.record.key, bad.record.headers, bad.reason)
                            decoded_rows.append(
                                (bad.record.topic, bad.record.partition, bad.record.offset, repr(seen_bad))
                            )
            finally:
                await consumer.stop()
            cpu["decode"] = decode_s
            indexed, bodies = await index(consumed)
            for _, _, _, row in sorted(decoded_rows):
                decoded.update(row.replace(run, "RUN").encode())  # the topic names differ per run
            for msg in sorted(got, key=lambda m: (m.topic.endswith("deadletter.v1"), m.partition, m.offset)):
                name = "deadletter" if msg.topic == settings.topics.posts_deadletter else "posts"
                raw.update(repr((name, msg.partition, msg.key, msg.headers)).encode())
                raw.update(msg.value or b"")
            return raw.hexdigest(), decoded.hexdigest(), len(got), indexed, bodies
        finally:
            from aiokafka.admin import AIOKafkaAdminClient

            admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
            await admin.start()
            try:
                await admin.delete_topics([s.name for s in specs])
            except Exception:  # a leftover topic of a bench run is harmless
                pass
            finally:
                await admin.close()

    async def index(consumed: list[Any]) -> tuple[int, str]:
        """The index stage (see the module docstring): documents indexed and the digest of the request bodies."""
        consumed.sort(key=lambda r: (r.partition, r.offset))
        sink = _BulkSink()
        indexer = PostIndexer(
            sink,  # type: ignore[arg-type]
            "qfbench-posts-write",
            Producer(settings.kafka),  # for dead letters; none are expected (every record is a Post)
            kafka=settings.kafka,
            topics=settings.topics,
            settings=settings.indexer,
            clock=lambda: _COLLECTED_AT,
        )
        assert indexer.event_ids is not None
        for record in consumed:  # every post has its event (a deterministic id per post)
            key = record.key.decode()
            indexer.event_ids.known.put(key, f"ev-{hashlib.blake2b(record.key, digest_size=6).hexdigest()}")
        size = settings.indexer.batch_size
        started = time.process_time()
        for i in range(0, len(consumed), size):
            await indexer.handle(consumed[i : i + size])
        cpu["index"] = time.process_time() - started
        return indexer.indexed, sink.digest.hexdigest()

    raw_digest, decoded_digest, records, indexed, bodies_digest = asyncio.run(produce_and_read())
    return {
        "services": services.__file__,
        "posts": len(lines),
        "records": records,
        "indexed": indexed,
        "us_per_post": {stage: 1e6 * cpu[stage] / len(lines) for stage in _STAGES},
        "raw_digest": raw_digest,
        "decoded_digest": decoded_digest,
        "bodies_digest": bodies_digest,
    }


def _child_no_kafka(limit: int, data: Path, gc_mode: str) -> dict[str, Any]:
    """``--no-kafka``: parse, then the collector's ``SlicePreparer`` (validation, enrichment, dedupe, encoding) over
    slices of 500 owned items, then ``DocumentBuilder.line`` of every post record, all in this process; digests of
    the records, of the item results and of the document lines."""
    from qingfeng.elastic.words import default_splitter
    from qingfeng.v1 import common_pb2, post_pb2, source_pb2

    import services
    from services.collector.app import build_enricher
    from services.collector.core import Deduper
    from services.collector.documents import builder
    from services.collector.preparation import SlicePreparer
    from services.collector.server import jsonl_line_parser
    from services.collector.settings import CollectorSettings

    settings = CollectorSettings()
    if gc_mode == "service":
        from qingfeng.gc_tuning import apply_gc_settings

        apply_gc_settings(settings.gc)
    with (data / "weibo_posts.jsonl").open(encoding="utf-8") as handle:
        lines = [line.rstrip("\n") for _, line in zip(range(limit), handle, strict=False)]
    source = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
    preparer = SlicePreparer(enricher=build_enricher(settings), deduper=Deduper(), settings=settings.pipeline,
                             topics=settings.topics, clock=lambda: _COLLECTED_AT)  # fmt: skip
    documents = builder(default_splitter())
    cpu: dict[str, float] = {}
    t0 = time.process_time()
    items = [jsonl_line_parser(x, source, line_number=i, collected_at=_COLLECTED_AT) for i, x in enumerate(lines, 1)]
    t1 = time.process_time()
    slices = [preparer.prepare(items[i : i + 500], _COLLECTED_AT, lambda _: False, 1 << 20, owned=True)
              for i in range(0, len(items), 500)]  # fmt: skip
    t2 = time.process_time()
    records = [r for s in slices for r in s.records]
    bodies = [documents.line(r.message, "ev") for r in records if isinstance(r.message, post_pb2.Post)]
    cpu = {"parse": t1 - t0, "prepare": t2 - t1, "documents": time.process_time() - t2}
    digests = [hashlib.sha256() for _ in range(3)]
    for r in records:
        digests[0].update(repr((r.topic, r.key, r.event_type, r.event_id, r.message.SerializeToString())).encode())
    for x in (x for s in slices for x in s.results):
        digests[1].update(repr((x.outcome, x.duplicate_of, x.redelivered, x.rejected and x.rejected.reason)).encode())
    for body in bodies:
        digests[2].update(body)
    raw, decoded, made = (d.hexdigest() for d in digests)
    return {"services": services.__file__, "posts": len(lines), "records": len(records), "indexed": len(bodies),
            "us_per_post": {k: 1e6 * v / len(lines) for k, v in cpu.items()},
            "raw_digest": raw, "decoded_digest": decoded, "bodies_digest": made}  # fmt: skip


def _child_args(args: argparse.Namespace, limit: int) -> list[str]:
    extra = ["--no-kafka"] if args.no_kafka else []
    return [__file__, "--child", "--limit", str(limit), "--data", str(args.data), "--gc", args.gc, *extra]


def _run_child(tree: Path, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=f"{tree / 'libs'}:{tree}")
    cmd = [sys.executable, *_child_args(args, args.limit)]
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child for {tree} failed:\n{out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    expected = (tree / "services" / "__init__.py").resolve()
    if Path(result["services"]).resolve() != expected:
        raise SystemExit(f"child imported services from {result['services']}, expected {expected}")
    return result


def _callgrind_ir(tree: Path, args: argparse.Namespace, limit: int) -> tuple[int, dict[str, Any]]:
    """Instructions (Ir) of one child run over ``limit`` posts under callgrind, and its result."""
    import tempfile

    env = dict(os.environ, PYTHONPATH=f"{tree / 'libs'}:{tree}", PYTHONHASHSEED="0")
    with tempfile.TemporaryDirectory(prefix="qf-callgrind-") as tmp:
        out_file = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable]
        cmd += _child_args(args, limit)
        out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"callgrind child for {tree} failed:\n{out.stderr[-4000:]}")
        totals = [line for line in out_file.read_text().splitlines() if line.startswith(("summary:", "totals:"))]
        if not totals:
            raise SystemExit(f"no instruction total in the callgrind output of {tree}")
        result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return int(totals[-1].split()[1]), result


def _callgrind(trees: dict[str, Path], args: argparse.Namespace) -> int:
    small, large = (int(n) for n in args.callgrind.split(","))
    if not 0 < small < large:
        raise SystemExit("--callgrind SMALL,LARGE with 0 < SMALL < LARGE")
    per_post: dict[str, list[float]] = {name: [] for name in trees}
    digests: set[tuple[str, str, str]] = set()
    for round_ in range(args.rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            ir_small, _ = _callgrind_ir(tree, args, small)
            ir_large, result = _callgrind_ir(tree, args, large)
            digests.add((result["raw_digest"], result["decoded_digest"], result["bodies_digest"]))
            value = (ir_large - ir_small) / (large - small)
            per_post[name].append(value)
            print(f"round {round_ + 1} {name:3}: {value:,.0f} instructions/post ({ir_small:,} / {ir_large:,})")
    print(f"\ninstructions per post ({large} - {small} posts), median of {args.rounds}:")
    print("  " + "  ".join(f"{name} {statistics.median(values):,.0f}" for name, values in per_post.items()))
    if len(per_post) == 2:
        old, new = (statistics.median(v) for v in per_post.values())
        print(f"  new/old {new / old:.3f} ({100 * (new - old) / old:+.1f} %)")
    print(f"outputs ({large} posts): {len(digests)} distinct digest triple(s): {sorted(digests)}")
    return 0 if len(digests) == 1 else 1


def _client_cpu(tree: Path, args: argparse.Namespace) -> float:
    """CPU seconds of `qingfeng import` (the tree's, start-up included) sending ``--limit`` lines to a bare
    ImportPosts that only reads the stream (served here, on loopback, without TLS)."""
    import tempfile

    import grpc
    from qingfeng.cli.pki import IMPORT_ISSUER, key_file, provision_identities
    from qingfeng.v1 import source_pb2, source_pb2_grpc

    class Reader(source_pb2_grpc.CollectorServiceServicer):
        async def ImportPosts(self, requests: Any, context: Any) -> source_pb2.ImportPostsResponse:
            lines = 0
            async for request in requests:
                lines += len(request.jsonl_lines.lines) or 1
            return source_pb2.ImportPostsResponse(summary=source_pb2.ImportSummary(accepted=lines))

    async def run() -> float:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 8 * 1024 * 1024)])
        # only ImportPosts is served: the other methods stay the generated stubs' (UNIMPLEMENTED)
        source_pb2_grpc.add_CollectorServiceServicer_to_server(Reader(), server)  # type: ignore[abstract]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            state = Path(tempfile.mkdtemp(prefix="qf-importcpu-"))
            provision_identities(state)
            env = dict(os.environ, PYTHONPATH=f"{tree / 'libs'}:{tree}")
            cmd = [sys.executable, "-m", "qingfeng.cli.main", "import", str(args.data / "weibo_posts.jsonl")]
            cmd += [
                "--collector",
                f"127.0.0.1:{port}",
                "--plaintext",
                "--key-file",
                str(key_file(state, IMPORT_ISSUER)),
            ]
            cmd += ["--limit", str(args.limit)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            child = await asyncio.create_subprocess_exec(
                *cmd, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            _, err = await child.communicate()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if child.returncode != 0:
                raise SystemExit(f"qingfeng import of {tree} failed: {err.decode()[-2000:]}")
            return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        finally:
            await server.stop(None)

    return asyncio.run(run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", type=Path, default=None, help="a copy of the tree to compare with (git archive)")
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--gc", choices=("service", "default"), default="service")
    parser.add_argument(
        "--client", action="store_true", help="also the `qingfeng import` client's CPU per line (start-up included)"
    )
    parser.add_argument(
        "--callgrind", default=None, metavar="SMALL,LARGE", help="instructions per post under callgrind instead"
    )
    parser.add_argument(
        "--no-kafka",
        action="store_true",
        help="the CPU stages alone in one process: parse, prepare (SlicePreparer), documents; digests of each",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps((_child_no_kafka if args.no_kafka else _child)(args.limit, args.data, args.gc)))
        return 0
    trees = {"new": ROOT} if args.old is None else {"old": args.old.resolve(), "new": ROOT}
    if args.callgrind:
        return _callgrind(trees, args)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    for round_ in range(args.rounds):
        order = list(trees.items()) if round_ % 2 == 0 else list(reversed(trees.items()))
        for name, tree in order:
            load = os.getloadavg()[0]
            result = _run_child(tree, args)
            result["load"] = load
            results[name].append(result)
            if args.client:
                result["us_per_post"]["client"] = 1e6 * _client_cpu(tree, args) / args.limit
            cells = ", ".join(f"{stage} {cpu:6.1f}" for stage, cpu in result["us_per_post"].items())
            print(
                f"round {round_ + 1} {name:3}: {cells} µs/post (load {load:.2f}); {result['records']} records, "
                f"{result['indexed']} indexed"
            )
    print(f"\nCPU µs per post, median of {args.rounds} ({args.limit} posts, gc {args.gc}):")
    stages = ("parse", "prepare", "documents") if args.no_kafka else _STAGES
    for stage in (*stages, *(("client",) if args.client else ()), "total"):
        row = []
        for name in trees:
            values = [
                sum(r["us_per_post"].values()) if stage == "total" else r["us_per_post"][stage] for r in results[name]
            ]
            row.append(f"{name} {statistics.median(values):6.1f}")
        print(f"  {stage:7} " + "  ".join(row))
    digests = {(r["raw_digest"], r["decoded_digest"], r["bodies_digest"]) for rs in results.values() for r in rs}
    print(f"outputs (produced, decoded, bulk bodies): {len(digests)} distinct digest triple(s): {sorted(digests)}")
    if len(digests) != 1:
        print("FAIL: the trees produced different records or decoded them differently")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
