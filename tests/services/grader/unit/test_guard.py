"""The engine's guard (services/grader/core/_guard.py) never changes a grade: on random event histories, walking the
policy from the guard's start while it holds gives exactly the full walk's level and fired criteria, at every post and
at timed re-grades between posts (buckets leaving, the lifetime window ageing), under policies whose failing checks
can all be bounded (the guard is used) and under ones with checks that cannot (acceleration, upper bounds, a
sliding window's relevance: no guard is built from those)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from services.grader.core import Contribution, EventMetrics, Policy, compile_policy, parse_policy
from services.grader.core._guard import Guard, build_guard, guard_holds
from services.grader.core.grading import Fired, rank_live
from tests.services.grader.unit.test_live_fast_paths import ODD_POLICY, _history

# Every metric the guard bounds, both lower-bound operators, thresholds near what the random histories reach.
BOUNDED_POLICY: dict[str, Any] = {
    "kind": "grading-policy",
    "name": "bounded",
    "version": "bounded.v1",
    "scheme": "four_color",
    "windows": ["7m", "1h", "25h"],
    "lateness": "10m",
    "top_authors": 2,
    "cooldown": "5m",
    "rising": {"window": "7m", "horizon": "1h", "min_posts": 2},
    "levels": [
        {"name": "blue", "label": "b", "warning_level": "blue", "match": "any", "criteria": [
            {"metric": "posts", "window": "total", "op": ">", "threshold": 4},
            {"metric": "relevance", "window": "total", "op": ">=", "threshold": 0.95},
            {"metric": "velocity", "window": "total", "op": ">=", "threshold": 30},
        ]},
        {"name": "yellow", "label": "y", "warning_level": "yellow", "match": {"at_least": 2}, "criteria": [
            {"metric": "distinct_authors", "window": "7m", "op": ">=", "threshold": 4},
            {"metric": "sources", "window": "1h", "op": ">", "threshold": 1},
            {"metric": "platforms", "window": "25h", "op": ">=", "threshold": 3},
            {"metric": "likes", "window": "1h", "op": ">=", "threshold": 90},
            {"metric": "reposts", "window": "25h", "op": ">=", "threshold": 700},
        ]},
        {"name": "orange", "label": "o", "warning_level": "orange", "match": {"at_least": 3}, "criteria": [
            {"metric": "velocity", "window": "7m", "op": ">=", "threshold": 60},
            {"metric": "top_author_reach", "window": "25h", "op": ">=", "threshold": 700_000},
            {"metric": "media_involved", "window": "1h", "op": ">=", "threshold": 2},
            {"metric": "regional_scope", "window": "25h", "op": ">=", "threshold": "national"},
            {"metric": "offline_risk", "window": "1h", "op": ">", "threshold": 0.3},
            {"metric": "comments", "window": "25h", "op": ">=", "threshold": 150},
        ]},
        {"name": "red", "label": "r", "warning_level": "red", "match": "all",
         "require": [{"metric": "offline_risk", "window": "7m", "op": ">=", "threshold": 0.4}],
         "criteria": [
             {"metric": "offline_posts", "window": "1h", "op": ">=", "threshold": 3},
             {"metric": "distinct_authors", "window": "1h", "op": ">=", "threshold": 5},
         ]},
    ],
}  # fmt: skip


def _replay(policy: Policy, seed: int) -> tuple[int, int, int]:
    """Grade a random history as the engine does, checking each guarded walk against the full one; returns (walks
    the guard shortened, full walks, levels held)."""
    cp = compile_policy(policy)
    m = EventMetrics(policy.windows, policy.top_authors)
    rng = random.Random(seed)
    guard: Guard | None = None
    clock = -math.inf
    guarded = full_walks = held = 0

    def grade() -> None:
        nonlocal guard, guarded, full_walks, held
        live = m.live(clock)
        expected = rank_live(cp, live)
        if guard is not None and guard_holds(guard, cp, m):
            got = rank_live(cp, live, start=guard.start)
            guarded += 1
        else:
            misses: Fired = []
            got = rank_live(cp, live, misses=misses)
            guard = build_guard(cp, m, live, got[0], misses)
            full_walks += 1
        assert got == expected
        held += got[0] > 0

    for ts, c in _history(seed, policy.windows, policy.top_authors):
        clock = max(clock, ts)
        m.add(c, ts, clock, clock - policy.lateness_seconds)
        grade()
        if rng.random() < 0.3:  # a timed re-grade before the next post: buckets leave, the event ages
            clock += rng.choice((1.0, 61.0, 420.0, 3600.0, 90_000.0)) * rng.random()
            grade()
    return guarded, full_walks, held


@pytest.mark.parametrize("seed", range(8))
def test_guarded_walk_equals_full_walk(seed: int, four_level: Policy, three_level: Policy) -> None:
    bounded = parse_policy(BOUNDED_POLICY)
    for policy in (four_level, three_level, bounded):
        guarded, full_walks, held = _replay(policy, seed)
        assert guarded and full_walks and held  # the guard was used, rebuilt, and levels with fired lists compared
    _replay(parse_policy(ODD_POLICY), seed)  # checks the guard cannot bound: never wrong, seldom used


@pytest.mark.parametrize(
    ("metric", "window", "op", "threshold"),
    [
        ("relevance", "1h", ">=", 0.5),
        ("acceleration", "7m", ">", 1e6),
        ("posts", "1h", "<", 1),
        ("likes", "7m", "==", 50),
    ],
)
def test_unbounded_checks_give_no_guard(metric: str, window: str, op: str, threshold: float) -> None:
    # A window's mean relevance can rise as weak posts leave it, acceleration as the window before empties; an
    # upper bound or an equality can start to hold as a count falls or passes by: no sum bounds them.
    levels = [
        {"name": "blue", "label": "b", "warning_level": "blue", "match": "any",
         "criteria": [{"metric": "posts", "window": "total", "op": ">=", "threshold": 99}]},
        {"name": "yellow", "label": "y", "warning_level": "yellow", "match": "all",
         "criteria": [{"metric": "posts", "window": "total", "op": ">=", "threshold": 1},
                      {"metric": metric, "window": window, "op": op, "threshold": threshold}]},
    ]  # fmt: skip
    policy = parse_policy({**BOUNDED_POLICY, "levels": levels})
    cp = compile_policy(policy)
    m = EventMetrics(policy.windows, policy.top_authors)
    m.add(_post("a"), 0.0, 0.0, -600.0)
    live = m.live(0.0)
    misses: Fired = []
    raw, _ = rank_live(cp, live, misses=misses)
    assert raw == 0 and [check[0] for check, _ in misses] == [metric, "posts"]
    assert build_guard(cp, m, live, raw, misses) is None


def test_guard_breaks_when_a_post_could_reach_a_threshold(four_level: Policy) -> None:
    cp = compile_policy(four_level)
    m = EventMetrics(four_level.windows, four_level.top_authors)
    m.add(_post("a"), 0.0, 0.0, -600.0)
    live = m.live(0.0)
    misses: Fired = []
    raw, _ = rank_live(cp, live, misses=misses)
    guard = build_guard(cp, m, live, raw, misses)
    assert raw == 0 and guard is not None and guard_holds(guard, cp, m)
    m.add(_post("b"), 1.0, 1.0, -599.0)
    assert guard_holds(guard, cp, m)  # blue needs 3 posts: two can still not reach it
    m.add(_post("c"), 2.0, 2.0, -598.0)
    assert not guard_holds(guard, cp, m)  # the third can
    assert rank_live(cp, m.live(2.0))[0] == 1
    assert not guard_holds(guard, compile_policy(four_level), m)  # another policy: the guard says nothing


def _post(author: str) -> Contribution:
    return Contribution(author, 10, 0, 0, 0, 0, 0, 0, False, "weibo_api", "weibo.com", ())
