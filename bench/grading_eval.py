"""Evaluate event detection and grading on a file in the format of shared/data/weibo_posts.jsonl.

    .venv/bin/python bench/grading_eval.py --data ../shared/data/weibo_posts.jsonl [--json OUT] [--policy FILE]

`weibo_events.jsonl` beside the data file is the ground truth (one row per event). The posts go through the real
pipeline in process and in event time (bench/_pipeline.py): JSONL parser -> collector enrichment and dedupe ->
Post -> grader conversion -> grader core. `event_id` and `label` are removed before parsing. Four replays:

    {parents kept, parent_id removed} x {reposts/comments/likes as given, zeroed}

"parent_id removed" also clears root_id and runs the clustering with `ClusteringConfig.for_lost_parents()` (the weak
author/time signals meant for a stream whose parent links are lost); "parents kept" uses the default config.

Columns of the table:

- **B-cubed P/R/F1**: the predicted events (after merges) against `event_id`, over every post.
- **Spearman**: rank correlation (average ranks for ties) over all ground-truth events between the event's level
  and its size at 24 h (`posts_within_hours_in_original_dataset["24"]`). An event's level is the highest level
  ever alerted for its *majority event*: the predicted event that holds most of its posts (ties: the one holding
  its earliest post), counting alerts of events later merged into it; "none" (0) when never alerted. So a bad
  clustering that lumps events together is penalised here too: they all inherit the lump's level.
- **early**: among the largest events (top `--top-share`, 10% by default, by 24 h size), the share whose first
  orange or red alert (on the majority event, at or after the event's first post) came before the event reached
  half its 24 h size. The time of half size is interpolated linearly on the event's cumulative post curve, made of
  its own included posts (exact times, counts 1..n) and the ground truth's cumulative counts at 1, 6 and 24 h
  (counts made non-decreasing); the source post is count 1 at time 0.
- **posts/s**: the grader core alone (clustering, windows, policy, alerts), one post per call.

Below the table: levels reached, Spearman per year of the source post (the data's label/time confound), and
throughput of every stage.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _pipeline import (
    VARIANTS,
    Replay,
    Variant,
    bcubed,
    collect,
    converter,
    default_data_dir,
    first_alerts,
    grader_config,
    highest_levels,
    majority,
    read_rows,
    replay,
    to_views,
    variant_posts,
)

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
from services.grader.core import LEVELS

_HOURS = (1, 6, 24)


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rho with average ranks for ties (Pearson correlation of the ranks); nan when undefined."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of the same length")
    if len(xs) < 2:
        return math.nan
    rx, ry = average_ranks(xs), average_ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


@dataclass(frozen=True)
class TruthEvent:
    """One ground-truth event: its start, size at 24 h and the cumulative curve for the half-size time."""

    event_id: str
    start: float
    year: str
    size24: int
    curve: tuple[tuple[float, int], ...]  # (seconds after the source post, cumulative posts)


def half_size_time(curve: Sequence[tuple[float, int]], size24: int) -> float:
    """Seconds after the source post at which the event reached half its 24 h size (linear interpolation)."""
    half = size24 / 2.0
    prev_t, prev_n = 0.0, 1
    if prev_n >= half:
        return 0.0
    for t, n in curve:
        if n >= half:
            if n == prev_n:
                return t
            return prev_t + (t - prev_t) * (half - prev_n) / (n - prev_n)
        prev_t, prev_n = t, n
    return curve[-1][0] if curve else 0.0


def truth_events(events_path: Path, rows: Sequence[dict[str, Any]]) -> dict[str, TruthEvent]:
    """Ground-truth events that have posts in `rows`, with their cumulative curves."""
    times: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        times[r["event_id"]].append(datetime.fromisoformat(r["created_at"]).timestamp())
    out: dict[str, TruthEvent] = {}
    for e in read_rows(events_path):
        eid = e["event_id"]
        if eid not in times:
            continue  # a subset (--limit or a small file): only the events it holds
        start = datetime.fromisoformat(e["source_created_at"]).timestamp()
        within = e["posts_within_hours_in_original_dataset"]
        points = [(t - start, k) for k, t in enumerate(sorted(times[eid]), start=1)]
        points += [(h * 3600.0, int(within[str(h)])) for h in _HOURS if str(h) in within]
        points.sort()
        curve: list[tuple[float, int]] = []
        high = 0
        for t, n in points:
            high = max(high, n)
            curve.append((max(t, 0.0), high))
        size24 = int(within.get("24", high))
        out[eid] = TruthEvent(eid, start, e["source_created_at"][:4], size24, tuple(curve))
    return out


@dataclass
class Scores:
    """The evaluation of one replay."""

    variant: str
    predicted_events: int
    precision: float
    recall: float
    f1: float
    spearman: float
    spearman_weighted: float
    top_events: int
    early: int
    alerted_orange_red: int
    median_lead_h: float
    levels: dict[str, int]
    by_year: dict[str, tuple[int, float]]
    grader_posts_per_s: float
    alerts: int


def score(
    variant: Variant,
    result: Replay,
    native_of: dict[str, str],
    truth_post: dict[str, str],
    events: dict[str, TruthEvent],
    top_share: float,
) -> Scores:
    predicted = {native_of[pid]: eid for pid, eid in result.assigned.items()}
    p, r, f = bcubed(truth_post, predicted)
    highest = highest_levels(result)
    severe = first_alerts(result, "orange")
    majority_of, members = majority(truth_post, predicted)
    # Posts-weighted alternative (JSON only): the mean of the highest levels of the events its posts went to.
    weighted = {
        teid: sum(n * highest.get(pe, 0) for pe, n in counts.items()) / sum(counts.values())
        for teid, counts in members.items()
    }
    ids = sorted(events)
    level = [highest.get(majority_of[e], 0) for e in ids]
    size = [events[e].size24 for e in ids]
    rho = spearman(level, size)
    rho_w = spearman([weighted[e] for e in ids], size)
    by_year: dict[str, tuple[int, float]] = {}
    for year in sorted({events[e].year for e in ids}):
        sel = [i for i, e in enumerate(ids) if events[e].year == year]
        by_year[year] = (len(sel), spearman([level[i] for i in sel], [size[i] for i in sel]))
    # The largest events: was the first orange/red alert before half the 24 h size?
    n_top = max(1, math.ceil(top_share * len(ids))) if ids else 0
    top = sorted(ids, key=lambda e: (-events[e].size24, e))[:n_top]
    early = alerted = 0
    leads: list[float] = []
    for e in top:
        ev = events[e]
        times = [t for t in severe.get(majority_of[e], []) if t >= ev.start]
        if not times:
            continue
        alerted += 1
        t_half = ev.start + half_size_time(ev.curve, ev.size24)
        if min(times) < t_half:
            early += 1
            leads.append((t_half - min(times)) / 3600.0)
    leads.sort()
    levels = Counter(LEVELS[x] for x in level)
    return Scores(
        variant=variant.name,
        predicted_events=len(set(result.assigned.values())),
        precision=p,
        recall=r,
        f1=f,
        spearman=rho,
        spearman_weighted=rho_w,
        top_events=n_top,
        early=early,
        alerted_orange_red=alerted,
        median_lead_h=leads[len(leads) // 2] if leads else math.nan,
        levels={name: levels.get(name, 0) for name in LEVELS},
        by_year=by_year,
        grader_posts_per_s=len(result.assigned) / result.seconds if result.seconds else math.nan,
        alerts=len(result.alerts),
    )


def _fmt(x: float, spec: str = ".3f") -> str:
    return "n/a" if isinstance(x, float) and math.isnan(x) else format(x, spec)


def print_table(scores: list[Scores], top_share: float) -> None:
    early_head = f"top {top_share:.0%} early"
    head = (
        f"{'replay':42} {'events':>6} {'B3 P':>6} {'B3 R':>6} {'B3 F1':>6} {'Spearman':>8} "
        f"{early_head:>16} {'lead h':>6} {'grader/s':>8}"
    )
    print(head)
    print("-" * len(head))
    for s in scores:
        early = f"{s.early}/{s.top_events} ({s.early / s.top_events:.0%})" if s.top_events else "n/a"
        print(
            f"{s.variant:42} {s.predicted_events:6d} {s.precision:6.3f} {s.recall:6.3f} {s.f1:6.3f} "
            f"{_fmt(s.spearman):>8} {early:>16} {_fmt(s.median_lead_h, '.1f'):>6} {s.grader_posts_per_s:8.0f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=default_data_dir() / "weibo_posts.jsonl", help="posts JSONL file")
    ap.add_argument("--events", type=Path, default=None, help="ground truth (default: weibo_events.jsonl beside it)")
    ap.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="grading policy YAML")
    ap.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--limit", type=int, default=0, help="only the first N posts")
    ap.add_argument("--top-share", type=float, default=0.10, help="share of largest events for the early column")
    ap.add_argument("--only", choices=("all", "parents"), default="all", help="'parents': the two parent rows only")
    args = ap.parse_args(argv)
    if not args.data.is_file():
        print(f"no data file {args.data} (set QF_SHARED_DATA or pass --data)", file=sys.stderr)
        return 2
    events_path = args.events or args.data.parent / "weibo_events.jsonl"
    if not events_path.is_file():
        print(f"no ground truth {events_path} beside the data (pass --events)", file=sys.stderr)
        return 2
    policy = load_policy_file(args.policy)
    rows = read_rows(args.data, args.limit)
    truth_post = {r["id"]: r["event_id"] for r in rows}
    events = truth_events(events_path, rows)
    convert, convert_from = converter()

    collected = collect(rows)
    native_of = {p.id: p.native_id for p in collected.posts}
    print(
        f"{len(rows)} posts, {len(events)} events from {args.data}; policy {policy.version} ({args.policy.name}); "
        f"conversion: {convert_from}"
    )
    print(
        f"collector: {len(collected.posts)} posts out ({collected.duplicates} marked duplicates, "
        f"{collected.rejected} rejected)"
    )
    print("parent_id removed rows use ClusteringConfig.for_lost_parents(); parents kept rows the default config")
    print()
    variants = VARIANTS if args.only == "all" else tuple(v for v in VARIANTS if v.parents)
    scores: list[Scores] = []
    convert_s = 0.0
    for variant in variants:
        t0 = time.perf_counter()
        views = to_views(variant_posts(collected.posts, variant), convert)
        convert_s = convert_s or time.perf_counter() - t0  # the first row's, like the grader's below
        result = replay(views, policy, grader_config(variant.parents))
        scores.append(score(variant, result, native_of, truth_post, events, args.top_share))
    print_table(scores, args.top_share)
    print()
    print("levels reached (ground-truth events, via their majority event):")
    for s in scores:
        print(f"  {s.variant:42} " + " ".join(f"{k}={v}" for k, v in s.levels.items()))
    print("Spearman per year of the source post (events):")
    for s in scores:
        print(f"  {s.variant:42} " + " ".join(f"{y}:{_fmt(rho, '.2f')}({n})" for y, (n, rho) in s.by_year.items()))
    print(
        "orange/red alerted among the top events: "
        + "; ".join(f"{s.variant}: {s.alerted_orange_red}/{s.top_events}" for s in scores)
    )
    n = len(rows)
    grader_s = n / scores[0].grader_posts_per_s if scores and scores[0].grader_posts_per_s else math.nan
    total = collected.parse_s + collected.enrich_s + convert_s + grader_s
    print(
        f"throughput (first row, one process): parse {n / collected.parse_s:,.0f} posts/s, "
        f"collector enrich+dedupe {n / collected.enrich_s:,.0f} posts/s, "
        f"convert {n / convert_s:,.0f} posts/s, grader {n / grader_s:,.0f} posts/s; "
        f"whole pipeline {n / total:,.0f} posts/s"
    )
    if args.json:
        out = {
            "data": str(args.data),
            "posts": n,
            "events": len(events),
            "policy": policy.version,
            "conversion": convert_from,
            "top_share": args.top_share,
            "rows": [s.__dict__ for s in scores],
            "throughput_posts_per_s": {
                "parse": n / collected.parse_s,
                "collector": n / collected.enrich_s,
                "convert": n / convert_s,
                "grader": n / grader_s,
                "pipeline": n / total,
            },
        }
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2, allow_nan=True) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
