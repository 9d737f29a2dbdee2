"""Each rule of a policy as a small Python function written for it: how rank_live reads an event's live windows.

rank_live runs on every post, twice (the grade, then the rising projection), and walked each rule's checks in a
generic loop: unpack a check, branch on how its metric is read, branch on the operator, on the scale. About sixty
bytecodes a check and a sixth of the grader's per-post work with parents. Here each rule becomes straight-line code
with its checks in order, their windows looked up once, the metric read by the same expression as the Window
property (`_windows.Window`), the comparison written out; the same values, in the same order, the same early exits
(the generic loop is kept as the specification in `rule_source`'s docstring and in test_live_fast_paths.py, which
checks rank_live against rank_of on random histories).

Only names from fixed tables reach the source: window names, thresholds and checks are globals of the generated
code (W0, T0, K0 …), and metric attributes come from `_READ` (policy.METRICS), so no text of a policy file is ever
compiled.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._windows import OFFLINE_RISK_HALF

if TYPE_CHECKING:
    from .grading import _Check

__all__ = ["RuleCode", "compile_rule"]

# (windows, scale or None, misses or None) -> the fired checks with their values, or None when the rule fails.
RuleCode = Callable[[Any, Any, Any], "list[tuple[_Check, float]] | None"]

# How each metric is read off a live window `w` into `v`: the Window property's formula (see _windows.Window).
_READ: dict[str, tuple[str, ...]] = {
    "posts": ("v = {w}.posts",),
    "reposts": ("v = {w}.reposts",),
    "comments": ("v = {w}.comments",),
    "likes": ("v = {w}.likes",),
    "offline_posts": ("v = {w}.offline_posts",),
    "acceleration": ("v = {w}.acceleration",),  # the property: 0 for the lifetime window
    "distinct_authors": ("v = len({w}.by_author)",),
    "sources": ("v = len({w}.by_source)",),
    "platforms": ("v = len({w}.by_platform)",),
    "media_involved": ("v = len({w}.by_media)",),
    "velocity": ("v = {w}.posts / {w}.hours",),
    # The property only to recompute the top-k list after an author in it left.
    "top_author_reach": ("v = {w}.top_total if {w}.top_valid else {w}.top_author_reach",),
    "regional_scope": ("v = {w}.scope", "if v < 0:", "    v = {w}.regional_scope"),
    # These two with their zero cases apart, as metrics._records reads them (the same values).
    "offline_risk": ("x = {w}.offline_posts + {w}.planned_posts", "v = x / (x + OFFLINE_RISK_HALF) if x else 0.0"),
    "relevance": (
        "n = {w}.relevance_posts",
        "s = {w}.source_relevance",
        "if n:",
        "    x = {w}.relevance_sum / n",
        "    v = (s if s > x else x) / 1000.0",
        "else:",
        "    v = s / 1000.0 if s > 0 else 0.0",
    ),
}
# The metrics whose live value is an int (counts, distinct counts, follower sums, the scope's rank).
_INT_METRICS = frozenset({
    "posts", "reposts", "comments", "likes", "offline_posts", "distinct_authors", "sources", "platforms",
    "media_involved", "top_author_reach", "regional_scope",
})  # fmt: skip
# The operators written out: `a >= b` is operator.ge(a, b), and so on.
_OPS: dict[Callable[[float, float], bool], str] = {
    operator.ge: ">=",
    operator.gt: ">",
    operator.le: "<=",
    operator.lt: "<",
    operator.eq: "==",
    operator.ne: "!=",
}


def rule_source(
    require: Sequence[_Check], criteria: Sequence[_Check], needed: int, scaled: bool, misses: bool
) -> tuple[str, dict[str, Any]]:
    """The source of one rule's function and its globals. It does what this loop did, check by check:

        fired = []
        for check in require:                  # each must hold
            value = <metric of check[0] on windows[check[1]]>
            if scale is not None and check[4]: value *= scale.get(check[1], 1.0)
            if not check[2](value, check[3]): misses.append((check, value)); return None
            fired.append((check, value))
        spare = len(criteria) - needed         # how many criteria may fail
        mark = len(misses)
        for check in criteria:
            value = ... (the same)
            if check[2](value, check[3]): fired.append((check, value))
            else:
                misses.append((check, value)); spare -= 1
                if spare < 0: return None
        del misses[mark:]                      # a rule that held leaves no witnesses of failure
        return fired

    `scaled`: a scale is given (the rising projection); `misses`: a list collects what made the rule fail (_guard).
    """
    env: dict[str, Any] = {"OFFLINE_RISK_HALF": OFFLINE_RISK_HALF}
    lines = ["def rule(windows, scale, misses):", "    fired = []"]
    if misses and criteria:
        lines.append("    mark = len(misses)")
    window_var: dict[str, str] = {}

    def read(i: int, check: _Check) -> str:
        """Append the lines reading check `i` into `v`; return its comparison."""
        metric, window, op, threshold, is_scaled = check[0], check[1], check[2], check[3], check[4]
        w = window_var.get(window)
        if w is None:  # straight-line code: a window looked up earlier is bound on every path that reaches here
            w = window_var[window] = f"w{len(window_var)}"
            env[f"W{w[1:]}"] = window
            lines.append(f"    {w} = windows[W{w[1:]}]")
        lines.extend(f"    {line.format(w=w)}" for line in _READ[metric])
        if scaled and is_scaled:
            lines.append(f"    v *= scale.get(W{w[1:]}, 1.0)")
        elif metric in _INT_METRICS and isinstance(threshold, float) and threshold.is_integer():
            # The same number as an int: an int metric compared with an int takes CPython's fast path, with a float
            # its generic one (a scaled value is a float: its threshold stays one).
            threshold = int(threshold)
        env[f"K{i}"], env[f"T{i}"] = check, threshold
        symbol = _OPS.get(op)
        if symbol is None:  # an operator of no known symbol: called, as the loop did
            env[f"O{i}"] = op
        return f"v {symbol} T{i}" if symbol else f"O{i}(v, T{i})"

    for i, check in enumerate(require):
        lines.append(f"    if not ({read(i, check)}):")
        if misses:
            lines.append(f"        misses.append((K{i}, v))")
        lines.append("        return None")
        lines.append(f"    fired.append((K{i}, v))")
    if criteria:
        lines.append(f"    spare = {len(criteria) - needed}")
    for i, check in enumerate(criteria, start=len(require)):
        lines.append(f"    if {read(i, check)}:")
        lines.append(f"        fired.append((K{i}, v))")
        lines.append("    else:")
        if misses:
            lines.append(f"        misses.append((K{i}, v))")
        lines.append("        spare -= 1")
        lines.append("        if spare < 0:")
        lines.append("            return None")
    if misses and criteria:
        lines.append("    del misses[mark:]")
    lines.append("    return fired")
    return "\n".join(lines) + "\n", env


def compile_rule(require: Sequence[_Check], criteria: Sequence[_Check], needed: int) -> tuple[RuleCode, ...]:
    """The rule's four functions, indexed by 2 * (a scale is given) + (misses are collected)."""
    out = []
    for scaled in (False, True):
        for misses in (False, True):
            source, env = rule_source(require, criteria, needed, scaled, misses)
            exec(compile(source, "<policy rule>", "exec"), env)  # source from fixed tables only
            out.append(env["rule"])
    return tuple(out)
