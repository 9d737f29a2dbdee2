"""Each window's top-author reach (its list kept up to date as authors come, recomputed once one of them leaves) is that
of the k most followed authors in the window, at every post and every clock value between, on random event histories
(the guard of _guard.py bounds how far it can rise; a snapshot carries it for every window)."""

from __future__ import annotations

import math
import random

import pytest

from services.grader.core import EventMetrics, Policy
from tests.services.grader.unit.test_live_fast_paths import _history


def _expected(m: EventMetrics, authors: dict[str, int], k: int) -> list[tuple[int, str]]:
    return sorted((m.followers[a], a) for a in authors)[-k:] if authors else []


@pytest.mark.parametrize(("seed", "top_k"), [(s, k) for s in range(6) for k in (1, 2, 5)])
def test_top_lists_match_a_full_sort(seed: int, top_k: int, four_level: Policy) -> None:
    windows = (*four_level.windows, ("7m", 420.0))
    m = EventMetrics(windows, top_k)
    rng = random.Random(seed)
    clock = -math.inf
    shortcuts = 0
    for ts, c in _history(seed, windows, top_k):
        clock = max(clock, ts)
        m.add(c, ts, clock, clock - 600.0)
        for probe in (clock, clock + rng.choice((30.0, 420.0, 3600.0)) * rng.random()):
            m.advance(probe)
            for w in (*m.windows, m.total):
                valid = w.top_valid
                assert w.top_author_reach == sum(f for f, _ in _expected(m, w.by_author, top_k))
                if valid:  # kept without a recompute: a k most followed (ties may pick other names)
                    assert [f for f, _ in w.top] == [f for f, _ in _expected(m, w.by_author, top_k)]
                    assert all(a in w.by_author for _, a in w.top)
                    shortcuts += 1
        clock = probe
    assert shortcuts
