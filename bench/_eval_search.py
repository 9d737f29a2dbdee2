"""`--search-criteria` of bench/grading_eval.py: a per-criterion threshold search on the calibration events only.

The replay is run once with the policy as given, and after every post the value of every criterion on that post's
event is recorded (the grader's own `explain`). Escalation happens only on posts (a monotone policy: time alone
never raises a grade), so the highest level and the first orange/red alert of any threshold set can be recomputed
from these records exactly, without replaying. On them:

1. coordinate search: each yellow/orange volume or reach threshold in turn, over factors FACTORS, two passes; a
   change is kept when it raises the objective (Spearman + early orange share, as `calibrate`) by over MIN_GAIN;
2. pruning: the calibration events are split in two seeded halves, and a change is dropped unless removing it
   lowers the objective on both (a change that helps one half only is noise).

What it prints is a recommendation for the policy YAML (its author copies it, rounded, into the file); the
reported rows of grading_eval never see the events it was chosen on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from _eval_scores import TruthEvent, half_size_time, spearman
from _pipeline import majority

from services.grader.core import LEVEL_RANK, Grader, GraderConfig, Policy, PostView

__all__ = ["FACTORS", "Recorded", "record", "search"]

FACTORS = (0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0, 3.0, 5.0)
MIN_GAIN = 0.002
SEARCHED = ("yellow", "orange")
# Relevance and offline risk are the source documents' own notions (涉腐, 线下行动), not volumes to fit.
FIXED_METRICS = frozenset({"relevance", "offline_risk"})

Key = tuple[str, str]  # (level, "metric@window")


@dataclass(frozen=True)
class Recorded:
    """Each calibration event's majority event and, per post of it, (time, criterion values)."""

    majority_of: dict[str, str]
    series: dict[str, list[tuple[float, dict[Key, float]]]]


def record(
    views: Sequence[PostView],
    policy: Policy,
    config: GraderConfig,
    native_of: Mapping[str, str],
    truth_post: Mapping[str, str],
    events: Mapping[str, TruthEvent],
) -> Recorded:
    """Replay once, reading every criterion's value on each post's event after the post."""

    def values(grader: Grader, eid: str) -> dict[Key, float]:
        return {(r.level, f"{r.criterion}@{r.window}"): r.value for r, _ in grader.explain(eid).evaluations}

    return Recorded(*replay_series(views, policy, config, native_of, truth_post, events, values))


V = TypeVar("V")


def replay_series(
    views: Sequence[PostView],
    policy: Policy,
    config: GraderConfig,
    native_of: Mapping[str, str],
    truth_post: Mapping[str, str],
    events: Mapping[str, TruthEvent],
    read: Callable[[Grader, str], V],
) -> tuple[dict[str, str], dict[str, list[tuple[float, V]]]]:
    """Replay once; after each post, ``read`` its event. Returns each calibration event's majority event and, per
    majority event (merges followed to the end), the (time, read value) series."""
    grader = Grader(policy, config)
    posts = grader.clusterer.posts
    raw: list[tuple[str, float, V]] = []
    assigned: dict[str, str] = {}
    for v in views:
        grader.process(v)
        eid = posts.get(v.id)
        if eid is None:
            continue
        assigned[native_of[v.id]] = eid
        raw.append((eid, v.created_at.timestamp(), read(grader, eid)))
    final = {eid: grader.resolve(eid) or eid for eid in {e for e, _, _ in raw}}
    predicted = {p: final[e] for p, e in assigned.items()}
    truth = {p: e for p, e in truth_post.items() if e in events}
    majority_of, _ = majority(truth, predicted)
    wanted = set(majority_of.values())
    series: dict[str, list[tuple[float, V]]] = {}
    for eid, ts, value in raw:
        if final[eid] in wanted:
            series.setdefault(final[eid], []).append((ts, value))
    return majority_of, series


# (rank, needed, require, criteria): criteria as (key, threshold); every policy op here is >= (checked by caller).
_Rule = tuple[int, int, list[tuple[Key, float]], list[tuple[Key, float]]]


