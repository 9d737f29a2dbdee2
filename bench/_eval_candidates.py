"""`--candidates` and `--profile-top` of bench/grading_eval.py: candidate policies scored without a replay each.

The replay is run once (with a probe policy: the given one, with any extra windows the candidates read) and, after
every post, the metrics of that post's event (every window's record, as the grader's own `explain` reads them) are
kept. Escalation happens only on posts and every criterion here is a lower bound, so each candidate's highest level
and first orange/red time per event follow from these records exactly, without replaying: the same numbers the
grader's alerts give (the shipped policy's row is printed beside, to check that on the run).

Printed per candidate, on the scored events only (`--report`): Spearman of the highest level against the 24 h size,
early orange/red for the top events, the share of *all* scored events that ever reach orange (an orange flood is a
failure too), levels reached, and precision-like checks: of the events reaching orange, how many are in the top 10 % /
top 25 % by 24 h size and how many in the smaller half.

`--profile-top`: each top event of the scored part at 25 % and 50 % of its 24 h size: posts seen, the orange
metrics, and the level the policy gives then. Diagnostic only: nothing here feeds the scores of the table.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from _eval_scores import TruthEvent, half_size_time, spearman
from _eval_search import levels_over_time, replay_series

from services.grader.core import LEVEL_RANK, LEVELS, Grader, GraderConfig, Policy, PostView
from services.grader.core.model import WindowMetrics

__all__ = [
    "CandidateScore",
    "Recorded",
    "halves",
    "print_candidates",
    "print_profile",
    "probe_policy",
    "record",
    "score",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Recorded:
    """Each scored event's majority event and, per post of it, (time, window name -> metrics after the post)."""

    majority_of: dict[str, str]
    series: dict[str, list[tuple[float, dict[str, WindowMetrics]]]]


def probe_policy(base: Policy, candidates: Sequence[Policy]) -> Policy:
    """The base policy with every window any candidate declares (more windows change no other metric)."""
    windows = dict(base.windows)
    for c in candidates:
        windows.update(c.windows)
    return replace(base, windows=tuple(sorted(windows.items(), key=lambda w: w[1])))


def record(
    views: Sequence[PostView],
    policy: Policy,
    config: GraderConfig,
    native_of: Mapping[str, str],
    truth_post: Mapping[str, str],
    events: Mapping[str, TruthEvent],
) -> Recorded:
    """Replay once, keeping every window's record of each post's event after the post."""

    def windows(grader: Grader, eid: str) -> dict[str, WindowMetrics]:
        return {m.window: m for m in grader.explain(eid).metrics}

    return Recorded(*replay_series(views, policy, config, native_of, truth_post, events, windows))


def rank_at(policy: Policy, metrics: Mapping[str, WindowMetrics]) -> int:
    """The policy's raw level (canonical rank) on one set of window records, most severe level first."""
    for lv in sorted(policy.levels, key=lambda lv: -lv.rank):
        if not all(_OPS[c.op](getattr(metrics[c.window], c.metric), c.threshold) for c in lv.require):
            continue
        held = sum(_OPS[c.op](getattr(metrics[c.window], c.metric), c.threshold) for c in lv.criteria)
        needed = {"all": len(lv.criteria), "any": min(1, len(lv.criteria)), "at_least": lv.at_least}[lv.match]
        if held >= needed:
            return lv.rank
    return 0


@dataclass(frozen=True)
class CandidateScore:
    """One candidate policy on the scored events."""

    name: str
    spearman: float
    early: int
    top: int
    orange: int  # scored events whose highest level is orange or above
    events: int
    levels: dict[str, int]
    orange_in_top10: int
    orange_in_top25: int
    orange_small_half: int  # events reaching orange whose 24 h size is at or below the median


