"""The collector's indexer stage alone (consume → decode → document → bulk), CPU per post, old code against new.

    .venv/bin/python bench/bench_indexer.py [--data DIR] [--limit N] [--rounds 3] [--old DIR] [--twice]

The shared posts (DIR/weibo_posts.jsonl, default $QF_SHARED_DATA else ../shared/data) go once through the collector
in process into a topic of their own (not timed). Then each round runs the ``PostIndexer`` over that topic in a
child process of its own, with a fresh consumer group and a fresh posts index, once per code tree: this tree, and
with ``--old DIR`` a copy of another commit (``git archive <commit> | tar -x -C DIR``), imported through
``PYTHONPATH=DIR/libs:DIR``; the trees alternate round by round so they share the machine's load. A child reports:

- CPU µs per post of its own process (``getrusage``, every thread), from the first batch handed to the indexer to
  the last acknowledgement (the consumer-group join and the start-up are left out), and the wall rate;
- a digest of the documents Elasticsearch holds afterwards (``_id`` and ``_source`` of every document, in ``_id``
  order): equal digests mean the two trees wrote the same documents. With ``--twice`` a second indexer (another
  group) runs over the same topic into the same index after the first, so every post exists already and takes the
  409 → ``update`` with ``doc_as_upsert`` path; its CPU and the digest after it are reported too.

The child's garbage collector is tuned as the collector service tunes its own (``qingfeng.gc_tuning``) unless
``--gc default``. ``--profile FILE`` (one round, this tree only) wraps the timed part of the child in cProfile.
Only loopback is contacted (QF_TEST_KAFKA / QF_TEST_ES, defaults 127.0.0.1:19092 / http://127.0.0.1:19200).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _settings(run_id: str, topic_run: str) -> Any:
    from qingfeng.settings import ElasticsearchSettings, GrpcSettings, KafkaSettings

    from services.collector.settings import CollectorSettings, CollectorTopics, IndexerSettings

    return CollectorSettings(
        kafka=KafkaSettings(
            bootstrap_servers=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"), client_id=f"bench-{run_id}"
        ),
        elasticsearch=ElasticsearchSettings(
            url=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"), index_prefix=f"qfbench-{run_id}"
        ),
        topics=CollectorTopics(
            posts=f"qfbench.{topic_run}.posts.v1",
            posts_deadletter=f"qfbench.{topic_run}.posts.deadletter.v1",
            deadletter=f"qfbench.{topic_run}.deadletter.v1",
        ),
        indexer=IndexerSettings(group_id=f"qfbench-{run_id}-indexer"),
        grpc=GrpcSettings(port=0, plaintext=True),
    )


async def _digest(es: Any, index: str) -> tuple[str, int]:
    """sha256 over every document's id and source (as Elasticsearch returns it, key order kept), in id order."""
    await es.indices.refresh(index=index)
    digest = hashlib.sha256()
    count = 0
    after: list[Any] | None = None
    while True:
        body: dict[str, Any] = {"size": 5000, "sort": [{"id": "asc"}], "query": {"match_all": {}}}
        if after is not None:
            body["search_after"] = after
        hits = (await es.search(index=index, body=body)).body["hits"]["hits"]
        if not hits:
            break
        for hit in hits:
            digest.update(hit["_id"].encode())
            digest.update(json.dumps(hit["_source"], ensure_ascii=False, separators=(",", ":")).encode())
            count += 1
        after = hit["sort"]
    return digest.hexdigest(), count


async def _index_once(settings: Any, es: Any, alias: str, expected: int, profile: str | None) -> dict[str, float]:
    from qingfeng.kafka import Producer

    from services.collector.indexer import PostIndexer

    async with Producer(settings.kafka) as producer:
        indexer = PostIndexer(
            es, alias, producer, kafka=settings.kafka, topics=settings.topics, settings=settings.indexer
        )
        first: list[float] = []
        handle = indexer.handle
        profiler: Any = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()

        async def timed(records: list[Any]) -> None:
            if not first:
                first.extend((time.perf_counter(), _cpu()))
                if profiler is not None:
                    profiler.enable()
            await handle(records)

        indexer.handle = timed  # type: ignore[method-assign]
        stop = asyncio.Event()
        task = asyncio.create_task(indexer.run(stop))
        try:
            while indexer.indexed < expected:
                if task.done():
                    task.result()
                    raise RuntimeError("indexer stopped early")
                await asyncio.sleep(0.01)
            wall, cpu = time.perf_counter() - first[0], _cpu() - first[1]
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(profile)
        finally:
            stop.set()
            await task
    return {"wall_s": wall, "cpu_s": cpu, "indexed": indexer.indexed}


