"""Metrics + policy -> level with reasons: the policy compiled for fast evaluation, and its walk over an event's
windows (records, or the live counters themselves).

Levels here are canonical ranks (model.LEVEL_RANK): 0 is "none", below the policy's lowest level. The cool-down
state machine is _cooldown.py, the rising projection _projection.py.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from qingfeng.memo import Memo

from ._rule_code import RuleCode, compile_rule
from ._windows import Window
from .model import Reason
from .policy import Criterion, Level, Policy

__all__ = [
    "SCALED_METRICS",
    "CompiledPolicy",
    "Measures",
    "compile_policy",
    "evaluate",
    "explain",
    "rank_live",
    "rank_of",
    "reasons_for",
]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
# Floors a compiled policy remembers its projection's windows and gate for at once (ranks -1 … 4: plenty).
_FLOORS = 64
# Metrics that grow with volume: the rising projection scales these and leaves the others alone.
SCALED_METRICS: frozenset[str] = frozenset(
    {"posts", "reposts", "comments", "likes", "distinct_authors", "velocity", "offline_posts"}
)

# A fired check's Reason at a value, made once per check and value (in the check, `_Reasons`): the values recur (most
# posts leave most of an event's counts as they were: 92 % of the reasons of a replay with parents were made before),
# and a Reason is built through tuple.__new__, a C call with three temporary tuples. Emptied whole when full (Memo).
_REASONS_PER_CHECK = 512


class _Reasons(Memo[float, "Reason"]):
    """value -> a check's Reason at that value (see above). A cache inside the check tuple: it never makes two checks
    differ (any two compare equal and hash alike, whatever they hold)."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reasons)

    def __ne__(self, other: object) -> bool:
        return not isinstance(other, _Reasons)

    def __hash__(self) -> int:  # type: ignore[override]  # (a dict's is None)
        return 0


# (metric, window, operator, threshold, scaled by projection, criterion, level, reasons) flat for the hot loop.
_Check = tuple[str, str, Callable[[float, float], bool], float, bool, Criterion, str, _Reasons]
# The criteria that fired for the winning level, with their values; None when no level held.
Fired = list[tuple[_Check, float]] | None


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
    # The rule as rank_live runs it on live windows, by 2 * (scaled) + (misses collected); see _rule_code.
    code: tuple[RuleCode, ...] = field(default=(), compare=False)


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

    # floor -> scaled_windows(floor) and projection_gate(floor), computed on first use (Memo: a plain lookup after
    # that, no call; read on every projection).
    scaled_above: Memo[int, tuple[str, ...]] = field(init=False, compare=False, repr=False)
    gates: Memo[int, tuple[tuple[RuleCode, ...], int] | None] = field(init=False, compare=False, repr=False)

    # start -> cp.rules[start:], sliced once (rank_live walks from the guard's start on every re-grade).
    rules_from: list[tuple[_Rule, ...]] = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        for r in self.rules:
            self.by_rank.setdefault(r.rank, r)
        self.rules_from.extend(self.rules[i:] for i in range(len(self.rules) + 1))
        object.__setattr__(self, "scaled_above", Memo(self._scaled_windows, _FLOORS))  # (a frozen dataclass)
        object.__setattr__(self, "gates", Memo(self._projection_gate, _FLOORS))

    def scaled_windows(self, floor: int) -> tuple[str, ...]:
        """The windows whose scaled metrics the rules above `floor` read: the only factors a projection needs."""
        return self.scaled_above[floor]

    def _scaled_windows(self, floor: int) -> tuple[str, ...]:
        read = {c[1]: None for r in self.rules if r.rank > floor for c in (*r.require, *r.criteria) if c[4]}
        return tuple(read)

    def projection_gate(self, floor: int) -> tuple[tuple[RuleCode, ...], int] | None:
        """When every rule above `floor` has `require` checks on metrics no projection scales (red's offline risk):
        those checks as code, one function per rule (None back when they fail), and the rank a projection gives when
        all fail (what rank_live returns after failing every rule above). A scale cannot make such a check hold, so
        the projection need not be computed. None when some rule above has no such check."""
        return self.gates[floor]

    def _projection_gate(self, floor: int) -> tuple[tuple[RuleCode, ...], int] | None:
        above = [r for r in self.rules if r.rank > floor]
        fixed = [tuple(c for c in r.require if not c[4]) for r in above]
        if above and all(fixed):
            result = floor if any(r.rank <= floor for r in self.rules) else max(floor, 0)
            return (tuple(compile_rule(checks, (), 0)[0] for checks in fixed), result)
        return None

    def rule(self, rank: int) -> _Rule | None:
        """The rule of the level with this canonical rank."""
        return self.by_rank.get(rank)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """Resolve operators and order the levels for evaluate()."""

    def checks(criteria: tuple[Criterion, ...], level: str) -> tuple[_Check, ...]:
        return tuple(
            (c.metric, c.window, _OPS[c.op], c.threshold, c.metric in SCALED_METRICS, c, level, _reasons(c, level))
            for c in criteria
        )

    rules = []
    for lv in policy.levels:
        needed = {"all": len(lv.criteria), "any": min(1, len(lv.criteria)), "at_least": lv.at_least}[lv.match]
        require, criteria = checks(lv.require, lv.warning_level), checks(lv.criteria, lv.warning_level)
        rules.append(_Rule(lv.rank, lv, require, criteria, needed, compile_rule(require, criteria, needed)))
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
            metric, window, op, threshold, scaled, _, _, _ = check  # one unpacking instead of four subscripts
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
                metric, window, op, threshold, scaled, _, _, _ = check
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


