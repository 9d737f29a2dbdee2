"""bench/_eval_candidates.py: candidate policies scored from one recorded replay (`grading_eval.py --candidates`).

The shortcut is only worth having if it gives what a replay of the candidate gives: checked here against the
grader's own alerts on a synthetic stream of cascades of different speeds and reach, for the shipped policy and for
one whose orange bar is lower.
"""

from __future__ import annotations

import random
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from _eval_candidates import probe_policy, record, score  # noqa: E402
from _eval_scores import TruthEvent  # noqa: E402
from _eval_scores import score as replay_score  # noqa: E402
from _pipeline import replay  # noqa: E402

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file  # noqa: E402
from services.grader.core import GraderConfig, Policy, PostView  # noqa: E402

T0 = datetime(2013, 5, 1, 8, 0, tzinfo=UTC)


def _stream(n_events: int = 24, seed: int = 3) -> tuple[list[PostView], dict[str, str], dict[str, TruthEvent]]:
    """Cascades (a source and its reposts by parent id) starting within 6 h, of 3-70 posts, some fast, some slow,
    some with a widely followed author or many comments; the events' 24 h sizes grow with their speed."""
    rng = random.Random(seed)
    views: list[PostView] = []
    truth: dict[str, str] = {}
    events: dict[str, TruthEvent] = {}
    for i in range(n_events):
        src = f"s{i}"
        start = T0 + timedelta(minutes=rng.randrange(0, 360))
        n = rng.randrange(3, 71)
        gap = rng.choice((5, 20, 60, 300))  # seconds between reposts
        times = [start + timedelta(seconds=gap * k + rng.randrange(0, 5)) for k in range(n)]
        for k, t in enumerate(times):
            pid = src if k == 0 else f"{src}r{k}"
            views.append(
                PostView(
                    id=pid,
                    created_at=t,
                    author_id=f"a{i}-{k}",
                    author_followers=rng.choice((100, 1000, 2_000_000)) if k < 3 else 50,
                    parent_id=None if k == 0 else src,
                    root_id=None if k == 0 else src,
                    comments=rng.choice((0, 3000)) if k == 0 else 0,
                )
            )
            truth[pid] = src
        size24 = n * (400 // gap + 1)
        curve = (*tuple(((t - start).total_seconds(), k + 1) for k, t in enumerate(times)), (86400.0, size24))
        events[src] = TruthEvent(src, start.timestamp(), "2013", size24, curve)
    views.sort(key=lambda v: (v.created_at, v.id))
    return views, truth, events


def _lower_orange(policy: Policy) -> Policy:
    levels = tuple(replace(lv, at_least=2) if lv.warning_level == "orange" else lv for lv in policy.levels)
    return replace(policy, levels=levels, version="lower-orange")


def test_recorded_scores_match_a_replay_of_each_candidate():
    views, truth, events = _stream()
    native = {v.id: v.id for v in views}
    shipped = load_policy_file(DEFAULT_POLICY)
    rec = record(views, shipped, GraderConfig(), native, truth, events)
    reached = []
    for policy in (shipped, _lower_orange(shipped)):
        fast = score(policy.version, rec, policy, events, top_share=0.25)
        result = replay(views, policy, GraderConfig())
        slow = replay_score("v", "grader", result, native, truth, events, 0.25, set(), 7200.0)
        assert fast.levels == slow.levels
        assert (fast.early, fast.top) == (slow.early, slow.top_events)
        assert abs(fast.spearman - slow.spearman) < 1e-12
        reached.append(fast.orange)
    assert reached[1] > reached[0]  # the lower bar does reach more events: the comparison above is not vacuous


def test_probe_policy_adds_the_candidates_windows_in_order():
    shipped = load_policy_file(DEFAULT_POLICY)
    other = replace(shipped, windows=(("30m", 1800.0), *shipped.windows))
    probe = probe_policy(shipped, [other])
    assert [w for w, _ in probe.windows] == ["10m", "30m", "1h", "24h"]
    assert probe.levels == shipped.levels
