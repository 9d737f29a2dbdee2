"""Metrics + policy + now -> level with reasons; the cool-down state machine; the rising projection.

Levels here are canonical ranks (model.LEVEL_RANK): 0 is "none", below the policy's lowest level.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ._windows import OFFLINE_RISK_HALF, Window
from .model import LEVELS, Reason
from .policy import Criterion, Level, Policy

__all__ = [
    "SCALED_METRICS",
    "CompiledPolicy",
    "LevelState",
    "Measures",
    "compile_policy",
    "evaluate",
    "explain",
    "projected_rank",
    "rank_live",
    "rank_of",
    "reasons_for",
    "step",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
# Metrics that grow with volume: the rising projection scales these and leaves the others alone.
SCALED_METRICS: frozenset[str] = frozenset(
    {"posts", "reposts", "comments", "likes", "distinct_authors", "velocity", "offline_posts"}
)

# (metric, window, operator, threshold, scaled by projection, criterion, level) flat for the hot loop.
_Check = tuple[str, str, Callable[[float, float], bool], float, bool, Criterion, str]
# The criteria that fired for the winning level, with their values; None when no level held.
Fired = list[tuple[_Check, float]] | None
# How rank_live reads a metric off a live window (_windows.Window) without its property (a Python call through
# getattr per criterion, ~a dozen per evaluation, two evaluations per post): the same expressions as the properties.
_GETATTR, _LEN, _VELOCITY, _OFFLINE_RISK, _TOP, _SCOPE, _RELEVANCE = range(7)
_LEN_OF = {"distinct_authors": "by_author", "sources": "by_source", "platforms": "by_platform",
           "media_involved": "by_media"}  # fmt: skip
# (window, how, attribute, is ">=", operator, threshold, scaled, the _Check) for rank_live.
_LiveCheck = tuple[str, int, str, bool, Callable[[float, float], bool], float, bool, _Check]


def _live(check: _Check) -> _LiveCheck:
    metric, window, op, threshold, scaled = check[:5]
    if metric in _LEN_OF:
        how, attr = _LEN, _LEN_OF[metric]
    elif metric == "velocity":
        how, attr = _VELOCITY, metric
    elif metric == "offline_risk":
        how, attr = _OFFLINE_RISK, metric
    elif metric == "top_author_reach":
        how, attr = _TOP, metric
    elif metric == "regional_scope":
        how, attr = _SCOPE, metric
    elif metric == "relevance":
        how, attr = _RELEVANCE, metric
    else:  # a plain attribute, or a property read as such (acceleration)
        how, attr = _GETATTR, metric
    return (window, how, attr, op is operator.ge, op, threshold, scaled, check)


class Measures(Protocol):
    """What the policy reads from a window: a WindowMetrics record, or the live counters themselves."""

    @property
    def seconds(self) -> float: ...
    @property
    def posts(self) -> int: ...
    @property
    def velocity(self) -> float: ...
    @property
    def acceleration(self) -> float: ...


@dataclass(frozen=True, slots=True)
class _Rule:
    rank: int
    level: Level
    require: tuple[_Check, ...]
    criteria: tuple[_Check, ...]
    needed: int  # how many of `criteria` must hold
    live_require: tuple[_LiveCheck, ...] = ()  # the same checks, as rank_live reads them
    live_criteria: tuple[_LiveCheck, ...] = ()


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy prepared for fast evaluation: rules most severe first, operators resolved.

    `decaying` maps the ranks whose rule can stop holding as time passes with no new post to the
    sliding windows that rule reads. `monotone` says every criterion is a lower bound (>= or >) on a
    metric that only shrinks as windows slide, so time alone can only lower a grade, never raise it.
    """

    policy: Policy
    rules: tuple[_Rule, ...]
    top_rank: int
    decaying: Mapping[int, frozenset[str]]
    monotone: bool
    # rank -> reasons_for(rank, no fired criteria), filled as ranks are met (the values never change).
    fallback: dict[int, tuple[Reason, ...]] = field(default_factory=dict, compare=False)
    # rank -> its rule (asked after most posts: a dict rather than a scan of the rules).
    by_rank: dict[int, _Rule] = field(default_factory=dict, compare=False)

    # floor -> the windows whose volume metrics the rules above it read (what a projection scales), filled on use.
    scaled_above: dict[int, tuple[str, ...]] = field(default_factory=dict, compare=False)

    # start -> cp.rules[start:], sliced once (rank_live walks from the guard's start on every re-grade).
    rules_from: list[tuple[_Rule, ...]] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        for r in self.rules:
            self.by_rank.setdefault(r.rank, r)
        self.rules_from.extend(self.rules[i:] for i in range(len(self.rules) + 1))

    def scaled_windows(self, floor: int) -> tuple[str, ...]:
        """The windows whose scaled metrics the rules above `floor` read: the only factors a projection needs."""
        names = self.scaled_above.get(floor)
        if names is None:
            read = {c[1]: None for r in self.rules if r.rank > floor for c in (*r.require, *r.criteria) if c[4]}
            names = self.scaled_above[floor] = tuple(read)
        return names

    def rule(self, rank: int) -> _Rule | None:
        """The rule of the level with this canonical rank."""
        return self.by_rank.get(rank)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Resolve operators and order the levels for evaluate()."""

    def checks(criteria: tuple[Criterion, ...], level: str) -> tuple[_Check, ...]:
        return tuple(
            (c.metric, c.window, _OPS[c.op], c.threshold, c.metric in SCALED_METRICS, c, level) for c in criteria
        )

    rules = []
    for lv in policy.levels:
        needed = {"all": len(lv.criteria), "any": min(1, len(lv.criteria)), "at_least": lv.at_least}[lv.match]
        require, criteria = checks(lv.require, lv.warning_level), checks(lv.criteria, lv.warning_level)
        rules.append(
            _Rule(lv.rank, lv, require, criteria, needed, tuple(map(_live, require)), tuple(map(_live, criteria)))
        )
    rules.sort(key=lambda r: -r.rank)
    decaying: dict[int, frozenset[str]] = {}
    for lv in policy.levels:
        windows = frozenset(c.window for c in (*lv.require, *lv.criteria) if c.window != "total")
        # The lifetime velocity decays with the event's age, which no bucket move announces.
        if windows or any(c.metric == "velocity" for c in (*lv.require, *lv.criteria)):
            decaying[lv.rank] = windows
    # Acceleration rises again as the previous window empties, a window's mean relevance can rise as
    # weak posts leave it, and the lifetime velocity moves without any bucket leaving: bucket moves do
    # not bound these, so they make a policy non-monotone.
    monotone = all(
        c.op in (">=", ">")
        and c.metric != "acceleration"
        and not (c.metric == "velocity" and c.window == "total")
        and not (c.metric == "relevance" and c.window != "total")
        for lv in policy.levels
        for c in (*lv.require, *lv.criteria)
    )
    return CompiledPolicy(policy, tuple(rules), max((r.rank for r in rules), default=0), decaying, monotone)


def rank_of(
    cp: CompiledPolicy,
    metrics: Mapping[str, Measures],
    scale: Mapping[str, float] | None = None,
    floor: int = -1,
) -> tuple[int, Fired]:
    """The highest level whose rule holds (0 for none), with what fired: the hot path of grading.

    With `scale`, volume metrics of each window are multiplied by its factor first (projection).
    Only levels above `floor` are tried; (floor, None) comes back when none of them holds.
    """
    for rule in cp.rules:
        if rule.rank <= floor:
            return floor, None
        fired: list[tuple[_Check, float]] = []
        for check in rule.require:
            metric, window, op, threshold, scaled, _, _ = check  # one unpacking instead of four subscripts
            value = getattr(metrics[window], metric)
            if scaled and scale is not None:
                value *= scale.get(window, 1.0)
            if not op(value, threshold):
                break
            fired.append((check, value))
        else:
            needed = rule.needed
            # Give up on a rule as soon as it can no longer reach `needed` (its reasons are not wanted).
            spare = len(rule.criteria) - needed
            for check in rule.criteria:
                metric, window, op, threshold, scaled, _, _ = check
                value = getattr(metrics[window], metric)
                if scaled and scale is not None:
                    value *= scale.get(window, 1.0)
                if op(value, threshold):
                    fired.append((check, value))
                else:
                    spare -= 1
                    if spare < 0:
                        break
            else:
                return rule.rank, fired
    return max(floor, 0), None


def _read(w: Window, how: int) -> float:
    """The metrics rank_live reads off a live window's fields: Window's properties, the same formulas."""
    if how == _TOP:
        return w.top_total if w.top_valid else w.top_author_reach  # the property, only to recompute the list
    if how == _SCOPE:
        scope = w.scope
        return scope if scope >= 0 else w.regional_scope
    if how == _RELEVANCE:
        n = w.relevance_posts
        mean = w.relevance_sum / n if n else 0.0
        source = w.source_relevance
        return (source if source > mean else mean) / 1000.0
    weighted = w.offline_posts + w.planned_posts  # _OFFLINE_RISK
    return weighted / (weighted + OFFLINE_RISK_HALF)


def rank_live(
    cp: CompiledPolicy,
    windows: Mapping[str, Window],
    scale: Mapping[str, float] | None = None,
    floor: int = -1,
    start: int = 0,
    misses: list[tuple[_Check, float]] | None = None,
) -> tuple[int, Fired]:
    """rank_of on the live windows of an event (EventMetrics.live): the same result, read without the windows'
    properties (the engine's hot path: every post and every timed re-grade).

    `start`: the rules before cp.rules[start] are known to fail (see _guard), so the walk begins there. `misses`
    collects, for every rule that failed, the checks that made it fail with their values (what _guard bounds)."""
    for rule in cp.rules_from[start]:
        if rule.rank <= floor:
            return floor, None
        fired: list[tuple[_Check, float]] = []
        mark = len(misses) if misses is not None else 0
        for window, how, attr, ge, op, threshold, scaled, check in rule.live_require:
            w = windows[window]
            if how == _GETATTR:
                value: float = getattr(w, attr)
            elif how == _LEN:
                value = len(getattr(w, attr))
            elif how == _VELOCITY:
                value = w.posts / w.hours
            else:
                value = _read(w, how)
            if scaled and scale is not None:
                value *= scale.get(window, 1.0)
            if not (value >= threshold if ge else op(value, threshold)):
                if misses is not None:
                    misses.append((check, value))
                break
            fired.append((check, value))
        else:
            # Give up on a rule as soon as it can no longer reach `needed` (its reasons are not wanted).
            spare = len(rule.criteria) - rule.needed
            for window, how, attr, ge, op, threshold, scaled, check in rule.live_criteria:
                w = windows[window]  # the branches below are rank_of's getattr, without a property's call
                if how == _GETATTR:
                    value = getattr(w, attr)
                elif how == _LEN:
                    value = len(getattr(w, attr))
                elif how == _VELOCITY:
                    value = w.posts / w.hours
                else:
                    value = _read(w, how)
                if scaled and scale is not None:
                    value *= scale.get(window, 1.0)
                if value >= threshold if ge else op(value, threshold):
                    fired.append((check, value))
                else:
                    if misses is not None:
                        misses.append((check, value))
                    spare -= 1
                    if spare < 0:
                        break
            else:
                if misses is not None:
                    del misses[mark:]  # the checks this rule missed while it held are no witnesses
                return rule.rank, fired
    return max(floor, 0), None


def reasons_for(cp: CompiledPolicy, rank: int, fired: Fired) -> tuple[Reason, ...]:
    """The reasons of a rank_of() result: the criteria that fired, or why no level applies."""
    if fired:  # _reason inlined: built for every snapshot of an event at a level, i.e. per post
        out = []  # a loop rather than a comprehension, which is a function call of its own here (CPython 3.11)
        for check, value in fired:
            out.append(_new_reason(Reason, (check[0], float(value), check[3], check[5].op, check[6], check[1], "")))
        return tuple(out)
    # Without fired criteria the reasons depend on the rank alone: built once per rank (most events, one or two
    # posts, sit below the lowest level and are graded on every post).
    reasons = cp.fallback.get(rank)
    if reasons is None:
        reasons = cp.fallback[rank] = _fallback_reasons(cp, rank)
    return reasons


def _fallback_reasons(cp: CompiledPolicy, rank: int) -> tuple[Reason, ...]:
    lv = next((r.level for r in cp.rules if r.rank == rank), None)
    if lv is not None:
        return (Reason("baseline", 0.0, 0.0, "", lv.warning_level, note=f"{lv.label}: 无条件"),)
    lowest = cp.rules[-1].level if cp.rules else None
    note = f"未达到最低级别「{lowest.label}」的条件" if lowest else "政策未定义级别"
    return (Reason("below_lowest_level", 0.0, 0.0, "", "none", note=note),)


def evaluate(cp: CompiledPolicy, metrics: Mapping[str, Measures]) -> tuple[int, tuple[Reason, ...]]:
    """The highest level whose rule holds (0 for none), with the reasons for it."""
    rank, fired = rank_of(cp, metrics)
    return rank, reasons_for(cp, rank, fired)


def _reason(check: _Check, value: float) -> Reason:
    c = check[5]
    return Reason(c.metric, float(value), c.threshold, c.op, check[6], c.window)


_new_reason = tuple.__new__  # Reason(...) without its generated __new__ (all seven fields given, note "")


def explain(cp: CompiledPolicy, metrics: Mapping[str, Measures]) -> tuple[tuple[Reason, bool], ...]:
    """Every criterion of every level (least severe first), with whether it holds now."""
    out: list[tuple[Reason, bool]] = []
    for rule in reversed(cp.rules):
        for check in (*rule.require, *rule.criteria):
            value = getattr(metrics[check[1]], check[0])
            out.append((_reason(check, value), check[2](value, check[3])))
    return tuple(out)


def projected_rank(
    cp: CompiledPolicy, metrics: Mapping[str, Measures], floor: int = -1, live: bool = False
) -> int | None:
    """The level the event would reach if its current growth held over the rising horizon.

    From the rising window's velocity v (posts/h) and acceleration a (posts/h²), over H hours: windows
    no longer than H are expected to hold max(0, v + aH) x length posts; longer ones (and "total") gain
    vH + aH²/2 posts. Volume metrics scale by the same factor as posts; others stay as they are. Only
    a growing event (a > 0, at least `min_posts` in the window) is projected; otherwise None. Levels
    at or below `floor` are not tried. `live`: `metrics` are an event's live windows (read by rank_live).
    """
    rule = cp.policy.rising
    base = metrics[rule.window]
    if live:  # Window.acceleration and .velocity without their calls (the same formulas), on every regrade
        w: Window = base  # type: ignore[assignment]
        if w.seconds == math.inf:
            a = 0.0
        else:
            h = w.hours
            a = (w.posts - w.prev_posts) / h / h
    else:
        a = base.acceleration
    if a <= 0 or base.posts < rule.min_posts:
        return None
    hours = rule.horizon_seconds / 3600.0
    v = base.posts / base.hours if live else base.velocity  # type: ignore[attr-defined]
    # max(0.0, x) and max(1.0, x) written out (the bound wins ties, as with max()): this runs on every post of a
    # growing event.
    rate = v + a * hours
    rate = rate if rate > 0.0 else 0.0
    gained = v * hours + 0.5 * a * hours * hours
    gained = gained if gained > 0.0 else 0.0
    horizon = rule.horizon_seconds
    scale: dict[str, float] = {}
    for name in cp.scaled_windows(floor):  # the other windows' factors would never be read
        m = metrics[name]
        posts = m.posts
        if posts:
            seconds = m.seconds
            factor = (rate * seconds / 3600.0 if seconds <= horizon else posts + gained) / posts
            scale[name] = factor if factor > 1.0 else 1.0
    if live:
        return rank_live(cp, metrics, scale, floor)[0]  # type: ignore[arg-type]  # Windows, as the caller says
    return rank_of(cp, metrics, scale, floor)[0]


@dataclass(frozen=True, slots=True)
class LevelState:
    """The policy-driven level of an event and its pending de-escalation.

    `below_since` is when the policy first said "lower" without interruption; `pending` is the highest
    lower level seen since, which the event drops to once the cool-down has passed.
    """

    rank: int = 0
    below_since: float | None = None
    pending: int = 0

    @property
    def level(self) -> str:
        return LEVELS[self.rank]


def settled(rank: int) -> LevelState:
    """LevelState(rank) with no pending drop: one shared instance per rank (it is frozen), since every event holds
    one and most never leave it (fewer objects for the garbage collector to walk)."""
    state = _SETTLED.get(rank)
    if state is None:
        state = _SETTLED[rank] = LevelState(rank)
    return state


_SETTLED: dict[int, LevelState] = {}


def step(state: LevelState, raw: int, now: float, cooldown: float) -> LevelState:
    """Escalate at once; de-escalate only after `cooldown` seconds of the policy saying lower."""
    if raw >= state.rank:
        if raw == state.rank and state.below_since is None:
            return state
        return settled(raw)
    if state.below_since is None:
        return settled(raw) if cooldown <= 0 else LevelState(state.rank, now, raw)
    pending = max(state.pending, raw)
    if now < state.below_since + cooldown:  # the same sum the engine schedules the end of the cool-down at
        return state if pending == state.pending else LevelState(state.rank, state.below_since, pending)
    # Cool-down over: settle at the highest level that held meanwhile; keep cooling if lower still.
    return settled(pending) if raw == pending else LevelState(pending, now, raw)