def rank_live(
    cp: CompiledPolicy,
    windows: Mapping[str, Window],
    scale: Mapping[str, float] | None = None,
    floor: int = -1,
    start: int = 0,
    misses: list[tuple[_Check, float]] | None = None,
) -> tuple[int, Fired]:
    """rank_of on the live windows of an event (EventMetrics.live): the same result, each rule run as the code
    written for it (_rule_code), which reads the windows' fields without their properties (the engine's hot path:
    every post and every timed re-grade).

    `start`: the rules before cp.rules[start] are known to fail (see _guard), so the walk begins there. `misses`
    collects, for every rule that failed, the checks that made it fail with their values (what _guard bounds)."""
    variant = (2 if scale is not None else 0) + (1 if misses is not None else 0)
    for rule in cp.rules_from[start]:
        if rule.rank <= floor:
            return floor, None
        fired = rule.code[variant](windows, scale, misses)
        if fired is not None:
            return rule.rank, fired
    return max(floor, 0), None


def reasons_for(cp: CompiledPolicy, rank: int, fired: Fired) -> tuple[Reason, ...]:
    """The reasons of a rank_of() result: the criteria that fired, or why no level applies."""
    if fired:  # _reason inlined: built for every snapshot of an event at a level, i.e. per post
        out = []  # a loop rather than a comprehension, which is a function call of its own here (CPython 3.11)
        for check, value in fired:
            # The check's memo; a zero made anew (0 and -0.0 are one key, with two reprs).
            out.append(check[7][value] if value else _reason_at(check[5], check[6], value))
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


def _reason_at(c: Criterion, level: str, value: float) -> Reason:
    """The Reason of a fired criterion `c` of `level` at `value` (what reasons_for returns for it)."""
    return _new_reason(Reason, (c.metric, float(value), c.threshold, c.op, level, c.window, ""))


def _reasons(c: Criterion, level: str) -> _Reasons:
    return _Reasons(lambda value: _reason_at(c, level, value), _REASONS_PER_CHECK)


def explain(cp: CompiledPolicy, metrics: Mapping[str, Measures]) -> tuple[tuple[Reason, bool], ...]:
    """Every criterion of every level (least severe first), with whether it holds now."""
    out: list[tuple[Reason, bool]] = []
    for rule in reversed(cp.rules):
        for check in (*rule.require, *rule.criteria):
            value = getattr(metrics[check[1]], check[0])
            out.append((_reason(check, value), check[2](value, check[3])))
    return tuple(out)
