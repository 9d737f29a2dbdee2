"""What grows: a process's resident memory after warm-up at a steady post rate, and (optionally) where it grows.

    .venv/bin/python bench/bench_memory_growth.py [--target grader|collector] [--duration 180] [--rate 2315]
        [--warmup 60] [--horizon 120] [--rows 10000] [--tracemalloc FRAMES] [--types] [--top 25]
        [--role grade|index|both] [--kill-at S] [--es-outage AT,SECONDS] [--trim-at-dump] [--env NAME=VALUE]

Needs the local stack (Kafka 127.0.0.1:19092, Elasticsearch 127.0.0.1:19200). Starts the real service as a
subprocess with TLS and signed identities (``bench/_soak_suite.py``, as the soak does) on topics, an index prefix, a
consumer group and a SQLite file of its own, feeds it for ``--duration`` s, samples its RSS every 2 s (``RssSampler``)
and prints the growth from warm-up to the end (``memory_growth``: the median over 20 s after ``--warmup`` against the
median of the last 20 s), then deletes its topics and indices.

- ``--target grader``: the shared posts are enriched once in this process by the collector's own pipeline
  (``bench/_pipeline.collect``) and replayed onto the grader's posts topic at ``--rate`` posts/s, each pass over them
  with fresh ids (parents, roots and ``duplicate_of`` mapped the same way, so reposts still find their original) and
  ``created_at`` = now, a live stream; ``--horizon`` is its ``QF_GRADER_HORIZON_S``. The grader's lag at the end is
  printed: a grader behind the stream holds a backlog, not a leak. ``--role`` picks the process(es) measured: the
  grade role (default; ``QF_GRADER_ROLE=grade``), the index role (``index``: ``services/grader/indexer.py``, fed by a
  grade role that runs beside it, unmeasured, as in the soak), or ``both``.
- ``--kill-at S``: S seconds into the feed the grade role is killed -9 and started again (as the soak does), so its
  last incarnation starts by restoring its checkpoint and replaying; warm-up and growth are then counted from that
  restart (``memory_growth`` on the last incarnation, the soak's measure).
- ``--es-outage AT,SECONDS``: the measured grader processes reach Elasticsearch through a loopback proxy
  (``bench/_fault_proxy.py``) that is taken down AT s into the feed for SECONDS s (open connections cut, new ones
  refused) and brought back, the soak's Elasticsearch restart for those processes only (the shared Elasticsearch
  itself is never touched). The index role's group then falls behind and works off a backlog; its lag over the
  events and post-events topics is printed at the outage's end and every 10 s until it is back under 1,000.
  Warm-up is counted from the start as usual, so AT should come after ``--warmup`` + 20 s.
- ``--target collector``: the collector (role fetch) gets the shared lines through ``ImportPosts`` with fresh ids
  (``bench/_soak_feed.Feeder``, the soak's feeder); nothing consumes its posts topic.

``--tracemalloc N`` runs the service under ``tracemalloc`` with N frames (it costs about twice the CPU and adds its
own memory to the RSS, so compare RSS figures only between runs with the same flag): a snapshot is taken at the end of
warm-up and at the end of the run (the child dumps it on SIGUSR1), and the allocation sites that grew most between
the two are printed, with the gc-tracked object counts by type that grew most. ``--types`` takes only the
gc-tracked object counts (and the sizes of the grade role's engine state, ``_engine_sizes``) without tracemalloc.
Every dump also records the allocators: glibc's (``mallinfo2``, and ``malloc_info`` per arena: the main one against
the worker threads', with the free bytes they keep), pymalloc's, the resident memory by kind of mapping and the
thread count. ``--env`` sets an allocator's environment for the measured process(es) (the grade role's growth
after a restart was glibc's worker-thread arenas: ``services/grader/state_codec.py``).

The child side: run with ``QF_MEMBENCH_CHILD=<module>`` in its environment, this file starts tracemalloc when
``QF_MEMBENCH_TRACEMALLOC`` > 0, dumps a snapshot into ``QF_MEMBENCH_DIR`` on each SIGUSR1, then runs the module as
``python -m <module>`` would.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_CHILD = "QF_MEMBENCH_CHILD"


def _child() -> None:
    """The service under measurement (see the module docstring); nothing of the benchmark is imported."""
    import gc
    import json
    import runpy
    import signal
    import tracemalloc
    from collections import Counter
    from pathlib import Path

    frames = int(os.environ.get("QF_MEMBENCH_TRACEMALLOC", "0"))

    out = Path(os.environ.get("QF_MEMBENCH_DIR", "."))
    if frames > 0:
        tracemalloc.start(frames)
    dumps = [0]

    def dump(signum: int, frame: object) -> None:
        dumps[0] += 1
        n = dumps[0]
        # Before collecting: garbage in reference cycles waiting for an old-generation collection is part of the RSS
        # (the process runs with high thresholds, qingfeng.gc_tuning); what a full collection frees tells how much.
        meta: dict[str, object] = {"rss_kib_before": _rss_kib(), "gc_count": gc.get_count(),
                                   "gc_stats": gc.get_stats(), "tracked": [len(gc.get_objects(g)) for g in range(3)],
                                   "frozen": gc.get_freeze_count()}  # fmt: skip
        if tracemalloc.is_tracing():
            meta["traced_before"] = tracemalloc.get_traced_memory()[0]
        meta["collected"] = gc.collect()
        meta["rss_kib_after"] = _rss_kib()
        meta["allocators"] = _allocators(out / f"pymalloc-{n}.txt")
        meta["glibc_arenas"] = _malloc_info(out / f"malloc-info-{n}.xml")
        meta["smaps"] = _smaps()
        meta["threads"] = len(os.listdir("/proc/self/task"))
        if os.environ.get("QF_MEMBENCH_TRIM") == "1":
            # What glibc would give back now (free pages inside its heaps): the most a malloc_trim(0) after a
            # catch-up could save. It lowers the RSS sampled after it (half the baseline's 20 s for dump 1).
            import ctypes

            meta["trimmed"] = ctypes.CDLL(None).malloc_trim(0)
            meta["rss_kib_after_trim"] = _rss_kib()
        if tracemalloc.is_tracing():
            meta["traced_after"] = tracemalloc.get_traced_memory()[0]
        (out / f"meta-{n}.json").write_text(json.dumps(meta))
        types = Counter(type(o).__name__ for o in gc.get_objects())
        (out / f"types-{n}.json").write_text(json.dumps(dict(types.most_common(200))))
        sizes = _engine_sizes()
        if sizes:
            (out / f"engine-{n}.json").write_text(json.dumps(sizes))
        if tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(str(out / f"snapshot-{n}.tm"))
        (out / f"done-{n}").touch()

    signal.signal(signal.SIGUSR1, dump)
    runpy.run_module(os.environ[_CHILD], run_name="__main__", alter_sys=True)


def _allocators(stats_file: Any) -> dict[str, int]:
    """Where the resident memory sits by allocator (KiB): glibc's heaps (``mallinfo2``: main arena and the threads'
    arenas, with the free bytes they hold) and pymalloc's arenas (``sys._debugmallocstats``, which writes to fd 2:
    redirected into ``stats_file`` for the moment)."""
    import ctypes
    import re

    found: dict[str, int] = {}
    try:
        libc = ctypes.CDLL(None)
        fields = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                  "keepcost")  # fmt: skip

        class Mallinfo2(ctypes.Structure):
            _fields_ = [(f, ctypes.c_size_t) for f in fields]

        libc.mallinfo2.restype = Mallinfo2
        info = libc.mallinfo2()
        # arena: bytes glibc took with brk/its heaps; hblkhd: in its own mmaps; uordblks: in use; fordblks: free
        found |= {f"glibc_{f}": getattr(info, f) // 1024 for f in ("arena", "hblkhd", "uordblks", "fordblks")}
    except (OSError, AttributeError):
        pass
    saved = os.dup(2)
    try:
        with open(stats_file, "w") as target:
            os.dup2(target.fileno(), 2)
            sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    with open(stats_file) as written:
        text = written.read()
    for key, pattern in (("pymalloc_arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("pymalloc_used", r"# bytes in allocated blocks\s*=\s*([\d,]+)"),
                         ("pymalloc_free", r"# bytes in available blocks\s*=\s*([\d,]+)"),
                         ("pymalloc_total", r"Total\s*=\s*([\d,]+)")):  # fmt: skip
        match = re.search(pattern, text)
        if match:
            value = int(match.group(1).replace(",", ""))
            found[key] = value if key == "pymalloc_arenas" else value // 1024
    return found


def _malloc_info(xml_file: Any) -> dict[str, int]:
    """glibc's arenas from ``malloc_info`` (KiB): how many, the memory they took from the system and the free bytes
    inside them, and the chunks it mmapped on its own. ``mallinfo2`` sums the arenas; this tells the main arena
    (the loop thread's) from the arenas of the worker threads, which hold what those threads allocated."""
    import ctypes
    import xml.etree.ElementTree as ET

    try:
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        stream = libc.fopen(str(xml_file).encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        root = ET.parse(xml_file).getroot()
    except (OSError, AttributeError, ET.ParseError):
        return {}
    found = {"arenas": 0, "main_system": 0, "main_free": 0, "threads_system": 0, "threads_free": 0}
    for heap in root.findall("heap"):
        found["arenas"] += 1
        where = "main" if heap.get("nr") == "0" else "threads"
        system = heap.find("system[@type='current']")
        found[f"{where}_system"] += int(system.get("size", 0)) // 1024 if system is not None else 0
        found[f"{where}_free"] += sum(int(t.get("size", 0)) for t in heap.findall("total")) // 1024
    mmap = root.find("total[@type='mmap']")
    if mmap is not None:
        found["mmapped_chunks"] = int(mmap.get("count", 0))
        found["mmapped"] = int(mmap.get("size", 0)) // 1024
    return found


def _smaps() -> dict[str, int]:
    """Resident KiB by kind of mapping: the brk heap (glibc's main arena), glibc's thread-arena heaps (a read-write
    anonymous mapping on a 64 MiB boundary followed by the inaccessible rest of its 64 MiB reservation), other
    anonymous ones (pymalloc's arenas, glibc's mmapped chunks, libraries' own), and file-backed. A thread-arena heap
    grown to the whole 64 MiB has no such rest and counts as other anonymous memory (malloc_info tells it exactly)."""
    regions: list[tuple[int, int, str, str, int]] = []  # start, end, permissions, name, resident KiB
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                start, end = (int(x, 16) for x in head[0].split("-"))
                regions.append((start, end, head[1], head[5] if len(head) > 5 else "", 0))
            elif head[0] == "Rss:" and regions:
                regions[-1] = (*regions[-1][:4], int(head[1]))
    found = {"heap": 0, "thread_arena_heaps": 0, "other_anon": 0, "file": 0}
    block = 64 << 20
    for i, (start, end, perms, name, rss) in enumerate(regions):
        rest = regions[i + 1] if i + 1 < len(regions) else None
        if name == "[heap]":
            kind = "heap"
        elif name and not name.startswith("["):
            kind = "file"
        elif (start % block == 0 and perms.startswith("rw") and rest is not None and rest[0] == end
              and rest[2].startswith("---") and not rest[3] and rest[1] <= start + block):  # fmt: skip
            kind = "thread_arena_heaps"
        else:
            kind = "other_anon"
        found[kind] += rss
    return found


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def _engine_sizes() -> dict[str, int]:
    """The sizes of the grade role's engine state (the one EngineOwner alive in this process), for the dumps."""
    import gc

    owners = [o for o in gc.get_objects() if type(o).__name__ == "EngineOwner"]
    if not owners:
        return {}
    owner: Any = owners[0]
    engine = owner.engine
    c = engine.clusterer
    metrics = list(engine.events.values())
    return {
        "events": len(engine.events),
        "clusters": len(c.clusters),
        "posts_live": len(c.posts),
        "postmap_capacity": c.posts._mask + 1,
        "postmap_slots": len(c.posts._events),
        "placeholders": len(c.placeholders),
        "postings": len(c.postings),
        "postings_entries": sum(len(p) for p in c.postings.values()),
        "df": len(c.df),
        "redirects": len(c.redirects),
        "unattached": len(c.unattached),
        "authors": len(c.authors),
        "bands": sum(len(b) for b in c.near.bands),
        "band_entries": sum(len(e) for b in c.near.bands for e in b.values()),
        "live": len(engine.live),
        "heap": len(engine._heap),
        "buckets": sum(len(ev.metrics.buckets) for ev in metrics),
        "followers": sum(len(ev.metrics.followers) for ev in metrics),
        "total_authors": sum(len(ev.metrics.total.by_author) for ev in metrics),
        "emitted": len(owner._emitted),
        "pacer_held": owner._pacer.held,
        "pacer_sent": len(owner._pacer._sent),
        "script": len(owner.script),
    }


if __name__ == "__main__" and os.environ.get(_CHILD):
    _child()
    raise SystemExit(0)

# -- the benchmark ------------------------------------------------------------------------------------------------

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from _fault_proxy import FaultProxy  # noqa: E402
from _paced import produce_paced  # noqa: E402
from _soak_feed import Feeder, load_rows  # noqa: E402
from _soak_report import memory_growth, rss_series  # noqa: E402
from _soak_suite import RssSampler, SuiteProcess, group_offsets, suite_processes  # noqa: E402
from qingfeng.settings import KafkaSettings  # noqa: E402
from qingfeng.v1 import post_pb2  # noqa: E402

from tests.shared_servers import drop_run_async  # noqa: E402

# Per target: the env prefix and the topic settings it is given (own names, deleted afterwards).
_TOPICS = {
    "grader": ("QF_GRADER_", ("posts", "events", "alerts", "deadletter")),
    "collector": ("QF_COLLECTOR_", ("posts", "posts_deadletter", "deadletter")),
}


def _say(message: str) -> None:
    print(f"[membench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _load() -> float:
    return os.getloadavg()[0]


class Replay:
    """The enriched posts replayed endlessly: pass ``c`` gives every id and reference the prefix ``<tag>c<c>-``."""

    def __init__(self, posts: list[post_pb2.Post], tag: str) -> None:
        self._posts = posts
        self._tag = tag
        self.n = 0

    def next(self, at: datetime) -> post_pb2.Post:
        cycle, position = divmod(self.n, len(self._posts))
        self.n += 1
        prefix = f"{self._tag}c{cycle}-"
        post = post_pb2.Post()
        post.CopyFrom(self._posts[position])
        post.id = prefix + post.id
        for field in ("parent_id", "root_id"):
            if getattr(post, field):
                setattr(post, field, prefix + getattr(post, field))
        if post.dedupe.duplicate_of:
            post.dedupe.duplicate_of = prefix + post.dedupe.duplicate_of
        post.created_at.FromDatetime(at)
        post.collected_at.FromDatetime(at)
        return post


def _enriched(rows: int) -> list[post_pb2.Post]:
    from _pipeline import collect, default_data_dir, read_rows

    started = time.monotonic()
    collected = collect(read_rows(default_data_dir() / "weibo_posts.jsonl", rows))
    _say(f"enriched {len(collected.posts)} posts with the collector's pipeline in {time.monotonic() - started:.0f}s")
    return collected.posts


async def _lag(kafka: KafkaSettings, topics: str | list[str], group: str) -> int | None:
    """Records of ``topics`` after the group's committed offsets (None when unknown). Through ``group_offsets``,
    which asks for every topic's metadata: a fresh consumer knows no topic's partitions, and the lag read here
    before that was 0 whatever the group's position."""
    offsets = await group_offsets(kafka.bootstrap_servers, group, [topics] if isinstance(topics, str) else topics)
    if offsets is None:
        _say("lag unknown: no answer from Kafka, or no partitions")
        return None
    return max(0, offsets[0] - offsets[1])


def _process(
    args: argparse.Namespace, state: Path, run: str, es_proxy: str | None = None
) -> tuple[dict[str, SuiteProcess], dict[str, str], list[str]]:
    """The target as the soak configures it (TLS, identities), on topics, an index prefix and a group of its own:
    the processes to start (in order), the topics, and the names of those measured. With ``--role index`` or
    ``both`` the grader's index role (``grader-index``) runs beside its grade role, on the same topics."""
    procs = suite_processes(state, args.kafka, args.es, partitions=args.partitions, grader_horizon_s=args.horizon)
    names = [args.target]
    measured = [args.target]
    if args.target == "grader" and args.role != "grade":
        names.append("grader-index")
        measured = {"index": ["grader-index"], "both": ["grader", "grader-index"]}[args.role]
    prefix, fields = _TOPICS[args.target]
    topics = {f: f"qfmem.{run}.{f}.v1" for f in fields}
    chosen = {}
    for name in names:
        proc = procs[name]
        out = state / name
        out.mkdir(exist_ok=True)
        proc.env.update({f"{prefix}TOPICS__{f.upper()}": topic for f, topic in topics.items()})
        proc.env.update(
            {
                f"{prefix}ELASTICSEARCH__INDEX_PREFIX": f"qfmem-{run}",
                f"{prefix}KAFKA__CLIENT_ID": f"qfmem-{run}",
                "QF_GRADER_CONSUMER__GROUP_ID": f"qfmem-{run}-grader",  # the index role's group: "<this>-index"
                _CHILD: proc.module,
                "QF_MEMBENCH_TRACEMALLOC": str(args.tracemalloc if name in measured else 0),
                "QF_MEMBENCH_DIR": str(out),
                "QF_MEMBENCH_TRIM": "1" if args.trim_at_dump else "0",
            }
        )
        if name in measured:
            proc.env.update(dict(pair.split("=", 1) for pair in args.env))
        if es_proxy is not None and name in measured:
            proc.env[f"{prefix}ELASTICSEARCH__URL"] = es_proxy
        proc.module = "bench.bench_memory_growth"  # the child side of this file runs the service (tracemalloc)
        chosen[name] = proc
    return chosen, topics, measured


def _snapshot(proc: SuiteProcess, state: Path, n: int, timeout_s: float = 300.0) -> None:
    """Ask the child for snapshot ``n`` (SIGUSR1) and wait until it is written (into ``state/<name>``)."""
    state = state / proc.name
    for old in state.glob(f"*-{n}.*"):  # an incarnation before a kill may have dumped this number already
        old.unlink()
    (state / f"done-{n}").unlink(missing_ok=True)
    if proc.pid is None:
        raise RuntimeError(f"{proc.name} is not running:\n{proc.log_tail()}")
    started = time.monotonic()
    os.kill(proc.pid, signal.SIGUSR1)
    while not (state / f"done-{n}").exists():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no snapshot {n} from {proc.name} after {timeout_s:.0f}s")
        time.sleep(0.5)
    _say(f"snapshot {n} taken in {time.monotonic() - started:.1f}s")


def _diff(state: Path, top: int) -> None:
    """The allocation sites and object types that grew most between snapshot 1 (warm-up) and 2 (end)."""
    print(f"\n== {state.name}")
    first, second = state / "snapshot-1.tm", state / "snapshot-2.tm"
    if first.exists() and second.exists():
        ignore = [tracemalloc.Filter(False, "<frozen importlib._bootstrap*>"), tracemalloc.Filter(False, "<unknown>")]
        a = tracemalloc.Snapshot.load(str(first)).filter_traces(ignore)
        b = tracemalloc.Snapshot.load(str(second)).filter_traces(ignore)
        grouped = "traceback" if b.traces and len(b.traces[0].traceback) > 1 else "lineno"
        stats = b.compare_to(a, grouped)
        total_a = sum(s.size for s in a.statistics("filename"))
        total_b = sum(s.size for s in b.statistics("filename"))
        print(f"\ntraced Python memory: {total_a / 2**20:.1f} MiB at warm-up -> {total_b / 2**20:.1f} MiB at the end")
        print(f"top {top} growing allocation sites ({grouped}):")
        for stat in stats[:top]:
            where = stat.traceback.format()
            head = where[0].strip() if grouped == "lineno" else " <- ".join(s.strip() for s in where[::2][:6])
            print(f"  {stat.size_diff / 2**20:+8.2f} MiB {stat.count_diff:+9d} blocks, now {stat.size / 2**20:7.2f} MiB"
                  f"  {head}")  # fmt: skip
    types = [state / f"types-{n}.json" for n in (1, 2)]
    if all(t.exists() for t in types):
        before, after = (json.loads(t.read_text()) for t in types)
        grown = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in after), reverse=True)[:12]
        print("gc-tracked objects that grew most (type: warm-up -> end):")
        for diff, name in grown:
            print(f"  {name}: {before.get(name, 0)} -> {after[name]} ({diff:+d})")
    for n in (1, 2):
        meta = state / f"meta-{n}.json"
        if meta.exists():
            m = json.loads(meta.read_text())
            traced = (f", traced {m['traced_before'] / 2**20:.1f} -> {m['traced_after'] / 2**20:.1f} MiB"
                      if "traced_before" in m else "")  # fmt: skip
            print(f"dump {n}: RSS {m['rss_kib_before'] / 1024:.0f} MiB, a full collection freed {m['collected']} "
                  f"objects -> RSS {m['rss_kib_after'] / 1024:.0f} MiB{traced}; tracked by generation "
                  f"{m['tracked']}, frozen {m['frozen']}, counts {m['gc_count']}, "
                  f"collections {[g['collections'] for g in m['gc_stats']]}")  # fmt: skip
            if "rss_kib_after_trim" in m:
                print(f"dump {n}: after malloc_trim(0) RSS {m['rss_kib_after_trim'] / 1024:.0f} MiB")
            if m.get("glibc_arenas"):
                print(f"dump {n} glibc arenas (MiB): " + ", ".join(
                    f"{k} {v if k in ('arenas', 'mmapped_chunks') else round(v / 1024, 1)}"
                    for k, v in m["glibc_arenas"].items()))  # fmt: skip
            if m.get("smaps"):
                mapped = ", ".join(f"{k} {v / 1024:.1f}" for k, v in m["smaps"].items())
                print(f"dump {n} resident by mapping (MiB): {mapped}; threads {m.get('threads')}")
            if m.get("allocators"):
                print(f"dump {n} allocators (MiB): "
                      + ", ".join(f"{k} {v if k == 'pymalloc_arenas' else round(v / 1024, 1)}"
                                  for k, v in m["allocators"].items()))  # fmt: skip
    engine = [state / f"engine-{n}.json" for n in (1, 2)]
    if all(t.exists() for t in engine):
        before, after = (json.loads(t.read_text()) for t in engine)
        print("engine state (warm-up -> end): " + ", ".join(f"{k} {before.get(k)} -> {v}" for k, v in after.items()))


async def _cleanup(args: argparse.Namespace, run: str) -> None:
    """Drop the run's topics (``qfmem.<run>.…``), consumer group, indices and templates (``qfmem-<run>…``), checked
    gone (tests/shared_servers.py raises naming what is left)."""
    for prefix in (f"qfmem.{run}", f"qfmem-{run}"):
        await drop_run_async(args.kafka, args.es, prefix)


async def _index_lag(args: argparse.Namespace, topics: dict[str, str], run: str) -> int | None:
    """The index role's lag over both its topics (records after its group's commits; None when unknown)."""
    from services.grader.settings import GraderTopics

    kafka = KafkaSettings(bootstrap_servers=args.kafka)
    names = GraderTopics(events=topics["events"])
    return await _lag(kafka, [names.events, names.post_events_topic], f"qfmem-{run}-grader-index")


async def _outage(args: argparse.Namespace, proxy: FaultProxy, topics: dict[str, str], run: str, t0: float) -> None:
    """Elasticsearch down for the measured processes from ``t0 + AT`` for SECONDS; then the index role's backlog
    every 10 s until it is worked off (or the feed ends)."""
    at, seconds = args.es_outage
    await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))
    proxy.down()
    _say(f"Elasticsearch down for the measured process(es) at {time.monotonic() - t0:.0f}s for {seconds:.0f}s")
    await asyncio.sleep(seconds)
    proxy.up()
    back = time.monotonic()
    while True:
        lag = await _index_lag(args, topics, run)
        _say(f"index role lag {lag} records at {time.monotonic() - t0:.0f}s ({time.monotonic() - back:.0f}s after "
             f"Elasticsearch came back; {proxy.connections} connections through the proxy so far)")  # fmt: skip
        if lag is not None and lag < 1000:
            return
        await asyncio.sleep(10)