async def child(topic_run: str, expected: int, twice: bool, profile: str | None) -> dict[str, Any]:
    import qingfeng.elastic.bulk
    from qingfeng.elastic import IndexNames, create_client, delete_family, ensure_index

    import services.collector.indexer

    run_id = uuid.uuid4().hex[:8]
    settings = _settings(run_id, topic_run)
    es = create_client(settings.elasticsearch)
    out: dict[str, Any] = {
        "code": [services.collector.indexer.__file__, qingfeng.elastic.bulk.__file__],
        "load": os.getloadavg()[0],
    }
    try:
        names = await ensure_index(es, settings.elasticsearch.index_prefix, "posts")
        out["first"] = await _index_once(settings, es, names.write_alias, expected, profile)
        out["first"]["digest"], out["first"]["docs"] = await _digest(es, names.write_alias)
        if twice:
            again = _settings(run_id + "b", topic_run)
            out["again"] = await _index_once(again, es, names.write_alias, expected, None)
            out["again"]["digest"], out["again"]["docs"] = await _digest(es, names.write_alias)
        return out
    finally:
        with contextlib.suppress(Exception):
            await delete_family(es, IndexNames(settings.elasticsearch.index_prefix, "posts"))
        await es.close()


async def produce(topic_run: str, data: Path, limit: int | None) -> int:
    sys.path.insert(0, str(HERE))
    import bench_collector_e2e as e2e
    from qingfeng.kafka import Producer, ensure_topics

    from services.collector.app import build_pipeline, topic_specs_for

    settings = _settings(topic_run, topic_run)
    lines = e2e._lines(data, limit)
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    async with Producer(settings.kafka) as producer:
        await e2e._produce_in_process(build_pipeline(settings, producer), lines)
    return len(lines)


async def delete_topics(topic_run: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    settings = _settings(topic_run, topic_run)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        t = settings.topics
        await admin.delete_topics([t.posts, t.posts_deadletter, t.deadletter])
    finally:
        await admin.close()


def _run_child(tree: Path, topic_run: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if tree != REPO:
        env["PYTHONPATH"] = f"{tree / 'libs'}:{tree}"
    else:
        env["PYTHONPATH"] = f"{REPO / 'libs'}:{REPO}"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", topic_run, "--expected", str(n), "--gc", args.gc]
    if args.twice:
        cmd.append("--twice")
    if args.profile:
        cmd += ["--profile", args.profile]
    done = subprocess.run(cmd, env=env, cwd="/tmp", capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({tree}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = Path(os.environ.get("QF_SHARED_DATA", REPO.parent / "shared/data"))
    parser.add_argument("--data", type=Path, default=data, help="dir with weibo_posts.jsonl")
    parser.add_argument("--limit", type=int, default=None, help="only the first N posts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", type=Path, default=None, help="a copy of another commit's tree to compare with")
    parser.add_argument("--twice", action="store_true", help="also index everything again (the update path)")
    parser.add_argument("--gc", choices=("tuned", "default"), default="tuned")
    parser.add_argument("--profile", default=None, help="cProfile the timed part of one child of this tree")
    parser.add_argument("--produce-only", action="store_true", help="produce the topic, print its run id, keep it")
    parser.add_argument("--topic", default=None, help="run id of a topic made by --produce-only (kept afterwards)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--expected", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.gc == "tuned":
            from qingfeng.gc_tuning import GcSettings, apply_gc_settings

            apply_gc_settings(GcSettings())
        print(json.dumps(asyncio.run(child(args.child, args.expected, args.twice, args.profile))))
        return 0

    if args.topic:
        topic_run, n = args.topic.split(":") if ":" in args.topic else (args.topic, args.limit or 57_576)
        n = int(n)
    else:
        topic_run = uuid.uuid4().hex[:8]
        n = asyncio.run(produce(topic_run, args.data, args.limit))
        print(f"{n} posts produced to qfbench.{topic_run}.posts.v1; load {os.getloadavg()}", flush=True)
        if args.produce_only:
            print(f"--topic {topic_run}:{n}")
            return 0
    trees = [REPO] if args.old is None or args.profile else [args.old.resolve(), REPO]
    rounds = 1 if args.profile else args.rounds
    try:
        for r in range(rounds):
            for tree in trees if r % 2 == 0 else list(reversed(trees)):
                res = _run_child(tree, topic_run, n, args)
                label = "new" if tree == REPO else "old"
                parts = [f"round {r + 1} {label:3s} load {res['load']:.2f}"]
                for key in ("first", "again"):
                    if key in res:
                        x = res[key]
                        us = x["cpu_s"] / x["indexed"] * 1e6
                        rate = x["indexed"] / x["wall_s"]
                        digest = x["digest"][:16]
                        parts.append(
                            f"{key}: {us:6.1f} CPU-µs/post {rate:7.0f} posts/s docs {x['docs']} digest {digest}"
                        )
                print(" | ".join(parts), f"({res['code'][0]})", flush=True)
    finally:
        if not args.topic:
            asyncio.run(delete_topics(topic_run))
    print(f"load after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    # As the services run: without protobuf's periodic malloc_trim (qingfeng.malloc_trim); QF_NO_MALLOC_TRIM=0 runs
    # with it, as before 2026-12-01 (stop 20).
    from qingfeng.malloc_trim import exec_without_malloc_trim

    exec_without_malloc_trim()
    sys.exit(main())
