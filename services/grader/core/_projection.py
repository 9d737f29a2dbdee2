"""The rising flag's projection: the level an event would reach if its current growth held over the horizon.

Read on every re-grade of an event below the policy's top level (Grader._regrade), on the live windows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ._windows import Window
from .grading import CompiledPolicy, Measures, rank_live, rank_of

__all__ = ["projected_rank"]


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
    if a <= 0.0 or base.posts < rule.min_posts:  # 0.0: a float compared with a float (CPython's fast path)
        return None
    gate = cp.gates[floor] if live else None  # cp.projection_gate(floor) without its call
    if gate is not None:  # every rule above fails on a metric no scale changes: rank_live's answer without the scale
        codes, result = gate
        for code in codes:
            if code(metrics, None, None) is not None:
                break
        else:
            return result
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
    for name in cp.scaled_above[floor]:  # cp.scaled_windows(floor): the other windows' factors are never read
        m = metrics[name]
        posts = m.posts
        if posts:
            seconds = m.seconds
            factor = (rate * seconds / 3600.0 if seconds <= horizon else posts + gained) / posts
            scale[name] = factor if factor > 1.0 else 1.0
    if live:
        return rank_live(cp, metrics, scale, floor)[0]  # type: ignore[arg-type]  # Windows, as the caller says
    return rank_of(cp, metrics, scale, floor)[0]
