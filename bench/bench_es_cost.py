"""Elasticsearch CPU per indexed post, for variants of the posts template and of the node's settings.

Issue 12 and the soak: Elasticsearch is the largest CPU consumer of the suite on 2 shared cores (0.63 of a core at
2,315 posts/s). This measures what one indexed post costs the node, the way ``bench_limits.py`` measures its raw
bulk row (the shared posts' own documents, ``post_document``, as prepared NDJSON with ``index`` actions), but on a
**private node** of this benchmark (default http://127.0.0.1:39200, its own stack home under the temp directory,
the project's stack code and settings, stopped and deleted at the end): the CPU read from ``/proc/<pid>/stat`` is
then the node's alone, not the shared stack's serving everyone's tests.

Per variant and round: a fresh index from the code's posts template with the variant's overrides, the documents fed
either **paced** (``--rate`` posts/s in requests of 500 with up to 3 in flight, as the collector's indexer sends
them; default 2,315, the soak's rate) or **flat out** (``--rate 0``: requests of 1,000, one in flight, as
``bench_limits``), then one ``_refresh`` (every post searchable) and ``--settle`` seconds (merges finishing). Three
figures of node CPU µs per post: while feeding; feeding + the final refresh; and all that + the settle, minus the
node's idle CPU over as long (measured before the round). Variants alternate within each round so that the load of
the machine (printed beside every round) moves them alike.

``--updates 1.0`` adds what the grader's index role did to the posts index in the suite before issue 13's change:
some time after a post is indexed, an ids search for its index and a partial update writing its ``event_id`` (a
realtime get and a second indexing of the whole document inside Elasticsearch). The variant ``joined`` is the shape
since (``services/collector/event_ids.py``): the ``code`` template, each document indexed once WITH its
``event_id``, then, ``--assign-delay`` s later, the index role's realtime ``mget`` (``_source: event_id``) of every
post in the write index and a partial update for only ``--reassigned`` of them (the posts whose event the indexer did
not know or that changed); ``--updates`` does not apply to it. Compare in one run:
``--variants code,joined --updates 1.0``. Variants: ``code`` (the template as the code writes it),
``v2`` (template version 2: the original text indexed, Elasticsearch's default refresh), ``text_indexed``,
``text_unindexed``, ``refresh_1s|2s|5s|10s``, ``lean_keywords``, ``words_no_offsets`` (each one change to
``code``), ``node_tuned`` (``code`` on a second private node with ``NODE_SETTINGS["tuned"]``).

    .venv/bin/python bench/bench_es_cost.py                          # v2, code and single changes, 3 rounds, paced
    .venv/bin/python bench/bench_es_cost.py --variants v2,code --updates 1.0 --rounds 3
    .venv/bin/python bench/bench_es_cost.py --variants code,joined --updates 1.0 --rounds 3   # issue 13: old vs new
    .venv/bin/python bench/bench_es_cost.py --variants v2,code --rate 0 --rounds 5     # flat out, as bench_limits
    .venv/bin/python bench/bench_es_cost.py --variants code --node-variants            # node settings
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _pipeline
import bench_collector_e2e as e2e
from _soak_stack import _link_downloads, _shared_config, soak_stack_config
from bench_limits import ES_CHUNK, _load
from elasticsearch import AsyncElasticsearch
from qingfeng.cli import es_server
from qingfeng.cli._process import group_members, stop_group
from qingfeng.cli.kafka_server import port_open
from qingfeng.elastic import IndexNames
from qingfeng.elastic.index import detect_cjk_mode
from qingfeng.elastic.templates import POSTS, template_body
from qingfeng.text import Enricher

from services.collector.indexer import post_document

PACED_CHUNK = 500  # the collector's indexer: requests of 500 documents …
PACED_IN_FLIGHT = 3  # … up to three in flight
Props = dict[str, Any]


@dataclass(frozen=True)
class Variant:
    """Overrides of the code's posts template: index settings, and a change to the mapping's properties."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    mapping: Callable[[Props], None] | None = None
    node: str = "default"
    # Documents indexed with their event_id; the index role then only reads (mget) and updates --reassigned of them.
    joined: bool = False
    lookup: str | None = None  # joined: --lookup for this variant only


def _set(path: str, value: Mapping[str, Any]) -> Callable[[Props], None]:
    def change(props: Props) -> None:
        *parents, leaf = path.split(".")
        target = props
        for parent in parents:
            target = target[parent]["properties"]
        target[leaf] = dict(value)

    return change


