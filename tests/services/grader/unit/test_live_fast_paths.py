"""The engine's fast paths agree with the plain ones on random event histories.

- `rank_live` (policy read off the live windows without their properties) returns what `rank_of` returns on the
  same windows and on their records, and `projected_rank(live=True)` what it returns without;
- `EventMetrics.advance` skipping the windows until a bucket can leave (`due`) keeps every window exactly as a
  full walk at every clock value.
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest

from services.grader.core import Contribution, EventMetrics, Policy, compile_policy, parse_policy, projected_rank
from services.grader.core.grading import rank_live, rank_of

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC).timestamp()

# Every metric and operator, windows of odd lengths, a lifetime velocity and an acceleration (non-monotone).
ODD_POLICY = {
    "kind": "grading-policy",
    "name": "odd",
    "version": "odd.v1",
    "scheme": "four_color",
    "windows": ["7m", "1h", "25h"],
    "lateness": "10m",
    "top_authors": 2,
    "cooldown": "5m",
    "rising": {"window": "7m", "horizon": "1h", "min_posts": 2},
    "levels": [
        {"name": "blue", "label": "b", "warning_level": "blue", "match": "any", "criteria": [
            {"metric": "posts", "window": "total", "op": ">", "threshold": 2},
            {"metric": "relevance", "window": "1h", "op": ">=", "threshold": 0.6},
            {"metric": "velocity", "window": "total", "op": ">=", "threshold": 30},
        ]},
        {"name": "yellow", "label": "y", "warning_level": "yellow", "match": {"at_least": 2}, "criteria": [
            {"metric": "distinct_authors", "window": "7m", "op": ">=", "threshold": 3},
            {"metric": "acceleration", "window": "7m", "op": ">", "threshold": 0},
            {"metric": "sources", "window": "1h", "op": "!=", "threshold": 1},
            {"metric": "platforms", "window": "25h", "op": "==", "threshold": 2},
            {"metric": "likes", "window": "1h", "op": "<", "threshold": 50},
        ]},
        {"name": "orange", "label": "o", "warning_level": "orange", "match": {"at_least": 3}, "criteria": [
            {"metric": "velocity", "window": "7m", "op": ">=", "threshold": 40},
            {"metric": "top_author_reach", "window": "25h", "op": ">=", "threshold": 900},
            {"metric": "media_involved", "window": "1h", "op": ">=", "threshold": 1},
            {"metric": "regional_scope", "window": "25h", "op": ">=", "threshold": "provincial"},
            {"metric": "offline_risk", "window": "1h", "op": ">", "threshold": 0.2},
            {"metric": "comments", "window": "25h", "op": "<=", "threshold": 400},
            {"metric": "reposts", "window": "total", "op": ">=", "threshold": 100},
        ]},
        {"name": "red", "label": "r", "warning_level": "red", "match": "all",
         "require": [{"metric": "offline_risk", "window": "7m", "op": ">=", "threshold": 0.3}],
         "criteria": [
             {"metric": "offline_posts", "window": "1h", "op": ">=", "threshold": 2},
             {"metric": "distinct_authors", "window": "1h", "op": ">=", "threshold": 4},
         ]},
    ],
}  # fmt: skip


def _policies(four_level: Policy, three_level: Policy) -> list[Policy]:
    return [four_level, three_level, parse_policy(ODD_POLICY)]


def _contribution(rng: random.Random) -> Contribution:
    offline = 1 if rng.random() < 0.15 else 0
    return Contribution(
        f"u{rng.randrange(12)}",
        rng.choice((0, 10, 300, 5_000, 400_000)),
        rng.choice((0, 0, 3, 250)),
        rng.choice((0, 0, 1, 40)),
        rng.choice((0, 2, 30)),
        offline,
        offline if rng.random() < 0.5 else 0,
        rng.choice((0, 0, 350, 900)),
        rng.random() < 0.1,
        rng.choice(("weibo_api", "rss", "")),
        rng.choice(("weibo.com", "news", "")),
        tuple(rng.sample(("110101", "110000", "310104", "440300"), rng.randrange(3))),
    )


def _history(seed: int, windows: tuple[tuple[str, float], ...], top_k: int) -> list[tuple[float, Contribution]]:
    """Post times with bursts, gaps of minutes to days, fractional seconds and late posts."""
    rng = random.Random(seed)
    ts, out = T0, []
    for _ in range(160):
        ts += rng.choice((0.0, 0.25, 7.0, 59.5, 60.0, 300.0, 3599.9, 7200.0, 90_000.0)) * rng.random()
        late = rng.random() < 0.1
        out.append((ts - rng.uniform(0, 900) if late else ts, _contribution(rng)))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_rank_live_matches_rank_of(seed: int, four_level: Policy, three_level: Policy) -> None:
    for policy in _policies(four_level, three_level):
        cp = compile_policy(policy)
        m = EventMetrics(policy.windows, policy.top_authors)
        clock = -math.inf
        checked = 0
        for ts, c in _history(seed, policy.windows, policy.top_authors):
            clock = max(clock, ts)
            m.add(c, ts, clock, clock - policy.lateness_seconds)
            live = m.live(clock)
            records = m.view(datetime.fromtimestamp(clock, UTC), clock)
            # floor 3: under four-level only red is above, with its require on offline risk (the projection's gate)
            for floor in (-1, 0, 1, 2, 3):
                fast = rank_live(cp, live, None, floor)
                assert fast == rank_of(cp, live, None, floor) == rank_of(cp, records, None, floor)
                assert projected_rank(cp, live, floor, live=True) == projected_rank(cp, live, floor)
                assert projected_rank(cp, live, floor, live=True) == projected_rank(cp, records, floor)
            checked += rank_live(cp, live)[1] is not None
        assert checked  # some level held somewhere, so the fired lists were compared too


def _state(m: EventMetrics) -> tuple[object, ...]:
    return (m.to_dict(), [(w.name, [b.start for b in w.dq], [b.start for b in w.prev], w.prev_posts, w.posts,
                           dict(w.by_author), w.hours) for w in (*m.windows, m.total)])  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_advance_skips_only_when_no_bucket_moves(seed: int, four_level: Policy) -> None:
    windows = (*four_level.windows, ("7m", 420.0))
    fast, full = EventMetrics(windows, 3), EventMetrics(windows, 3)
    rng = random.Random(seed)
    clock = -math.inf
    for ts, c in _history(seed, windows, 3):
        clock = max(clock, ts)
        for m in (fast, full):
            full.due = -math.inf  # the reference walks every window at every clock value
            m.add(c, ts, clock, clock - 600.0)
        assert _state(fast) == _state(full)
        probe = clock + rng.choice((0.5, 59.0, 600.0, 3600.0, 86_400.0)) * rng.random()  # a tick between posts
        full.due = -math.inf
        fast.advance(probe)
        full.advance(probe)
        assert _state(fast) == _state(full)
        clock = probe
