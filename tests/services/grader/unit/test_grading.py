"""The pure grading functions: rule evaluation, the cool-down state machine, the rising projection."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from services.grader.core import LevelState, WindowMetrics, compile_policy, evaluate, projected_rank, step
from services.grader.core.policy import Criterion

AT = datetime(2025, 6, 1, tzinfo=UTC)
COOL = 1800.0


def window(name: str, seconds: float, **values) -> WindowMetrics:
    base = dict.fromkeys(WindowMetrics._fields, 0)
    base.update(window=name, seconds=seconds, window_end=AT, velocity=0.0, acceleration=0.0, offline_risk=0.0,
                relevance=0.0)  # fmt: skip
    base.update(values)
    return WindowMetrics(**base)


def metrics(**per_window):
    names = {"10m": 600.0, "1h": 3600.0, "24h": 86400.0, "total": float("inf")}
    return {
        name: window(name, seconds, **per_window.get(name.replace("10m", "m10"), {})) for name, seconds in names.items()
    }


@pytest.mark.parametrize(
    ("state", "raw", "now", "expected"),
    [
        (LevelState(1), 3, 0, LevelState(3)),  # escalation is immediate
        (LevelState(3), 3, 0, LevelState(3)),
        (LevelState(3), 2, 100, LevelState(3, 100, 2)),  # lower: the cool-down starts
        (LevelState(3, 100, 2), 2, 100 + COOL - 1, LevelState(3, 100, 2)),  # not yet
        (LevelState(3, 100, 2), 1, 200, LevelState(3, 100, 2)),  # dropping further does not restart it
        (LevelState(3, 100, 2), 3, 500, LevelState(3)),  # back up: cancelled, no flapping
        (LevelState(3, 100, 2), 4, 500, LevelState(4)),
        (LevelState(3, 100, 2), 2, 100 + COOL, LevelState(2)),  # over: settle
        (LevelState(3, 100, 2), 1, 100 + COOL, LevelState(2, 100 + COOL, 1)),  # settle, keep cooling
        (LevelState(3, 100, 1), 1, 100 + COOL, LevelState(1)),
    ],
)
def test_cooldown_state_machine(state, raw, now, expected):
    assert step(state, raw, now, COOL) == expected


def test_without_cooldown_levels_follow_at_once():
    assert step(LevelState(3), 1, 0, 0) == LevelState(1)


def test_evaluate_fires_with_reasons(four_level):
    cp = compile_policy(four_level)
    rank, reasons = evaluate(cp, metrics(total={"posts": 2}))
    assert rank == 0 and reasons[0].criterion == "below_lowest_level"
    rank, reasons = evaluate(cp, metrics(total={"posts": 5}, **{"1h": {"posts": 40, "distinct_authors": 30}}))
    assert rank == 2
    assert [(r.criterion, r.window, r.value, r.threshold, r.level) for r in reasons] == [
        ("posts", "1h", 40, 30, "yellow"),
        ("distinct_authors", "1h", 30, 28, "yellow"),
    ]
    assert reasons[0].message == "1小时内帖子数 40 ≥ 30"


def test_required_criteria_gate_a_level(four_level):
    cp = compile_policy(four_level)
    loud = {"posts": 500, "distinct_authors": 400, "offline_risk": 0.4}
    assert evaluate(cp, metrics(total={"posts": 500}, **{"1h": loud}))[0] < 4
    assert evaluate(cp, metrics(total={"posts": 500}, **{"1h": {**loud, "offline_risk": 0.5}}))[0] == 4


def test_policy_shape_flags(four_level):
    cp = compile_policy(four_level)
    assert cp.monotone and cp.top_rank == 4
    assert 1 not in cp.decaying  # blue reads only the lifetime totals: time alone cannot undo it
    assert cp.decaying[2] == {"1h", "24h"}
    lower_bound = replace(four_level.levels[1], criteria=(Criterion("posts", "1h", "<", 5.0),))
    assert not compile_policy(replace(four_level, levels=(four_level.levels[0], lower_bound))).monotone


def test_projection_flags_growth_that_would_reach_the_next_level(four_level):
    cp = compile_policy(four_level)
    growing = metrics(total={"posts": 12}, **{"1h": {"posts": 10, "distinct_authors": 10, "velocity": 10.0,
                                                     "acceleration": 12.0}})  # fmt: skip
    assert evaluate(cp, growing)[0] == 1
    assert projected_rank(cp, growing, 1) == 2
    steady = metrics(total={"posts": 12}, **{"1h": {"posts": 10, "velocity": 10.0, "acceleration": 0.0}})
    assert projected_rank(cp, steady, 1) is None
    thin = metrics(total={"posts": 3}, **{"1h": {"posts": 3, "velocity": 3.0, "acceleration": 50.0}})
    assert projected_rank(cp, thin, 1) is None  # too few posts to call it a trend