def _both(*changes: Callable[[Props], None]) -> Callable[[Props], None]:
    def change(props: Props) -> None:
        for one in changes:
            one(props)

    return change


_TEXT_INDEXED = _set("text", {"type": "text", "analyzer": "qf_cjk"})
_TEXT_UNINDEXED = _set("text", {"type": "text", "index": False})
# Keywords only ever filtered (never sorted or aggregated): no doc values; url is never queried at all.
_LEAN_KEYWORDS = _both(
    *(
        _set(name, {"type": "keyword", "doc_values": False})
        for name in ("id", "source_id", "native_id", "root_id", "parent_id", "content_hash", "simhash", "duplicate_of")
    ),
    _set("url", {"type": "keyword", "index": False, "doc_values": False}),
)

VARIANTS: Mapping[str, Variant] = {
    v.name: v
    for v in (
        Variant("code"),  # the template as the code writes it now
        # Template version 2, before this work: the original text indexed, Elasticsearch's default refresh.
        Variant("v2", settings={"refresh_interval": None}, mapping=_TEXT_INDEXED),
        # The original text indexed per character too, as template version 2 did (before).
        Variant("text_indexed", mapping=_TEXT_INDEXED),
        Variant("text_unindexed", mapping=_TEXT_UNINDEXED),
        Variant("refresh_1s", settings={"refresh_interval": "1s"}),
        Variant("refresh_2s", settings={"refresh_interval": "2s"}),
        Variant("refresh_5s", settings={"refresh_interval": "5s"}),
        Variant("refresh_10s", settings={"refresh_interval": "10s"}),
        Variant("lean_keywords", mapping=_LEAN_KEYWORDS),
        Variant("words_no_offsets", mapping=_set("words", {"type": "text", "analyzer": "whitespace"})),
        Variant("node_tuned", node="tuned"),
        Variant("joined", joined=True),
        # joined without the index role's lookup (not a correct shape: what the lookup costs, in the same run)
        Variant("joined_nolookup", joined=True, lookup="none"),
    )
}
# Node settings of the second private node (--node-variants): appended to its elasticsearch.yml.
NODE_SETTINGS: Mapping[str, Mapping[str, str]] = {
    "default": {},
    # One variable at a time: fewer write/search threads on a machine whose 2 cores serve the whole suite.
    "tuned": {"node.processors": "1"},
}


@dataclass
class Node:
    name: str
    port: int
    home: Path
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_node(node: Node, settings: Mapping[str, str]) -> None:
    """A private node from the project's stack code (``es_server``), its own home and ports, extra settings."""
    if port_open(node.port) or port_open(node.port + 100):
        raise RuntimeError(f"127.0.0.1:{node.port} (or its transport port) is taken: choose --es-port")
    # The Kafka port is unused (no broker is started); the transport port is the stack's default, HTTP + 100.
    config = soak_stack_config(node.home, kafka_port=node.port - 100, es_port=node.port)
    _link_downloads(config, _shared_config())
    if settings:
        with (config.es_install / "config" / "elasticsearch.yml").open("a", encoding="utf-8") as yml:
            yml.write("".join(f"\n{key}: {value}" for key, value in settings.items()) + "\n")
    es_server.prepare_runtime(config)
    node.pid = es_server.start(config)
    deadline = time.monotonic() + 240
    while (reason := es_server.probe(config, timeout_s=2.0)) is not None:
        if time.monotonic() > deadline or not group_members(node.pid):
            raise RuntimeError(f"private node {node.name} did not start: {reason}")
        time.sleep(0.5)


def stop_node(node: Node) -> None:
    if node.pid is not None and group_members(node.pid):
        stop_group(node.pid, timeout_s=60.0)
    node.pid = None


def _event_of(doc_id: str) -> str:
    return f"e-{hash(doc_id) % 997}"


def bodies_of(docs: Sequence[tuple[str, dict[str, object]]], chunk: int, joined: bool = False) -> list[bytes]:
    """NDJSON bulk bodies of ``index`` actions, as ``bench_limits.raw_es_bulk`` prepares them (``joined``: each
    document with its ``event_id``, as the indexer writes it since issue 13)."""
    out = []
    for start in range(0, len(docs), chunk):
        lines = []
        for doc_id, doc in docs[start : start + chunk]:
            lines.append(json.dumps({"index": {"_id": doc_id}}))
            lines.append(json.dumps({**doc, "event_id": _event_of(doc_id)} if joined else doc, ensure_ascii=False))
        out.append(("\n".join(lines) + "\n").encode("utf-8"))
    return out


