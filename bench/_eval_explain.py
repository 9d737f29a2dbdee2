"""`--explain-early` of bench/grading_eval.py: why the largest events missed an early orange/red alert.

For each of the top events whose first orange/red alert did not come before half its 24 h size, the replay is run
again and, after every post of its majority event, the grader's own `explain` is read: which orange criteria held
and when. Printed per missed event: the half-size time, the first time each orange criterion held (hours after the
source post), the most orange criteria that held at once before the half-size time (and which), and when yellow and
orange first came. Diagnostic only: nothing here feeds the scores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from _eval_scores import TruthEvent, half_size_time
from _pipeline import Replay, first_alerts, majority

from services.grader.core import LEVEL_RANK, Alert, Grader, GraderConfig, Policy, PostView

__all__ = ["EarlyMiss", "explain_early", "missed_top"]


@dataclass
class EarlyMiss:
    """What the orange criteria of one missed top event did up to its half-size time."""

    event_id: str
    predicted: str
    size24: int
    half_h: float
    first_held: dict[str, float] = field(default_factory=dict)  # criterion -> hours after the source post
    peak: dict[str, tuple[float, float]] = field(default_factory=dict)  # criterion -> (highest value, threshold)
    best: int = 0
    best_at_h: float = math.nan
    best_set: tuple[str, ...] = ()
    yellow_h: float = math.nan
    orange_h: float = math.nan
    posts_at_half: int = 0


def _label(criterion: str, window: str) -> str:
    return f"{criterion}@{window}"


def missed_top(
    result: Replay,
    native_of: dict[str, str],
    truth_post: dict[str, str],
    events: dict[str, TruthEvent],
    top_share: float,
) -> list[tuple[str, str]]:
    """(truth event, its majority predicted event) of the top events without an orange/red alert before half size."""
    predicted = {native_of[pid]: eid for pid, eid in result.assigned.items()}
    truth = {p: e for p, e in truth_post.items() if e in events}
    majority_of, _ = majority(truth, predicted)
    severe = first_alerts(result, "orange")
    ids = sorted(events)
    n_top = max(1, math.ceil(top_share * len(ids))) if ids else 0
    top = sorted(ids, key=lambda e: (-events[e].size24, e))[:n_top]
    out = []
    for e in top:
        ev = events[e]
        t_half = ev.start + half_size_time(ev.curve, ev.size24)
        times = [t for t in severe.get(majority_of[e], []) if t >= ev.start]
        if not times or min(times) >= t_half:
            out.append((e, majority_of[e]))
    return out


def explain_early(
    views: Sequence[PostView],
    policy: Policy,
    config: GraderConfig,
    first: Replay,
    missed: list[tuple[str, str]],
    events: dict[str, TruthEvent],
) -> list[EarlyMiss]:
    """Replay again, reading `explain` on the missed events' majority events after each of their posts."""
    by_final = {
        pred: EarlyMiss(e, pred, events[e].size24, half_size_time(events[e].curve, events[e].size24) / 3600)
        for e, pred in missed
    }
    grader = Grader(policy, config)
    posts = grader.clusterer.posts
    orange = LEVEL_RANK["orange"]
    for v in views:
        outs = grader.process(v)
        eid = posts.get(v.id)
        if eid is None:
            continue
        miss = by_final.get(first.final(eid))
        if miss is None:
            continue
        ev = events[miss.event_id]
        at_h = (v.created_at.timestamp() - ev.start) / 3600
        for out in outs:
            if isinstance(out, Alert) and first.final(out.event_id) == miss.predicted:
                if LEVEL_RANK[out.to_level] >= LEVEL_RANK["yellow"] and math.isnan(miss.yellow_h):
                    miss.yellow_h = at_h
                if LEVEL_RANK[out.to_level] >= orange and math.isnan(miss.orange_h):
                    miss.orange_h = at_h
        if at_h > miss.half_h:
            continue
        miss.posts_at_half += 1
        held = []
        for r, ok in grader.explain(eid).evaluations:
            if r.level != "orange":
                continue
            name = _label(r.criterion, r.window)
            if r.value > miss.peak.get(name, (-math.inf, 0.0))[0]:
                miss.peak[name] = (r.value, r.threshold)
            if ok:
                held.append(name)
        for name in held:
            miss.first_held.setdefault(name, at_h)
        if len(held) > miss.best:
            miss.best, miss.best_at_h, miss.best_set = len(held), at_h, tuple(held)
    return list(by_final.values())


def print_explain(misses: list[EarlyMiss], needed: int) -> None:
    print(f"missed early orange/red among the top events ({len(misses)}): orange needs {needed} criteria")
    for m in sorted(misses, key=lambda m: -m.size24):
        firsts = ", ".join(f"{k} {v:.2f}h" for k, v in sorted(m.first_held.items(), key=lambda kv: kv[1]))
        print(
            f"  {m.event_id} size24 {m.size24} half at {m.half_h:.2f}h (posts seen by then: {m.posts_at_half}); "
            f"yellow {m.yellow_h:.2f}h orange {m.orange_h:.2f}h; best {m.best} at {m.best_at_h:.2f}h "
            f"[{' '.join(m.best_set)}]"
        )
        print(f"    first held: {firsts or 'none'}")
        peaks = ", ".join(f"{k} {v:g}/{t:g}" for k, (v, t) in sorted(m.peak.items()))
        print(f"    highest before half size (value/threshold): {peaks}")
