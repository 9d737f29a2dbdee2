"""Shortcuts of the grader core's per-post path give what the plain computation gives: a fired check's Reason taken
from its memo, the guard's integer ceilings, a post counted in every window without a test per window, rule code
comparing int metrics with int thresholds."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime

import pytest

from services.grader.core import Contribution, EventMetrics, Policy, compile_policy, parse_policy
from services.grader.core._guard import NO_LIMIT, _lower
from services.grader.core.grading import _REASONS_PER_CHECK, rank_live, rank_of, reasons_for
from services.grader.core.model import Reason
from tests.services.grader.unit.test_guard import BOUNDED_POLICY

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC).timestamp()


def _made(check: tuple, value: float) -> Reason:  # type: ignore[type-arg]
    """The Reason reasons_for built for a fired check before the memo."""
    return Reason(check[0], float(value), check[3], check[5].op, check[6], check[1], "")


def test_reasons_from_the_memo_equal_reasons_made_anew(four_level: Policy) -> None:
    cp = compile_policy(four_level)
    checks = [c for rule in cp.rules for c in (*rule.require, *rule.criteria)]
    rng = random.Random(5)
    values = [3, 3.0, 7, 0.85, 1_000_000, 144.5, float("nan"), float("inf"), 12, 3]
    for _ in range(400):
        fired = [(c, rng.choice(values)) for c in rng.sample(checks, 3)]
        got = reasons_for(cp, 2, fired)
        want = tuple(_made(c, v) for c, v in fired)
        assert repr(got) == repr(want)  # the same values, types (3 and 3.0 both give 3.0) and reprs
        assert all(type(r) is Reason for r in got)


def test_zero_values_are_made_anew_so_minus_zero_keeps_its_sign(four_level: Policy) -> None:
    cp = compile_policy(four_level)
    check = cp.rules[-1].criteria[0]
    assert repr(reasons_for(cp, 1, [(check, 0.0)])) == repr((_made(check, 0.0),))
    assert repr(reasons_for(cp, 1, [(check, -0.0)])) == repr((_made(check, -0.0),))  # would be 0.0 from a memo
    assert reasons_for(cp, 1, [(check, -0.0)])[0].value.hex() == "-0x0.0p+0"


def test_the_memo_is_bounded_and_never_makes_checks_differ(four_level: Policy) -> None:
    a, b = compile_policy(four_level), compile_policy(four_level)
    check = a.rules[-1].criteria[0]
    for value in range(1, 3 * _REASONS_PER_CHECK):
        assert reasons_for(a, 1, [(check, value)]) == (_made(check, value),)
    assert 0 < len(check[7]) <= _REASONS_PER_CHECK  # emptied whole when full
    assert a.rules == b.rules  # one memo full, the other empty: the checks and rules still compare equal
    assert hash(check) == hash(b.rules[-1].criteria[0])


@pytest.mark.parametrize("seed", range(3))
def test_guard_ceilings_decide_as_the_float_room(seed: int) -> None:
    # For an integer rise n and a room r: n < r exactly when n < ceil(r), which the ceiling now + ceil(r) encodes.
    rng = random.Random(seed)
    for _ in range(5000):
        now = rng.randrange(0, 10**9)
        room = rng.choice([rng.uniform(-3, 3), rng.uniform(0, 1e6), rng.randrange(1, 50) - 1e-6, 1.0, 0.0])
        ceiling = _lower(NO_LIMIT, now, room)
        for rise in (0, 1, 2, int(room) - 1, int(room), int(room) + 1, math.ceil(room) if room > 0 else 0):
            if rise >= 0:
                assert (now + rise < ceiling) == (rise < room), (now, room, rise)
    assert _lower(NO_LIMIT, 5, math.inf) == _lower(NO_LIMIT, 5, math.nan) == NO_LIMIT  # bounds nothing, as before
    assert _lower(10, 5, 7.5) == 10 and _lower(20, 5, 7.5) == 13  # the lower of two ceilings


@pytest.mark.parametrize("seed", range(3))
def test_windows_shorter_than_the_lateness_count_as_a_rebuild_does(seed: int) -> None:
    # A 5-minute window under a 10-minute lateness: a post 5-10 minutes old is in the longer windows only, and must
    # not take the every-window shortcut; the incremental windows equal a rebuild from the buckets.
    windows = (("5m", 300.0), ("1h", 3600.0), ("24h", 86400.0))
    rng = random.Random(seed)
    m = EventMetrics(windows, top_k=3)
    now = T0
    for i in range(1500):
        now += rng.choice([1, 5, 30, 60, 240, 1800])
        ts = now - rng.choice([0, 0, 0, 100, 250, 320, 450, 590, 900])
        c = Contribution(f"u{rng.randrange(30)}", rng.randrange(10_000), rng.randrange(3), 0, 0, 0, 0, 0, False,
                         "weibo_api", "weibo.com", ())  # fmt: skip
        m.add(c, ts, now, now - 600)
        if i % 50 == 49:
            copy = EventMetrics.from_dict(json.loads(json.dumps(m.to_dict())), windows, 3, now)
            when = datetime.fromtimestamp(now, UTC)
            assert copy.view(when, now) == m.view(when, now)
            assert [w.prev_posts for w in copy.windows] == [w.prev_posts for w in m.windows]


def test_int_thresholds_in_rule_code_give_rank_of_on_fractional_and_integral_thresholds() -> None:
    # Integral thresholds of int metrics are written as ints, fractional ones stay floats: the same decisions.
    levels = [dict(lv) for lv in BOUNDED_POLICY["levels"]]
    levels[1] = {**levels[1], "criteria": [{**c, "threshold": c["threshold"] + 0.5} for c in levels[1]["criteria"]]}
    policy = parse_policy({**BOUNDED_POLICY, "levels": levels})
    cp = compile_policy(policy)
    rng = random.Random(2)
    m = EventMetrics(policy.windows, policy.top_authors)
    now, held = T0, 0
    for _ in range(600):
        now += rng.choice([1, 20, 60, 400])
        c = Contribution(f"u{rng.randrange(12)}", rng.choice([10, 400_000]), rng.randrange(300), rng.randrange(40),
                         rng.randrange(60), int(rng.random() < 0.05), 0, 0, rng.random() < 0.2,
                         rng.choice(["weibo_api", "rss"]), rng.choice(["a", "b", "c"]), ())  # fmt: skip
        m.add(c, now, now, now - 600)
        live = m.live(now)
        assert rank_live(cp, live) == rank_of(cp, live)
        held += rank_live(cp, live)[0] >= 2
    assert held
