"""Orange of the shipped policy (four-level.v4, issue #11): the platform's repost counts are one kind of signal among
eight, and orange still needs three kinds; speed alone, or the counts alone, never make it."""

from __future__ import annotations

from datetime import timedelta

SEC = timedelta(seconds=1)


def _orange_reasons(f, event_id: str) -> set[str]:
    snap = f.last(event_id)
    return {r.criterion for r in snap.grade.reasons if r.level == "orange"}


def test_fast_and_wide_with_a_reposted_source_is_orange(feed):
    f = feed()
    source = f.post(reposts=4600, comments=600)  # the 3539702516376403 shape: reposts high, comments under the bar
    f.burst(30, 10 * SEC, parent_id=source.id)  # 31 authors within 5 minutes: velocity in 10 min far above 144/h
    f.burst(40, 10 * SEC, parent_id=source.id)  # 71 distinct authors in the hour
    assert f.last("ev-p1").level == "orange"
    assert {"velocity", "distinct_authors", "reposts"} <= _orange_reasons(f, "ev-p1")


def test_speed_alone_stays_yellow(feed):
    f = feed()
    source = f.post(reposts=1999, comments=999)  # both just under the bars
    f.burst(70, 10 * SEC, parent_id=source.id)
    assert f.last("ev-p1").level == "yellow"


def test_counts_alone_are_not_orange(feed):
    f = feed()
    f.post(reposts=50_000, comments=1000)  # attention and discussion, but a single post: two kinds of signal
    assert f.last("ev-p1").level == "yellow"  # yellow's 24 h comments and reposts


def test_one_speed_signal_with_reposts_and_comments_is_orange(feed):
    f = feed()
    source = f.post(reposts=5800, comments=1134)  # the 3489035374832682 shape: authors in 1 h, not velocity
    f.burst(66, 50 * SEC, parent_id=source.id)  # 67 authors in 55 minutes: at most 13 posts in any 10 minutes
    assert f.last("ev-p1").level == "orange"
    reasons = _orange_reasons(f, "ev-p1")
    assert {"distinct_authors", "reposts", "comments"} <= reasons and "velocity" not in reasons
