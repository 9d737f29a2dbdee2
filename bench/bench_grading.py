"""Replay the Weibo development set through the grader core: throughput and clustering quality.

    .venv/bin/python bench/bench_grading.py [--data FILE] [--limit N] [--profile]

Reads `weibo_posts.jsonl` (default: $QF_SHARED_DATA or ../shared/data from the repo root), builds
PostViews directly from the JSON (keywords are crude character bigrams and the SimHash is computed
over them here, standing in for the collector's enrichment), and runs `Grader.process` on each post in
file order (event time). Prints posts/s of the whole grading path (clustering, metrics, grading, timed
re-grades, alerts and snapshots; PostView building excluded and shown apart), fed in batches as a
consumer would (best of three) and one post per call, and the B-cubed precision/recall/F1 of the
clustering against `event_id`: with the repost parents as given, with `parent_id` removed (text only),
and with `parent_id` removed plus the weak author/time signals (ClusteringConfig.for_lost_parents).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import pstats
import re
import sys
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _pipeline import bcubed  # noqa: E402  (bench/ is sys.path[0] when run as a script)

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402
from services.grader.core import (  # noqa: E402
    LEVEL_RANK,
    LEVELS,
    Alert,
    ClusteringConfig,
    EventSnapshot,
    Grader,
    GraderConfig,
    PostView,
)

_URL = re.compile(r"https?://\S+")
_NOISE = re.compile(r"\[[^\[\]]{1,8}\]|回复@[^:：\s]{1,30}[:：]|//@[^:：\s]{1,30}[:：]?|转发微博|轉發微博")
_MENTION = re.compile(r"@([^\s:：,，。!！?？@]{1,30})")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z0-9]{2,}")

# Spread each byte of a 64-bit hash into eight 16-bit lanes, so summing spreads counts the bits per position.
_SPREAD = [sum(1 << (16 * b) for b in range(8) if byte >> b & 1) for byte in range(256)]
_spread_cache: dict[str, int] = {}


def _spread(feature: str) -> int:
    s = _spread_cache.get(feature)
    if s is None:
        h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "big")
        s = 0
        for k in range(8):
            s |= _SPREAD[(h >> (8 * k)) & 255] << (128 * k)
        s = _spread_cache[feature] = s
    return s


def simhash(features: list[str]) -> int | None:
    """64-bit SimHash of a feature set (unweighted)."""
    if not features:
        return None
    total = 0
    for f in features:
        total += _spread(f)
    half = len(features) / 2
    out = 0
    for j in range(64):
        if (total >> (16 * j)) & 0xFFFF > half:
            out |= 1 << j
    return out


def keywords(text: str) -> list[str]:
    """Crude features: CJK character bigrams, ascii words and @mentions (stand-in for segmentation)."""
    text = _URL.sub(" ", text)
    mentions = ["@" + m for m in _MENTION.findall(_NOISE.sub(" ", text))]
    text = _MENTION.sub(" ", _NOISE.sub(" ", text)).lower()
    out: list[str] = []
    for run in _CJK_RUN.findall(text):
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    out.extend(_WORD.findall(text))
    out.extend(mentions)
    return list(dict.fromkeys(out))


def view(row: dict, with_parent: bool) -> PostView:
    kws = keywords(row["text"])
    return PostView(
        id=row["id"],
        created_at=datetime.fromisoformat(row["created_at"]),
        author_id=row["author"],
        author_followers=row["followers"],
        source_kind="weibo_api",
        platform="weibo.com",
        text=row["text"],
        keywords=tuple(kws),
        simhash=simhash(kws),
        parent_id=row["parent_id"] if with_parent else None,
        reposts=row["reposts"],
        comments=row["comments"],
        likes=row["likes"],
    )


def replay(views: list[PostView], config: GraderConfig, batch: int, profile: bool) -> tuple[float, Grader, dict]:
    """Run the views through a fresh grader; returns (seconds, grader, post -> final event id)."""
    grader = Grader(load_policy_file(DEFAULT_POLICY), config)
    assigned: dict[str, str] = {}
    merged: dict[str, str] = {}
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    t0 = time.perf_counter()
    for i in range(0, len(views), batch):
        chunk = views[i : i + batch]
        for out in grader.process_batch(chunk):
            if isinstance(out, EventSnapshot) and out.merged_into:
                merged[out.event_id] = out.merged_into
        if batch == 1 and chunk[0].id in grader.clusterer.posts:  # read before expiry; unattached: no event
            assigned[chunk[0].id] = grader.clusterer.posts[chunk[0].id]
    elapsed = time.perf_counter() - t0
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)

    def final(eid: str) -> str:
        while eid in merged:
            eid = merged[eid]
        return eid

    return elapsed, grader, {pid: final(eid) for pid, eid in assigned.items()}


def run(rows: list[dict], with_parent: bool, config: GraderConfig, batch: int, profile: bool, scan: bool) -> dict:
    t0 = time.perf_counter()
    views = [view(r, with_parent) for r in rows]
    build = time.perf_counter() - t0
    if not scan:
        # The rows and views are input, not grader state (a live grader holds no file of posts): keep them out
        # of the full collections the grader's allocations trigger (a few % of a replay; see grading_eval.py).
        gc.collect()
        gc.freeze()
    # Best of three: the machine may be shared, and the fastest run is the least disturbed one.
    batch_s = min(replay(views, config, batch, profile and k == 0)[0] for k in range(3))
    single_s, _grader, predicted = replay(views, config, 1, False)
    alerts: Counter[str] = Counter()
    levels: Counter[str] = Counter()
    truth = {r["id"]: r["event_id"] for r in rows}
    p, r, f = bcubed(truth, predicted)
    # Alerts and levels from a third, output-collecting run (kept out of the timings).
    g = Grader(load_policy_file(DEFAULT_POLICY), config)
    highest: dict[str, int] = {}
    for pv in views:
        for out in g.process(pv):
            if isinstance(out, Alert):
                alerts[out.to_level] += 1
                highest[out.event_id] = max(highest.get(out.event_id, 0), LEVEL_RANK[out.to_level])
    for rank in highest.values():
        levels[LEVELS[rank]] += 1
    return {
        "posts": len(views),
        "build_s": build,
        "batch_posts_per_s": len(views) / batch_s,
        "single_posts_per_s": len(views) / single_s,
        "events": len(set(predicted.values())),
        "alerts": sum(alerts.values()),
        "levels": levels,
        "precision": p,
        "recall": r,
        "f1": f,
    }


def main() -> None:
    default = Path(os.environ.get("QF_SHARED_DATA", ROOT.parent / "shared" / "data")) / "weibo_posts.jsonl"
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=500, help="posts per process_batch call (a consumer poll)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--gc-scan-input", action="store_true", help="leave the input in the collector's scans (as before)")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"no data at {args.data} (set QF_SHARED_DATA)")
    with args.data.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    if args.limit:
        rows = rows[: args.limit]
    base = GraderConfig()
    # for_lost_parents(): strong text links only (near duplicates, rare shared terms); the weak author/time guesses
    # are ClusteringConfig.with_weak_signals() and off by default.
    weak = replace(base, clustering=ClusteringConfig.for_lost_parents())
    cases = [
        ("with parent_id", True, base),
        ("parent_id removed, text only", False, base),
        ("parent_id removed, lost-parents config", False, weak),
    ]
    print(f"{len(rows)} posts from {args.data}; policy {DEFAULT_POLICY.name}; batch {args.batch}")
    head = f"{'replay':34} {'batch/s':>8} {'single/s':>8} {'events':>6} {'alerts':>6} {'P':>6} {'R':>6} {'F1':>6}"
    print(head)
    for name, with_parent, config in cases:
        res = run(rows, with_parent, config, args.batch, args.profile, args.gc_scan_input)
        print(
            f"{name:34} {res['batch_posts_per_s']:8.0f} {res['single_posts_per_s']:8.0f} {res['events']:6d} "
            f"{res['alerts']:6d} {res['precision']:6.3f} {res['recall']:6.3f} {res['f1']:6.3f}"
        )
        print(
            f"{'':34} highest level per event {dict(res['levels'])}; PostView build {res['build_s']:.1f}s (not timed)"
        )


if __name__ == "__main__":
    main()