@dataclass(frozen=True)
class Result:
    variant: str
    round: int
    docs: int
    feed_s: float
    cpu_feed: float
    cpu_refreshed: float
    cpu_settled: float
    load: float


async def measure(
    es: AsyncElasticsearch,
    node_pids: list[int],
    variant: Variant,
    bodies: Sequence[bytes],
    docs: Sequence[tuple[str, dict[str, object]]],
    args: Any,
) -> tuple[float, float, float, float]:
    names = IndexNames(f"qfescost-{uuid.uuid4().hex[:8]}", "posts")
    body = template_body(POSTS, names, cjk=await detect_cjk_mode(es))
    for key, value in variant.settings.items():  # None: leave the setting to Elasticsearch's default
        if value is None:
            body["template"]["settings"].pop(key, None)
        else:
            body["template"]["settings"][key] = value
    if variant.mapping is not None:
        props = copy.deepcopy(body["template"]["mappings"]["properties"])
        variant.mapping(props)
        body["template"]["mappings"]["properties"] = props
    await es.indices.put_index_template(**body)
    await es.indices.create(index=names.first_index, aliases={names.write_alias: {"is_write_index": True}})
    try:
        idle0 = e2e.cpu_seconds(node_pids)
        await asyncio.sleep(args.settle)
        idle = e2e.cpu_seconds(node_pids) - idle0
        started, cpu0 = time.perf_counter(), e2e.cpu_seconds(node_pids)
        if args.rate > 0:
            gate = asyncio.Semaphore(PACED_IN_FLIGHT)

            async def send(body: bytes) -> None:
                async with gate:
                    response = await es.bulk(index=names.write_alias, operations=body)  # type: ignore[arg-type]
                    if response.body.get("errors"):
                        raise RuntimeError(f"bulk refused a document in variant {variant.name}")

            async def mark(ids: list[str], indexed: asyncio.Task[None]) -> None:
                # The grader's index role (``ElasticPostEvents``): find the posts' index, then a partial update each,
                # some time after the posts were indexed (the grader grades them from Kafka meanwhile).
                await indexed
                await asyncio.sleep(args.update_delay)
                await es.search(index=names.read_alias, query={"ids": {"values": ids}}, size=len(ids), source=False)
                lines = []
                for doc_id in ids:
                    lines.append(json.dumps({"update": {"_id": doc_id}}))
                    lines.append(json.dumps({"doc": {"event_id": f"e-{hash(doc_id) % 997}"}}))
                body = ("\n".join(lines) + "\n").encode("utf-8")
                response = await es.bulk(index=names.write_alias, operations=body)  # type: ignore[arg-type]
                if response.body.get("errors"):
                    raise RuntimeError(f"an event id update failed in variant {variant.name}")

            async def check(ids: list[str], indexed: asyncio.Task[None]) -> None:
                # The index role since issue 13: a realtime mget of the posts' event ids in the write index, then a
                # partial update for the share whose event id differs (here: changed to another event).
                await indexed
                await asyncio.sleep(args.assign_delay)
                lookup = variant.lookup or args.lookup
                missing = [] if lookup == "none" else ids
                if lookup == "search":
                    # Refreshed documents: an ids search reading event_id from doc values (no _source), then the
                    # realtime mget only for the posts not refreshed yet.
                    hits = await es.search(index=names.read_alias, query={"ids": {"values": ids}}, size=len(ids),
                                           source=False, docvalue_fields=["event_id"],
                                           filter_path=["hits.hits._id", "hits.hits.fields"])  # fmt: skip
                    seen = {h["_id"] for h in hits.body.get("hits", {}).get("hits", [])}
                    missing = [doc_id for doc_id in ids if doc_id not in seen]
                    check.searched += len(seen)  # type: ignore[attr-defined]
                if missing:
                    found = await es.mget(index=names.first_index, ids=missing, source=["event_id"],
                                          realtime=args.realtime,
                                          filter_path=["docs._id", "docs.found", "docs._source.event_id"])  # fmt: skip
                    docs_found = found.body.get("docs", [])
                    if args.realtime and sum(1 for d in docs_found if d.get("found")) != len(missing):
                        raise RuntimeError(f"a realtime get missed a post in variant {variant.name}")
                changed = ids[: round(len(ids) * args.reassigned)]
                if not changed:
                    return
                lines = []
                for doc_id in changed:
                    lines.append(json.dumps({"update": {"_id": doc_id}}))
                    lines.append(json.dumps({"doc": {"event_id": _event_of(doc_id) + "-merged"}}))
                body = ("\n".join(lines) + "\n").encode("utf-8")
                response = await es.bulk(index=names.write_alias, operations=body)  # type: ignore[arg-type]
                if response.body.get("errors"):
                    raise RuntimeError(f"an event id update failed in variant {variant.name}")

            check.searched = 0  # type: ignore[attr-defined]
            tasks = []
            for i, chunk in enumerate(bodies):
                await asyncio.sleep(max(0.0, started + i * PACED_CHUNK / args.rate - time.perf_counter()))
                indexed = asyncio.create_task(send(chunk))
                tasks.append(indexed)
                ids = [doc_id for doc_id, _ in docs[i * PACED_CHUNK : (i + 1) * PACED_CHUNK]]
                if variant.joined:
                    tasks.append(asyncio.create_task(check(ids, indexed)))
                elif args.updates > 0:
                    tasks.append(asyncio.create_task(mark(ids[: round(len(ids) * args.updates)], indexed)))
            await asyncio.gather(*tasks)
            if variant.joined and args.lookup == "search":
                print(f"  joined: {check.searched / len(docs):.0%} of the posts found by the search", flush=True)  # type: ignore[attr-defined]
        else:
            for chunk in bodies:
                response = await es.bulk(index=names.write_alias, operations=chunk)  # type: ignore[arg-type]
                if response.body.get("errors"):
                    raise RuntimeError(f"bulk refused a document in variant {variant.name}")
        feed_s, cpu_feed = time.perf_counter() - started, e2e.cpu_seconds(node_pids) - cpu0
        await es.indices.refresh(index=names.write_alias)
        cpu_refreshed = e2e.cpu_seconds(node_pids) - cpu0
        await asyncio.sleep(args.settle)
        cpu_settled = e2e.cpu_seconds(node_pids) - cpu0 - idle
        count = (await es.count(index=names.write_alias)).body["count"]
        if count != len(docs):
            raise RuntimeError(f"variant {variant.name}: {count} documents searchable of {len(docs)}")
        return feed_s, cpu_feed, cpu_refreshed, cpu_settled
    finally:
        await es.options(ignore_status=404).indices.delete(index=names.pattern)
        await es.options(ignore_status=404).indices.delete_index_template(name=names.template)