def _rules(policy: Policy, factors: Mapping[Key, float]) -> list[_Rule]:
    out: list[_Rule] = []
    for lv in policy.levels:

        def th(metric: str, window: str, threshold: float, level: str = lv.warning_level) -> tuple[Key, float]:
            key = (level, f"{metric}@{window}")
            return key, threshold * factors.get(key, 1.0)

        crit = [th(c.metric, c.window, c.threshold) for c in lv.criteria]
        req = [th(c.metric, c.window, c.threshold) for c in lv.require]
        needed = {"all": len(crit), "any": min(1, len(crit)), "at_least": lv.at_least}[lv.match]
        out.append((lv.rank, needed, req, crit))
    out.sort(key=lambda r: -r[0])
    return out


def _level(values: Mapping[Key, float], rules: list[_Rule]) -> int:
    for rank, needed, req, crit in rules:
        if all(values[k] >= t for k, t in req) and sum(values[k] >= t for k, t in crit) >= needed:
            return rank
    return 0


def levels_over_time(
    series: Mapping[str, list[tuple[float, V]]], rank: Callable[[V], int]
) -> tuple[dict[str, int], dict[str, float]]:
    """Per event of ``series``: the highest rank ``rank`` gives its values, and when it first reached orange or red."""
    orange = LEVEL_RANK["orange"]
    highest: dict[str, int] = {}
    first: dict[str, float] = {}
    for eid, rows in series.items():
        h = 0
        for ts, values in rows:
            r = rank(values)
            h = max(h, r)
            if r >= orange and eid not in first:
                first[eid] = ts
        highest[eid] = h
    return highest, first


def _objective(rec: Recorded, rules: list[_Rule], events: Mapping[str, TruthEvent], top_share: float) -> float:
    highest, first = levels_over_time(rec.series, lambda values: _level(values, rules))
    ids = sorted(events)
    rho = spearman([highest.get(rec.majority_of[e], 0) for e in ids], [events[e].size24 for e in ids])
    n_top = max(1, math.ceil(top_share * len(ids)))
    early = 0
    for e in sorted(ids, key=lambda e: (-events[e].size24, e))[:n_top]:
        ev, t = events[e], first.get(rec.majority_of[e])
        early += t is not None and ev.start <= t < ev.start + half_size_time(ev.curve, ev.size24)
    return (0.0 if math.isnan(rho) else rho) + early / n_top


def search(
    rec: Recorded, policy: Policy, events: Mapping[str, TruthEvent], top_share: float, seed: int = 0
) -> tuple[dict[Key, float], list[str]]:
    """The threshold factors kept (criterion -> factor) and a log of the search."""
    if any(c.op != ">=" for lv in policy.levels for c in (*lv.criteria, *lv.require)):
        raise ValueError("--search-criteria handles policies whose criteria are all '>=' lower bounds")
    keys = [
        (lv.warning_level, f"{c.metric}@{c.window}")
        for lv in policy.levels
        if lv.warning_level in SEARCHED
        for c in lv.criteria
        if c.metric not in FIXED_METRICS
    ]

    def obj(f: Mapping[Key, float], evs: Mapping[str, TruthEvent] = events) -> float:
        return _objective(rec, _rules(policy, f), evs, top_share)

    log = [f"as given: objective {obj({}):.4f}"]
    current: dict[Key, float] = {}
    best = obj(current)
    for _ in range(2):
        for key in keys:
            tried = [(round(obj({**current, key: x}), 4), -abs(math.log(x)), x) for x in FACTORS]
            score, _, x = max(tried)
            if score > best + MIN_GAIN:
                current[key], best = x, score
                log.append(f"set {key[0]} {key[1]} x{x:g} -> {score:.4f}")
    ids = sorted(events)
    random.Random(seed).shuffle(ids)
    halves = [{e: events[e] for e in ids[: len(ids) // 2]}, {e: events[e] for e in ids[len(ids) // 2 :]}]
    pruned = True
    while pruned:
        pruned = False
        for key in list(current):
            without = {k: v for k, v in current.items() if k != key}
            gains = [obj(current, h) - obj(without, h) for h in halves]
            if min(gains) <= 0:
                current = without
                pruned = True
                log.append(f"dropped {key[0]} {key[1]} (gain on the halves {gains[0]:+.4f} / {gains[1]:+.4f})")
                break
    log.append(f"kept: objective {obj(current):.4f}")
    return current, log
