"""Grading scenarios on synthetic streams with a controllable clock (four-level policy unless said)."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from services.grader.core import Alert, EventMetrics, EventSnapshot, PostView, compile_policy, evaluate

MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def check_alert_sequence(alerts: list[Alert]) -> None:
    """One alert per change: sequences 1, 2, … per event, each starting where the previous ended."""
    by_event: dict[str, list[Alert]] = {}
    for a in alerts:
        by_event.setdefault(a.event_id, []).append(a)
    for chain in by_event.values():
        assert [a.sequence for a in chain] == list(range(1, len(chain) + 1))
        assert chain[0].from_level == "none"
        for before, after in itertools.pairwise(chain):
            assert after.from_level == before.to_level != after.to_level
        assert all(a.reasons for a in chain)


def test_slow_trickle_stays_blue(feed):
    f = feed()
    source = f.post(text="某局长被举报")
    f.burst(30, 20 * MIN, parent_id=source.id)
    snap = f.last("ev-p1")
    assert snap.level == "blue" and snap.post_count == 31
    assert [(a.from_level, a.to_level) for a in f.alerts()] == [("none", "blue")]
    assert f.alerts()[0].sequence == 1
    blue_reason = snap.grade.reasons[0]
    assert (blue_reason.criterion, blue_reason.window, blue_reason.op) == ("posts", "total", ">=")
    assert "累计帖子数" in blue_reason.message


def test_fast_growth_reaches_yellow_then_orange_with_media(feed):
    f = feed()
    source = f.post(author_followers=5000)
    f.burst(80, 9 * SEC, parent_id=source.id)
    assert f.last("ev-p1").level == "yellow"  # fast and wide, but no traditional media yet
    f.post(9 * SEC, parent_id=source.id, author_id="daily", author_is_media=True, author_followers=2_000_000)
    snap = f.last("ev-p1")
    assert snap.level == "orange"
    fired = {(r.criterion, r.window) for r in snap.grade.reasons}
    assert {("velocity", "10m"), ("distinct_authors", "1h"), ("media_involved", "24h")} <= fired
    assert [a.to_level for a in f.alerts()] == ["blue", "yellow", "orange"]
    check_alert_sequence(f.alerts())


def test_media_source_kind_counts_as_media(feed):
    f = feed()
    source = f.post()
    f.burst(80, 9 * SEC, parent_id=source.id)
    f.post(9 * SEC, parent_id=source.id, source_kind="rss", platform="news.example.cn")
    assert f.last("ev-p1").level == "orange"
    assert f.last("ev-p1").window("24h").media_involved == 1


def test_offline_signals_with_very_high_attention_reach_red(feed):
    f = feed()
    source = f.post()
    f.burst(150, 4 * SEC, parent_id=source.id)
    assert f.last("ev-p1").level in ("yellow", "orange")
    f.burst(
        250,
        4 * SEC,
        parent_id=source.id,
        offline_signals=lambda i: ("聚集", "上访") if i % 25 == 0 else (),
        offline_planned=lambda i: i % 50 == 0,
    )
    snap = f.last("ev-p1")
    assert snap.level == "red"
    assert snap.grade.reasons[0].criterion == "offline_risk"  # the required criterion comes first
    assert snap.window("1h").offline_posts == 10
    assert f.alerts()[-1].to_level == "red"
    check_alert_sequence(f.alerts())


def test_attention_without_offline_signals_is_not_red(feed):
    f = feed()
    source = f.post()
    f.burst(400, 4 * SEC, parent_id=source.id, author_is_media=lambda i: i < 5)
    assert f.last("ev-p1").level == "orange"


def _orange(f):
    source = f.post()
    f.burst(80, 9 * SEC, parent_id=source.id)
    f.post(9 * SEC, parent_id=source.id, author_is_media=True)
    assert f.last("ev-p1").level == "orange"
    return source


def test_deescalation_only_after_the_cooldown(feed):
    f = feed()
    _orange(f)
    last_post = f.now
    hold_until = None
    for _ in range(60):
        f.tick(MIN)
        snap = f.grader.event("ev-p1")
        if snap.grade.hold_until is not None and hold_until is None:
            hold_until = snap.grade.hold_until  # the 10-minute velocity has lapsed: cooling starts
            assert snap.level == "orange" and snap.grade.policy_level == "yellow"
            assert snap.grade.reasons[0].criterion == "cooldown"
        if f.now < (hold_until or f.now + MIN):
            assert f.alerts()[-1].to_level == "orange", f"de-escalated before the cool-down at {f.now}"
    assert hold_until is not None and hold_until - last_post >= timedelta(minutes=30)
    down = f.alerts()[-1]
    assert (down.from_level, down.to_level) == ("orange", "yellow")
    assert hold_until <= down.at <= hold_until + MIN
    check_alert_sequence(f.alerts())


def test_no_flapping_when_activity_returns_during_cooldown(feed):
    f = feed()
    source = _orange(f)
    for _ in range(25):
        f.tick(MIN)  # cooling down
    assert f.last("ev-p1").grade.hold_until is not None
    f.burst(30, 9 * SEC, parent_id=source.id)  # orange again before the cool-down ends
    for _ in range(30):
        f.tick(MIN)
    assert [a.to_level for a in f.alerts()] == ["blue", "yellow", "orange"]


def test_quiet_event_decays_to_blue_and_stays(feed):
    f = feed()
    _orange(f)
    for _ in range(30):
        f.tick(timedelta(hours=1))
    assert [a.to_level for a in f.alerts()] == ["blue", "yellow", "orange", "yellow", "blue"]
    assert f.grader.live == {}  # nothing left to watch: no more work per tick
    check_alert_sequence(f.alerts())


def test_three_level_scheme_by_policy_alone(feed, three_level):
    f = feed(three_level)
    source = f.post()
    f.burst(150, 3 * SEC, parent_id=source.id, author_is_media=lambda i: i in (10, 20))
    snap = f.last("ev-p1")
    assert snap.grade.scheme == "three_tier"
    assert (snap.level, snap.grade.label) == ("orange", "重大")
    assert [a.grade.label for a in f.alerts()] == ["一般", "较大", "重大"]
    assert snap.grade.policy_version == "three-tier.v1"


def test_override_wins_until_cleared(feed):
    f = feed()
    source = f.post()
    f.burst(5, MIN, parent_id=source.id)
    f.outputs.extend(f.grader.override("ev-p1", "red", "市委关注", "analyst-1", f.now))
    snap = f.last("ev-p1")
    assert snap.level == "red" and snap.grade.policy_level == "blue"
    assert snap.grade.override is not None and snap.grade.override.by == "analyst-1"
    assert snap.grade.reasons[0].criterion == "override" and "市委关注" in snap.grade.reasons[0].message
    f.burst(3, MIN, parent_id=source.id)
    assert f.last("ev-p1").level == "red"  # posts do not undo it
    f.outputs.extend(f.grader.override("ev-p1", None, "", "analyst-1", f.now))
    assert f.last("ev-p1").level == "blue"
    assert [a.to_level for a in f.alerts()] == ["blue", "red", "blue"]
    check_alert_sequence(f.alerts())


def test_override_with_expiry_lapses_in_event_time(feed):
    f = feed()
    source = f.post()
    f.burst(3, MIN, parent_id=source.id)
    f.grader.override("ev-p1", "yellow", "试看", "a", f.now, expires_at=f.now + 10 * MIN)
    f.tick(9 * MIN)
    assert f.grader.event("ev-p1").level == "yellow"
    f.tick(2 * MIN)
    assert f.grader.event("ev-p1").level == "blue"


def test_rising_flag_for_accelerating_growth(feed):
    f = feed()
    source = f.post()
    # Accelerating: gaps shrink from 3 min to 40 s; still below yellow when the flag goes up.
    for gap in (180, 150, 120, 100, 80, 60, 50, 40, 40, 40, 40):
        f.post(timedelta(seconds=gap), parent_id=source.id)
    snap = f.last("ev-p1")
    assert snap.level == "blue" and snap.rising and snap.grade.rising


def test_duplicate_post_is_ignored(feed):
    f = feed()
    post = f.post()
    assert f.grader.process(post) == []
    assert f.grader.event("ev-p1").post_count == 1


def test_set_policy_regrades_and_dry_run_reports(feed, four_level, three_level):
    f = feed()
    source = f.post()
    f.burst(40, 9 * SEC, parent_id=source.id)  # yellow at 30 posts an hour; 较大 wants 50
    assert f.last("ev-p1").level == "yellow"
    rows = f.grader.dry_run(three_level)
    assert [(r.event_id, r.old_level, r.new_level) for r in rows] == [("ev-p1", "yellow", "blue")]
    assert f.grader.policy is four_level and f.grader.event("ev-p1").level == "yellow"  # a dry run changes nothing
    out = f.grader.set_policy(three_level)
    snap = [o for o in out if isinstance(o, EventSnapshot)][-1]
    assert snap.grade.label == "一般" and snap.grade.policy_version == "three-tier.v1"
    (alert,) = [o for o in out if isinstance(o, Alert)]
    assert (alert.from_level, alert.to_level, alert.sequence) == ("yellow", "blue", 3)


def test_explain_lists_every_criterion(feed, four_level):
    f = feed()
    source = f.post()
    f.burst(3, MIN, parent_id=source.id)
    ex = f.grader.explain("ev-p1")
    n = sum(len(lv.require) + len(lv.criteria) for lv in four_level.levels)
    assert len(ex.evaluations) == n
    assert ex.policy_level == ex.grade.policy_level
    assert any(matched for _, matched in ex.evaluations)


def test_cooldown_starts_exactly_when_the_level_lapses(feed, four_level):
    """The engine sleeps between timed re-grades; a minute-by-minute brute force must agree with it."""
    f = feed()
    _orange(f)
    metrics = f.grader.events["ev-p1"].metrics.to_dict()
    cp = compile_policy(four_level)
    start = (f.now.timestamp() // 60 + 1) * 60
    lapse = None
    for minute in range(120):
        now = start + 60 * minute
        copy = EventMetrics.from_dict(metrics, four_level.windows, four_level.top_authors, now)
        if evaluate(cp, copy.live(now))[0] < 3:
            lapse = now
            break
    assert lapse is not None
    f.tick(timedelta(hours=3))
    (down,) = [a for a in f.alerts() if a.from_level == "orange"]
    assert down.at.timestamp() == lapse + four_level.cooldown_seconds


def test_a_relevant_source_post_makes_blue_through_its_empty_reposts(feed, four_level):
    """Blue's relevance criterion (total >= 0.8) on an event of one relevant source post and empty reposts: the
    reposts carry no evidence, so the event keeps its source post's relevance (with the mean over every post it
    fell to 0.95 / 3 after two reposts, and blue came only from the post count)."""
    from dataclasses import replace

    blue = next(lv for lv in four_level.levels if lv.warning_level == "blue")
    only_relevance = replace(blue, criteria=tuple(c for c in blue.criteria if c.metric == "relevance"))
    policy = replace(four_level, levels=(only_relevance, *four_level.levels[1:]))
    f = feed(policy)
    source = f.post(text="某局长受贿被纪委带走", relevance=0.95)
    f.burst(2, MIN, parent_id=source.id, text="转发微博")
    snap = f.last("ev-p1")
    assert snap.level == "blue" and snap.window("total").relevance == 0.95
    assert [(r.criterion, r.level) for r in snap.grade.reasons] == [("relevance", "blue")]
    quiet = feed(policy)
    quiet_source = quiet.post(text="今天天气很好")
    quiet.burst(2, MIN, parent_id=quiet_source.id, text="转发微博")
    assert quiet.last("ev-p1").level == "none"


def test_a_state_written_before_the_relevance_aggregate_changed_restores_and_continues(feed, four_level):
    """A grader snapshot of before (bucket/total lists without the count of posts with evidence, no source post
    score) restores: the event keeps the mean over all its posts, then grades on."""
    import json

    from services.grader.core import Grader

    f = feed()
    source = f.post(relevance=0.9)
    f.burst(3, MIN, parent_id=source.id)
    state = json.loads(json.dumps(f.grader.snapshot()))
    for row in state["events"]:
        m = row["metrics"]
        m.pop("source_relevance")
        m["total"] = m["total"][:12]
        m["buckets"] = [b[:13] for b in m["buckets"]]
    old = Grader.restore(state, four_level)
    assert old.event("ev-p1").window("total").relevance == pytest.approx(0.9 / 4)
    new = Grader.restore(json.loads(json.dumps(f.grader.snapshot())), four_level)
    assert new.event("ev-p1").window("total").relevance == pytest.approx(0.9)
    later = source.created_at + 10 * MIN
    out = old.process(PostView("p9", later, author_id="u9", parent_id=source.id, relevance=0.8))
    assert [o.post_count for o in out if isinstance(o, EventSnapshot)] == [5]
    assert old.event("ev-p1").window("total").relevance == pytest.approx(1.7 / 5)