async def run(args: Any, variants: Sequence[Variant], nodes: Mapping[str, Node], docs: Sequence[Any]) -> list[Result]:
    chunk = PACED_CHUNK if args.rate > 0 else ES_CHUNK
    bodies = bodies_of(docs, chunk)
    joined_bodies = bodies_of(docs, chunk, joined=True) if any(v.joined for v in variants) else bodies
    clients = {name: AsyncElasticsearch(node.url, request_timeout=120) for name, node in nodes.items()}
    pids = {name: e2e.engine_pids(node.port) for name, node in nodes.items()}
    results: list[Result] = []
    try:
        for round_ in range(args.warmup + args.rounds):
            order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
            for variant in order:
                feed_s, cpu_feed, cpu_refreshed, cpu_settled = await measure(
                    clients[variant.node],
                    pids[variant.node],
                    variant,
                    joined_bodies if variant.joined else bodies,
                    docs,
                    args,
                )
                if round_ < args.warmup:
                    continue
                result = Result(variant.name, round_ - args.warmup + 1, len(docs), feed_s, cpu_feed, cpu_refreshed,
                                cpu_settled, os.getloadavg()[0])  # fmt: skip
                results.append(result)
                print(
                    f"round {result.round} {variant.name:17} {len(docs) / feed_s:7,.0f} posts/s  ES µs/post: feed "
                    f"{cpu_feed / len(docs) * 1e6:5.1f}, +refresh {cpu_refreshed / len(docs) * 1e6:5.1f}, "
                    f"+settle {cpu_settled / len(docs) * 1e6:5.1f}  (load {result.load:.2f})",
                    flush=True,
                )
    finally:
        for client in clients.values():
            await client.close()
    return results


