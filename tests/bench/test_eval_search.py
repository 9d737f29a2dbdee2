"""bench/_eval_search.py: the per-criterion threshold search behind `grading_eval.py --search-criteria`."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from _eval_scores import TruthEvent  # noqa: E402
from _eval_search import Recorded, search  # noqa: E402

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402


def _recorded(n: int = 40) -> tuple[Recorded, dict[str, TruthEvent]]:
    """n events, sizes growing with their index; one post each, on which only yellow's two 1 h criteria can hold:
    posts in 1 h always does, distinct authors in 1 h equals the event's index + 1 (so it ranks the events)."""
    policy = load_policy_file(DEFAULT_POLICY)
    keys = [(lv.warning_level, f"{c.metric}@{c.window}") for lv in policy.levels for c in (*lv.criteria, *lv.require)]
    events: dict[str, TruthEvent] = {}
    series = {}
    for i in range(n):
        eid = f"e{i:02d}"
        size = 10 * (i + 1)
        events[eid] = TruthEvent(eid, 1000.0 * i, "2013", size, ((0.0, 1), (3600.0, size)))
        values = dict.fromkeys(keys, 0.0)
        values["blue", "posts@total"] = 5.0
        values["yellow", "posts@1h"] = 100.0
        values["yellow", "distinct_authors@1h"] = float(i + 1)
        series[f"ev-{eid}"] = [(1000.0 * i + 60, values)]
    return Recorded({e: f"ev-{e}" for e in events}, series), events


def test_search_moves_a_threshold_that_ranks_the_events_better_and_leaves_the_others():
    rec, events = _recorded()
    policy = load_policy_file(DEFAULT_POLICY)
    threshold = next(c.threshold for lv in policy.levels if lv.warning_level == "yellow" for c in lv.criteria
                     if c.metric == "distinct_authors")  # fmt: skip
    assert threshold > 20  # as shipped only the top few events are yellow: a lower bar splits them more evenly
    kept, log = search(rec, policy, events, top_share=0.1)
    assert set(kept) == {("yellow", "distinct_authors@1h")}
    assert kept["yellow", "distinct_authors@1h"] < 1.0
    first, last = float(log[0].rsplit(" ", 1)[1]), float(log[-1].rsplit(" ", 1)[1])
    assert last > first + 0.05


def test_search_keeps_nothing_when_no_threshold_separates_the_events():
    rec, events = _recorded()
    for rows in rec.series.values():
        for _, values in rows:
            values["yellow", "distinct_authors@1h"] = 0.0  # every event alike: no threshold can rank them
    kept, log = search(rec, load_policy_file(DEFAULT_POLICY), events, top_share=0.1)
    assert kept == {} and log[-1].startswith("kept")
