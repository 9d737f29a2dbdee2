"""Scores of one replay for bench/grading_eval.py: B-cubed over all and over text-bearing posts, Spearman of the
highest level against the 24 h size, early orange/red alerts on the largest events, the rising flag."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from _pipeline import Replay, bcubed, first_alerts, highest_levels, majority, read_rows

from services.grader.core import LEVEL_RANK, LEVELS

__all__ = [
    "Scores",
    "TruthEvent",
    "average_ranks",
    "half_size_time",
    "score",
    "spearman",
    "truth_events",
]

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


def truth_events(
    events_path: Path, rows: Sequence[dict[str, Any]], offsets: dict[str, float] | None = None
) -> dict[str, TruthEvent]:
    """Ground-truth events that have posts in `rows`, with their cumulative curves; `offsets` (seconds per event,
    from a concurrent replay) shift each event's source time as its posts were shifted. `rows` are the replayed
    rows (already shifted)."""
    offsets = offsets or {}
    times: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        times[r["event_id"]].append(datetime.fromisoformat(r["created_at"]).timestamp())
    out: dict[str, TruthEvent] = {}
    for e in read_rows(events_path):
        eid = e["event_id"]
        if eid not in times:
            continue  # a subset (--limit or a small file): only the events it holds
        start = datetime.fromisoformat(e["source_created_at"]).timestamp() + offsets.get(eid, 0.0)
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
    """The evaluation of one replay by one clustering."""

    variant: str
    method: str
    predicted_events: int
    precision: float
    recall: float
    f1: float
    text_precision: float
    text_recall: float
    text_f1: float
    spearman: float
    spearman_weighted: float
    top_events: int
    early: int
    alerted_orange_red: int
    median_lead_h: float
    levels: dict[str, int]
    by_year: dict[str, tuple[int, float]]
    rising_flags: int
    rising_escalated: int
    grader_posts_per_s: float
    alerts: int


def rising_escalations(result: Replay, within_s: float) -> tuple[int, int]:
    """(rising flags raised, of which the event was alerted to a higher level within `within_s` after)."""
    ups: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for a in result.alerts:
        ups[result.final(a.event_id)].append((a.at.timestamp(), LEVEL_RANK[a.to_level]))
    hit = 0
    for eid, at, level in result.rising:
        rank = LEVEL_RANK[level]
        if any(at < t <= at + within_s and r > rank for t, r in ups.get(result.final(eid), ())):
            hit += 1
    return len(result.rising), hit


def score(
    variant: str,
    method: str,
    result: Replay,
    native_of: dict[str, str],
    truth_post: dict[str, str],
    events: dict[str, TruthEvent],
    top_share: float,
    text_posts: Collection[str],
    golden_s: float,
) -> Scores:
    """Scores of one replay over the posts of `events` (truth_post may hold more: only those events count)."""
    predicted = {native_of[pid]: eid for pid, eid in result.assigned.items()}
    truth = {p: e for p, e in truth_post.items() if e in events}
    p, r, f = bcubed(truth, predicted)
    text_truth = {p: e for p, e in truth.items() if p in text_posts}
    tp, tr, tf = bcubed(text_truth, predicted) if text_truth else (math.nan,) * 3
    highest = highest_levels(result)
    severe = first_alerts(result, "orange")
    majority_of, members = majority(truth, predicted)
    # Posts-weighted alternative (JSON only): the mean of the highest levels of the events its posts went to.
    weighted = {
        teid: sum(n * highest.get(pe, 0) for pe, n in counts.items()) / sum(counts.values())
        for teid, counts in members.items()
    }
    ids = sorted(events)
    level = [highest.get(majority_of[e], 0) for e in ids]
    size = [events[e].size24 for e in ids]
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
    flags, escalated = rising_escalations(result, golden_s)
    return Scores(
        variant=variant,
        method=method,
        predicted_events=len(set(result.assigned.values())),
        precision=p,
        recall=r,
        f1=f,
        text_precision=tp,
        text_recall=tr,
        text_f1=tf,
        spearman=spearman(level, size),
        spearman_weighted=spearman([weighted[e] for e in ids], size),
        top_events=n_top,
        early=early,
        alerted_orange_red=alerted,
        median_lead_h=leads[len(leads) // 2] if leads else math.nan,
        levels={name: levels.get(name, 0) for name in LEVELS},
        by_year=by_year,
        rising_flags=flags,
        rising_escalated=escalated,
        grader_posts_per_s=result.fed / result.seconds if result.seconds else math.nan,
        alerts=len(result.alerts),
    )