def summary(results: Sequence[Result], variants: Sequence[Variant]) -> str:
    base = [r for r in results if r.variant == variants[0].name]
    lines = ["", f"median over rounds (ratio to {variants[0].name}, same run), ES CPU µs per post:"]
    lines.append(f"{'variant':18} {'posts/s':>8} {'feed':>7} {'+refresh':>9} {'+settle':>8}  ratio(+settle)  loads")

    def med(rows: Sequence[Result], attr: str) -> float:
        return statistics.median(getattr(r, attr) / r.docs * 1e6 for r in rows)

    for variant in variants:
        rows = [r for r in results if r.variant == variant.name]
        ratio = med(rows, "cpu_settled") / med(base, "cpu_settled")
        loads = ", ".join(f"{r.load:.1f}" for r in rows)
        rate = statistics.median(r.docs / r.feed_s for r in rows)
        lines.append(
            f"{variant.name:18} {rate:8,.0f} {med(rows, 'cpu_feed'):7.1f} {med(rows, 'cpu_refreshed'):9.1f} "
            f"{med(rows, 'cpu_settled'):8.1f}  {ratio:13.2f}x  {loads}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("QF_SHARED_DATA", "../shared/data")))
    parser.add_argument("--limit", type=int, default=0, help="first N posts only (default all)")
    parser.add_argument("--variants", default="v2,code,text_indexed,refresh_1s,refresh_10s")
    parser.add_argument("--node-variants", action="store_true", help="also node_tuned, on a second private node")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted (JIT, caches)")
    parser.add_argument("--rate", type=float, default=2315.0, help="posts/s paced like the indexer; 0: flat out")
    parser.add_argument(
        "--updates",
        type=float,
        default=0.0,
        help="paced only: this fraction of each request's posts then gets an event id by partial update, as the "
        "grader's index role writes them (ids search, then updates), --update-delay s after the request",
    )
    parser.add_argument("--update-delay", type=float, default=1.0)
    parser.add_argument(
        "--assign-delay",
        type=float,
        default=3.5,
        help="joined: the index role's mget this long after the request (its assign_delay_s)",
    )
    parser.add_argument(
        "--reassigned",
        type=float,
        default=0.02,
        help="joined: the share of posts the index role still updates (event unknown or changed)",
    )
    parser.add_argument(
        "--lookup",
        choices=("mget", "search", "none"),
        default="mget",
        help="joined: mget every post (realtime), or an ids search with doc values first and mget the rest, or "
        "none (no lookup: what the documents and the updates alone cost)",
    )
    parser.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="joined: the mget reads the last refresh only (what realtime gets cost the node, not a correct shape)",
    )
    parser.add_argument("--settle", type=float, default=3.0, help="seconds after the refresh (and of idle baseline)")
    parser.add_argument("--es-port", type=int, default=39200, help="the private node's HTTP port (next: +1)")
    args = parser.parse_args(argv)
    # A plain kill still stops and deletes the private nodes (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n for n in args.variants.split(",") if n] + (["node_tuned"] if args.node_variants else [])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    variants = [VARIANTS[n] for n in names]
    file = args.data / "weibo_posts.jsonl"
    if not file.is_file():
        print(f"no weibo_posts.jsonl in {args.data} (set QF_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    print(f"ES cost benchmark, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC; load average before: {_load()}")
    collected = _pipeline.collect(_pipeline.read_rows(file, args.limit), enricher=Enricher())
    docs = [(p.id, post_document(p)) for p in collected.posts]
    mode = "flat out" if args.rate <= 0 else f"paced at {args.rate:,.0f} posts/s"
    if args.rate > 0 and args.updates > 0:
        mode += f", {args.updates:.0%} of them then given an event id {args.update_delay} s later"
    print(f"{len(docs)} documents; {mode}")
    root = Path(tempfile.mkdtemp(prefix="qf-escost-"))
    root.chmod(0o755)  # the Elasticsearch user must reach its home
    needed = sorted({v.node for v in variants})
    nodes = {name: Node(name, args.es_port + i, root / name) for i, name in enumerate(needed)}
    try:
        for name, node in nodes.items():
            start_node(node, NODE_SETTINGS[name])
            print(f"private node {name} at {node.url}, settings {dict(NODE_SETTINGS[name]) or 'the stack defaults'}")
        results = asyncio.run(run(args, variants, nodes, docs))
        print(summary(results, variants))
    finally:
        for node in nodes.values():
            stop_node(node)
        shutil.rmtree(root, ignore_errors=True)
    print(f"load average after: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
