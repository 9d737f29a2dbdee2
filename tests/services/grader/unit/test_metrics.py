"""Windowed metrics in event time: sliding, late posts, derived values, rebuild equivalence."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest

from services.grader.core import Contribution, EventMetrics, regional_scope

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC).timestamp()
WINDOWS = (("10m", 600.0), ("1h", 3600.0), ("24h", 86400.0))


def contrib(author: str = "a", followers: int = 10, **kw) -> Contribution:
    values = dict(author=author, followers=followers, reposts=0, comments=0, likes=0, offline=0, planned=0,
                  relevance=0, media=False, source="weibo_api", platform="weibo.com", regions=())  # fmt: skip
    values.update(kw)
    return Contribution(**values)


def at(m: EventMetrics, minutes: float):
    return m.view(datetime.fromtimestamp(T0 + minutes * 60, UTC), T0 + minutes * 60)


def test_windows_slide_with_event_time():
    m = EventMetrics(WINDOWS, top_k=2)
    for i in range(30):  # one post a minute for half an hour
        ts = T0 + i * 60
        m.add(contrib(f"u{i % 7}", followers=i, reposts=2, comments=1), ts, ts, ts - 600)
    v = at(m, 30)  # windows hold the whole minute buckets that end inside them
    assert (v["10m"].posts, v["1h"].posts, v["total"].posts) == (10, 30, 30)
    assert v["1h"].reposts == 60 and v["1h"].comments == 30
    assert v["1h"].distinct_authors == 7 and v["10m"].distinct_authors == 7
    assert v["10m"].velocity == 60.0 and v["1h"].velocity == 30.0
    assert v["10m"].acceleration == 0.0  # the 10 minutes before held 10 posts too
    assert v["1h"].top_author_reach == 29 + 28
    v = at(m, 45)
    assert (v["10m"].posts, v["1h"].posts) == (0, 30)
    assert v["10m"].acceleration == pytest.approx((0 - 6 * 5) / (1 / 6))  # 5 posts in the 10 min before
    v = at(m, 100)
    assert (v["1h"].posts, v["24h"].posts, v["total"].posts) == (0, 30, 30)
    assert v["1h"].distinct_authors == 0 and v["1h"].top_author_reach == 0
    assert m.next_change() == pytest.approx(T0 + 86400 + 60)


def test_late_posts_within_lateness_count_older_ones_only_in_total():
    m = EventMetrics(WINDOWS, top_k=3)
    now = T0 + 3600
    m.add(contrib("a"), now, now, now - 600)
    assert m.add(contrib("b"), now - 300, now, now - 600)  # 5 min late: accepted
    assert not m.add(contrib("c"), now - 1200, now, now - 600)  # 20 min late: beyond the watermark
    v = at(m, 60)
    assert (v["10m"].posts, v["1h"].posts, v["total"].posts) == (2, 2, 3)
    assert m.late == 1


def test_late_post_into_a_new_past_bucket_lands_in_the_right_windows():
    m = EventMetrics((("2m", 120.0), ("1h", 3600.0)), top_k=3)
    now = T0 + 600
    m.add(contrib("a"), now, now, now - 900)
    m.add(contrib("b"), now - 150, now, now - 900)  # outside 2m but inside the 2m before it
    m.add(contrib("c"), now - 400, now, now - 900)  # outside both 2m windows
    v = at(m, 10)
    assert (v["2m"].posts, v["1h"].posts) == (1, 3)
    assert v["2m"].acceleration == pytest.approx((30 - 30) / (2 / 60))


def test_derived_metrics():
    m = EventMetrics(WINDOWS, top_k=2)
    rows = [
        contrib("paper", 1_000_000, media=True, source="rss", platform="news.cn", regions=("330100",)),
        contrib("x", 50, offline=1, planned=1, relevance=800, regions=("330200",)),
        contrib("y", 70, offline=1, relevance=400),
    ]
    for i, c in enumerate(rows):
        m.add(c, T0 + i, T0 + i, T0)
    v = at(m, 1)["1h"]
    assert (v.media_involved, v.sources, v.platforms) == (1, 2, 2)
    assert v.regional_scope == 2  # two prefectures of Zhejiang
    assert v.offline_posts == 2 and v.offline_risk == pytest.approx(3 / 8)
    assert v.relevance == pytest.approx(0.6)  # the mean over the two posts with evidence; the paper's 0 is none
    assert v.top_author_reach == 1_000_070
    assert m.region_codes() == ("330100", "330200")


@pytest.mark.parametrize(
    ("codes", "scope"),
    [
        ((), 0),
        (("330106",), 1),
        (("330106", "330102"), 1),  # two districts of one prefecture
        (("330106", "330283"), 2),
        (("330000",), 2),
        (("330106", "110105"), 3),
    ],
)
def test_regional_scope(codes, scope):
    assert regional_scope(codes) == scope


def test_follower_growth_of_a_known_author_updates_top_reach():
    m = EventMetrics(WINDOWS, top_k=1)
    m.add(contrib("a", 10), T0, T0, T0)
    m.add(contrib("b", 20), T0 + 1, T0 + 1, T0)
    m.add(contrib("a", 500), T0 + 2, T0 + 2, T0)
    assert at(m, 1)["1h"].top_author_reach == 500


def test_incremental_windows_equal_a_rebuild_from_buckets():
    rng = random.Random(7)
    m = EventMetrics(WINDOWS, top_k=3)
    now = T0
    for _ in range(2000):
        now += rng.choice([1, 5, 30, 60, 300, 1800])
        ts = now - rng.choice([0, 0, 0, 30, 200, 900])  # some late, some beyond the 10-minute lateness
        c = contrib(f"u{rng.randrange(40)}", rng.randrange(10_000), reposts=rng.randrange(3),
                    offline=rng.random() < 0.05, regions=rng.choice([(), ("330100",), ("110000",)]),
                    relevance=rng.choice([0, 0, 0, 190, 850, 990]))  # fmt: skip
        m.add(c, ts, now, now - 600)
        if rng.random() < 0.02:
            copy = EventMetrics.from_dict(json.loads(json.dumps(m.to_dict())), WINDOWS, 3, now)
            when = datetime.fromtimestamp(now, UTC)
            assert copy.view(when, now) == m.view(when, now)


def test_empty_reposts_do_not_dilute_event_relevance():
    """A source post scoring 0.9 and fifty reposts without evidence: the event's relevance stays 0.9 (the mean
    over all posts gave 0.018, under the routing 0.5 and the blue 0.8)."""
    m = EventMetrics(WINDOWS, top_k=3)
    m.add(contrib("src", relevance=900), T0, T0, T0 - 600)
    for i in range(50):
        m.add(contrib(f"r{i}"), T0 + 10 + i, T0 + 10 + i, T0 - 600)
    v = at(m, 1)
    assert v["total"].relevance == pytest.approx(0.9) and v["1h"].relevance == pytest.approx(0.9)
    m.add(contrib("other", relevance=100), T0 + 70, T0 + 70, T0 - 600)
    v = at(m, 2)
    assert v["1h"].relevance == pytest.approx(0.5)  # a sliding window: the mean over its posts with evidence
    assert v["total"].relevance == pytest.approx(0.9)  # the lifetime: the source post's score is the larger
    empty = EventMetrics(WINDOWS, top_k=3)
    empty.add(contrib("x"), T0, T0, T0 - 600)
    assert at(empty, 1)["total"].relevance == 0.0


def test_weak_replies_do_not_sink_a_relevant_source_and_replies_can_lift_a_silent_one():
    m = EventMetrics(WINDOWS, top_k=3)
    m.add(contrib("src", relevance=990), T0, T0, T0 - 600)
    for i in range(4):
        m.add(contrib(f"r{i}", relevance=190), T0 + 1 + i, T0 + 1 + i, T0 - 600)
    v = at(m, 1)
    assert v["1h"].relevance == pytest.approx((0.99 + 4 * 0.19) / 5)
    assert v["total"].relevance == pytest.approx(0.99)
    silent = EventMetrics(WINDOWS, top_k=3)
    silent.add(contrib("src"), T0, T0, T0 - 600)  # a source post without evidence (a picture, a link)
    for i in range(3):
        silent.add(contrib(f"r{i}", relevance=870), T0 + 1 + i, T0 + 1 + i, T0 - 600)
    assert at(silent, 1)["total"].relevance == pytest.approx(0.87)
    late = EventMetrics(WINDOWS, top_k=3)
    late.add(contrib("reply", relevance=190), T0 + 60, T0 + 60, T0 - 600)
    late.add(contrib("src", relevance=870), T0, T0 + 60, T0 - 600)  # the source post arrives after a reply
    assert at(late, 1)["total"].relevance == pytest.approx(0.87)


def test_a_merged_event_keeps_the_older_source_post():
    old, young = EventMetrics(WINDOWS, top_k=3), EventMetrics(WINDOWS, top_k=3)
    old.add(contrib("a", relevance=870), T0, T0, T0 - 600)
    old.add(contrib("a2"), T0 + 1, T0 + 1, T0 - 600)
    young.add(contrib("b", relevance=190), T0 + 30, T0 + 30, T0 - 600)
    young.merge(old, T0 + 30)
    assert young.total.relevance == pytest.approx(0.87)  # max(0.87 source, (0.87 + 0.19) / 2)
    assert young.view(datetime.fromtimestamp(T0 + 30, UTC))["1h"].relevance == pytest.approx(0.53)


def test_relevance_leaves_a_window_with_its_bucket():
    m = EventMetrics(WINDOWS, top_k=3)
    m.add(contrib("a", relevance=900), T0, T0, T0 - 600)
    m.add(contrib("b", relevance=300), T0 + 1200, T0 + 1200, T0 + 600)
    v = at(m, 20)
    assert v["10m"].relevance == pytest.approx(0.3)  # the first post's bucket left the 10-minute window
    assert v["1h"].relevance == pytest.approx(0.6) and v["total"].relevance == pytest.approx(0.9)


def test_states_written_before_relevance_posts_restore_with_the_old_mean():
    """Bucket and total lists of 12 items (no count of posts with evidence, appended 13th since) and no source
    post's score still load: the event keeps the mean over all its posts it had, and new posts then count with
    evidence. A state of now restores exactly."""
    m = EventMetrics(WINDOWS, top_k=3)
    m.add(contrib("a", relevance=800), T0, T0, T0 - 600)
    m.add(contrib("b"), T0 + 1, T0 + 1, T0 - 600)
    data = json.loads(json.dumps(m.to_dict()))
    assert len(data["total"]) == 13 and all(len(b) == 14 for b in data["buckets"])
    old = {k: v for k, v in data.items() if k != "source_relevance"}
    old.update(total=data["total"][:12], buckets=[b[:13] for b in data["buckets"]])
    restored = EventMetrics.from_dict(old, WINDOWS, 3, T0 + 1)
    assert restored.total.relevance == pytest.approx(0.4)  # as the old state graded it: 800 / 2 posts
    assert restored.view(datetime.fromtimestamp(T0 + 1, UTC))["1h"].relevance == pytest.approx(0.4)
    restored.add(contrib("c", relevance=500), T0 + 2, T0 + 2, T0 - 600)
    assert restored.total.relevance == pytest.approx(1.3 / 3)
    same = EventMetrics.from_dict(data, WINDOWS, 3, T0 + 1)
    when = datetime.fromtimestamp(T0 + 1, UTC)
    assert same.view(when) == m.view(when, T0 + 1) and same.total.relevance == pytest.approx(0.8)


def test_window_records_equal_the_window_properties_the_policy_reads():
    """view() builds its records with the Window properties inlined (hot path): they must agree."""
    rng = random.Random(11)
    m = EventMetrics(WINDOWS, top_k=2)
    now = T0
    for i in range(400):
        now += rng.choice([1, 20, 90, 700])
        c = contrib(f"u{rng.randrange(30)}", rng.randrange(5000), offline=rng.random() < 0.1,
                    planned=rng.random() < 0.05, relevance=rng.choice([0, 0, 190, 870]),
                    regions=rng.choice([(), ("330100",), ("110000",), ("330200",), ("330200", "330100")]))  # fmt: skip
        m.add(c, now, now, now - 600)
        if i % 7 == 0:
            view = m.view(datetime.fromtimestamp(now, UTC), now)
            for name, w in m.by_name.items():
                r = view[name]
                props = (w.velocity, w.acceleration, w.top_author_reach, w.regional_scope, w.offline_risk, w.relevance)
                assert (r.velocity, r.acceleration, r.top_author_reach, r.regional_scope, r.offline_risk,
                        r.relevance) == pytest.approx(props)  # fmt: skip
                assert (r.distinct_authors, r.sources, r.media_involved) == (
                    w.distinct_authors, w.sources, w.media_involved)  # fmt: skip
            codes = m.total.by_region  # region_codes() is cached while the lifetime counts stand still
            fresh = sorted(codes, key=lambda c: (c.endswith("0000"), c.endswith("00"), -codes[c], c))
            assert list(m.region_codes()) == fresh