def main(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:8]
    state = Path(tempfile.mkdtemp(prefix=f"qfmem-{run}-"))
    proxy: FaultProxy | None = None
    if args.es_outage is not None:
        upstream = args.es.split("://", 1)[-1].rstrip("/")
        host, _, port = upstream.rpartition(":")
        proxy = FaultProxy(host, int(port))
        proxy.start()
    procs, topics, measured = _process(args, state, run, f"http://127.0.0.1:{proxy.port}" if proxy else None)
    posts = _enriched(args.rows) if args.target == "grader" else None
    rows = load_rows(Path(args.data) / "weibo_posts.jsonl", args.rows) if args.target == "collector" else None
    sampler = RssSampler(procs)
    loads = [_load()]
    dumps = args.tracemalloc > 0 or args.types
    try:
        for proc in procs.values():
            proc.start()
            _say(f"{proc.name} SERVING after {proc.wait_serving():.1f}s (pid {proc.pid}; state {state})")
        sampler.start()
        started = time.monotonic()
        stop = started + args.duration
        feeder: Feeder | None = None
        if rows is not None:
            proc = procs[args.target]
            feeder = Feeder(rows, address=f"127.0.0.1:{proc.port}", ca=proc.ca, state=state, run_tag=run,
                            rate=args.rate, streams=2, chunk=500)  # fmt: skip
            feeder.start()
        loop = asyncio.new_event_loop()
        producing = None
        if posts is not None:
            kafka = KafkaSettings(bootstrap_servers=args.kafka, client_id=f"qfmem-{run}-feed")
            replay = Replay(posts, run)
            producing = loop.create_task(
                produce_paced(
                    kafka, topics["posts"], args.rate, stop - time.monotonic(), lambda _, now: replay.next(now)
                )
            )

        async def until(t: float) -> None:
            await asyncio.sleep(max(0.0, t - time.monotonic()))

        outage = None
        if proxy is not None:
            outage = loop.create_task(_outage(args, proxy, topics, run, started))
        born = started
        if args.kill_at is not None:  # the soak's grader fault: kill -9, start again, restore and replay
            loop.run_until_complete(until(started + args.kill_at))
            grade = procs["grader"]
            grade.kill9()
            loop.run_until_complete(asyncio.sleep(2.0))
            grade.start()
            serving = loop.run_until_complete(asyncio.to_thread(grade.wait_serving))
            _say(f"grader killed -9 at {args.kill_at:.0f}s, SERVING again after {serving:.1f}s (pid {grade.pid})")
            born = grade.incarnations[-1].started
        loop.run_until_complete(until(born + args.warmup + 10))  # the middle of the baseline's 20 s
        loads.append(_load())
        warm_lag = None
        if args.target == "grader":  # a grader behind the stream at warm-up is still filling its horizon
            warm_lag = loop.run_until_complete(_lag(KafkaSettings(bootstrap_servers=args.kafka), topics["posts"],
                                                    f"qfmem-{run}-grader"))  # fmt: skip
        if dumps:  # in a thread: the feed goes on meanwhile
            for name in measured:
                loop.run_until_complete(asyncio.to_thread(_snapshot, procs[name], state, 1))
        loop.run_until_complete(until(stop))
        if outage is not None and not outage.done():
            _say("the index role's backlog was not worked off before the feed ended")
            outage.cancel()
        loads.append(_load())
        sent = loop.run_until_complete(producing)[0] if producing is not None else 0
        if feeder is not None:
            feeder.stop_feeding()
            feeder.finish(30)
            sent = feeder.stats.accepted
        if dumps:
            for name in measured:
                _snapshot(procs[name], state, 2)
        ended = time.monotonic()
        lag = None
        if args.target == "grader":
            lag = loop.run_until_complete(_lag(KafkaSettings(bootstrap_servers=args.kafka), topics["posts"],
                                               f"qfmem-{run}-grader"))  # fmt: skip
        sampler.stop()
        lives = {name: (procs[name].incarnations[-1].pid, procs[name].incarnations[-1].started, ended)
                 for name in measured}  # fmt: skip
        memories = memory_growth(sampler.samples, lives, args.warmup)
        kill = f", grader killed -9 at {args.kill_at:.0f}s" if args.kill_at is not None else ""
        if args.es_outage is not None:
            kill += f", Elasticsearch down at {args.es_outage[0]:.0f}s for {args.es_outage[1]:.0f}s"
        print(f"\n{args.target}: {sent} posts in {args.duration:.0f}s ({sent / args.duration:.0f}/s), "
              f"horizon {args.horizon}s, tracemalloc {args.tracemalloc or 'off'}{kill}")  # fmt: skip
        for memory in memories:
            series = rss_series(sampler.samples, memory.process, started)
            print(f"{memory.process} RSS MiB every 30 s of the feed: {series}")
            if memory.baseline_kib and memory.end_kib:
                growth = memory.growth or 0.0
                print(f"{memory.process} RSS {args.warmup:.0f}s after start {memory.baseline_kib / 1024:.0f} MiB -> "
                      f"end {memory.end_kib / 1024:.0f} MiB: {growth:+.1%} (target < +10%)")  # fmt: skip
        if lag is not None:
            print(f"grader lag: {warm_lag} posts at warm-up, {lag} at the end (committed offsets, up to a second old)")
        print(f"load average (1 min): start {loads[0]:.2f}, warm-up {loads[1]:.2f}, end {loads[2]:.2f} "
              f"({os.cpu_count()} CPUs)")  # fmt: skip
        for name in measured:
            _diff(state / name, args.top)
        loop.close()
        return 0
    finally:
        sampler.stop()
        for proc in reversed(procs.values()):
            proc.stop()
        if proxy is not None:
            proxy.stop()
        asyncio.run(_cleanup(args, run))
        if args.keep:
            _say(f"kept {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("grader", "collector"), default="grader")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of feeding (default 180)")
    parser.add_argument("--rate", type=float, default=2315.0, help="posts per second (default 2315)")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds before the baseline (default 60)")
    parser.add_argument("--horizon", type=float, default=120.0, help="the grader's QF_GRADER_HORIZON_S (default 120)")
    parser.add_argument("--rows", type=int, default=10_000, help="shared posts replayed (default 10000)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="FRAMES",
                        help="trace allocations with this many frames and print what grew (default off)")  # fmt: skip
    parser.add_argument("--types", action="store_true",
                        help="dump gc-tracked object counts (and the engine's sizes) at warm-up and end")  # fmt: skip
    parser.add_argument("--role", choices=("grade", "index", "both"), default="grade",
                        help="grader: its grade role, its index role (fed by a grade role), or both")  # fmt: skip
    parser.add_argument("--kill-at", type=float, default=None, metavar="S",
                        help="grader: kill -9 the grade role S s into the feed and start it again; measure that "
                             "incarnation from its restart (the soak's measure)")  # fmt: skip
    parser.add_argument("--es-outage", type=_outage_arg, default=None, metavar="AT,SECONDS",
                        help="grader: Elasticsearch unreachable for the measured process(es) from AT s into the "
                             "feed for SECONDS s (a loopback proxy, bench/_fault_proxy.py)")  # fmt: skip
    parser.add_argument("--trim-at-dump", action="store_true",
                        help="with --types/--tracemalloc: call malloc_trim(0) in each dump and print the RSS after "
                             "it (what glibc holds free; the warm-up dump's trim lowers the baseline's later samples, "
                             "so compare the RSS after the two trims, not the growth)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="an environment variable for the measured process(es), e.g. an allocator setting "
                             "(repeatable)")  # fmt: skip
    parser.add_argument("--top", type=int, default=25, help="allocation sites printed (default 25)")
    parser.add_argument("--data", default=str(Path(os.environ.get("QF_SHARED_DATA", ROOT.parent / "shared" / "data"))))
    parser.add_argument("--kafka", default=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--es", default=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"))
    parser.add_argument("--keep", action="store_true", help="keep the state directory (logs)")
    args = parser.parse_args(argv)
    if args.duration < args.warmup + 40 + (args.kill_at or 0.0):
        parser.error("--duration must exceed --kill-at + --warmup by at least 40 s (two 20 s medians)")
    if args.target != "grader" and (args.role != "grade" or args.kill_at is not None or args.es_outage):
        parser.error("--role, --kill-at and --es-outage are for --target grader")
    if args.es_outage is not None and args.es_outage[0] + args.es_outage[1] >= args.duration:
        parser.error("--es-outage must end before --duration")
    return args


def _outage_arg(text: str) -> tuple[float, float]:
    at, _, seconds = text.partition(",")
    try:
        pair = (float(at), float(seconds))
    except ValueError:
        raise argparse.ArgumentTypeError(f"AT,SECONDS expected, not {text!r}") from None
    if pair[0] < 0 or pair[1] <= 0:
        raise argparse.ArgumentTypeError(f"AT >= 0 and SECONDS > 0 expected, not {text!r}")
    return pair


if __name__ == "__main__":
    raise SystemExit(main(parse_args()))