def score(
    name: str, rec: Recorded, policy: Policy, events: Mapping[str, TruthEvent], top_share: float
) -> CandidateScore:
    if any(c.op not in (">=", ">") for lv in policy.levels for c in (*lv.criteria, *lv.require)):
        raise ValueError(f"{name}: --candidates handles policies whose criteria are lower bounds (>= or >)")
    orange = LEVEL_RANK["orange"]
    highest, first = levels_over_time(rec.series, lambda metrics: rank_at(policy, metrics))
    ids = sorted(events)
    level = {e: highest.get(rec.majority_of[e], 0) for e in ids}
    rho = spearman([level[e] for e in ids], [events[e].size24 for e in ids])
    by_size = sorted(ids, key=lambda e: (-events[e].size24, e))
    n_top = max(1, math.ceil(top_share * len(ids)))
    top10, top25 = set(by_size[:n_top]), set(by_size[: max(1, math.ceil(0.25 * len(ids)))])
    median = sorted(events[e].size24 for e in ids)[len(ids) // 2]
    early = 0
    for e in by_size[:n_top]:
        ev, t = events[e], first.get(rec.majority_of[e])
        early += t is not None and ev.start <= t < ev.start + half_size_time(ev.curve, ev.size24)
    reached = [e for e in ids if level[e] >= orange]
    counts = {name: 0 for name in LEVELS}
    for e in ids:
        counts[LEVELS[level[e]]] += 1
    return CandidateScore(
        name=name,
        spearman=rho,
        early=early,
        top=n_top,
        orange=len(reached),
        events=len(ids),
        levels=counts,
        orange_in_top10=sum(e in top10 for e in reached),
        orange_in_top25=sum(e in top25 for e in reached),
        orange_small_half=sum(events[e].size24 <= median for e in reached),
    )


def halves(events: Mapping[str, TruthEvent], seed: int) -> list[dict[str, TruthEvent]]:
    """Two seeded random halves of the events: a change that helps on one half only is noise (with parents the
    concurrent replay's seed changes no event's metrics, so a second seed is no second sample)."""
    ids = sorted(events)
    random.Random(seed).shuffle(ids)
    cut = len(ids) // 2
    return [{e: events[e] for e in ids[:cut]}, {e: events[e] for e in ids[cut:]}]


def print_candidates(scores: Sequence[CandidateScore], by_half: Sequence[Sequence[CandidateScore]] = ()) -> None:
    """One row per candidate; with `by_half`, its Spearman and early count on each half as well."""
    halves_head = f" {'Spearman by half':>16} {'early by half':>13}" if by_half else ""
    head = (
        f"{'candidate':34} {'Spearman':>8} {'early':>11} {'orange':>12} {'in top10':>8} {'in top25':>8} "
        f"{'small half':>10}{halves_head}  levels"
    )
    print(head)
    print("-" * len(head))
    for i, s in enumerate(scores):
        early = f"{s.early}/{s.top} ({s.early / s.top:.0%})"
        orange = f"{s.orange}/{s.events} ({s.orange / s.events:.0%})"
        levels = " ".join(f"{k}={v}" for k, v in s.levels.items())
        parts = [h[i] for h in by_half]
        split = ""
        if parts:
            rho = " / ".join(f"{p.spearman:.3f}" for p in parts)
            early_h = " / ".join(f"{p.early}/{p.top}" for p in parts)
            split = f" {rho:>16} {early_h:>13}"
        print(
            f"{s.name:34} {s.spearman:8.3f} {early:>11} {orange:>12} {s.orange_in_top10:8d} {s.orange_in_top25:8d} "
            f"{s.orange_small_half:10d}{split}  {levels}"
        )


# The metrics shown per top event: (window, metric, short name).
_PROFILE = (
    ("total", "posts", "posts"),
    ("10m", "velocity", "vel10m"),
    ("1h", "distinct_authors", "auth1h"),
    ("24h", "top_author_reach", "reach"),
    ("24h", "comments", "comm"),
    ("24h", "reposts", "repo"),
    ("24h", "regional_scope", "scope"),
    ("1h", "acceleration", "acc1h"),
)


def _fraction_time(ev: TruthEvent, share: float) -> float:
    """Event time at which the event reached `share` of its 24 h size (as half_size_time, scaled)."""
    return ev.start + half_size_time(ev.curve, max(1, round(2 * share * ev.size24)))


def print_profile(rec: Recorded, policy: Policy, events: Mapping[str, TruthEvent], top_share: float) -> None:
    """Each top event at 25 % and 50 % of its 24 h size: the metrics of its majority event and the policy's level."""
    ids = sorted(events)
    n_top = max(1, math.ceil(top_share * len(ids)))
    top = sorted(ids, key=lambda e: (-events[e].size24, e))[:n_top]
    cols = " ".join(f"{short:>8}" for _, _, short in _PROFILE)
    print(f"top {n_top} events at 25 % / 50 % of their 24 h size (majority event; '-' = no post yet):")
    print(f"  {'event':12} {'size24':>6} {'@':>4} {'hours':>6} {cols} level")
    for e in top:
        ev = events[e]
        rows = rec.series.get(rec.majority_of[e], [])
        for share in (0.25, 0.5):
            t = _fraction_time(ev, share)
            seen = [m for ts, m in rows if ts < t]
            hours = (t - ev.start) / 3600
            if not seen:
                print(f"  {e:12} {ev.size24:6d} {share:4.0%} {hours:6.2f} " + " ".join(f"{'-':>8}" for _ in _PROFILE))
                continue
            m = seen[-1]
            values = " ".join(f"{getattr(m[w], metric):8.4g}" for w, metric, _ in _PROFILE)
            print(f"  {e:12} {ev.size24:6d} {share:4.0%} {hours:6.2f} {values} {LEVELS[rank_at(policy, m)]}")
