"""The report values refuse what a leader must never read: claims without posts, naive times, nonsense counts."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest

from services.coordinator.reports import (
    Claim,
    ClockStatistics,
    InvalidReport,
    KeyPost,
    LevelAssessment,
    LevelCount,
    LevelScheme,
    RapidReport,
    ResponseClock,
    StatisticsReport,
    TimelineEntry,
    WarningLevel,
    level_label,
)


def test_claim_keeps_its_posts() -> None:
    claim = Claim("转发超过五千次", ("p1", "p2"))
    assert claim.post_ids == ("p1", "p2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        claim.post_ids = ()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "post_ids", "message"),
    [
        ("转发超过五千次", (), "cites no post"),
        ("转发超过五千次", ("p1", "p1"), "repeated post id"),
        ("转发超过五千次", ("p1", " "), "empty or non-string"),
        ("转发超过五千次", ["p1"], "must be a tuple"),
        ("  ", ("p1",), "claim.text"),
    ],
)
def test_claim_refuses(text: str, post_ids: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidReport, match=message):
        Claim(text, post_ids)


def test_invalid_report_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="cites no post"):
        Claim("x", ())


def test_naive_times_are_refused() -> None:
    with pytest.raises(InvalidReport, match=r"timeline\.at"):
        TimelineEntry(datetime(2026, 11, 30, 10, 0), Claim("首帖", ("p1",)))
    with pytest.raises(InvalidReport, match=r"key_post\[p1\].published_at"):
        KeyPost("p1", author="a", text="t", reach=1, published_at=datetime(2026, 11, 30))


def test_key_post_reach_must_not_be_negative() -> None:
    with pytest.raises(InvalidReport, match=r"key_post\[p1\].reach"):
        KeyPost("p1", author="a", text="t", reach=-1)


def test_level_needs_reasons() -> None:
    with pytest.raises(InvalidReport, match=r"level\.reasons"):
        LevelAssessment(WarningLevel.RED, reasons=())


@pytest.mark.parametrize(
    ("level", "four", "three"),
    [
        (WarningLevel.BLUE, "蓝色预警（一般）", "一般"),
        (WarningLevel.YELLOW, "黄色预警（较重）", "较大"),
        (WarningLevel.ORANGE, "橙色预警（严重）", "重大"),
        (WarningLevel.RED, "红色预警（特别严重）", "重大"),
    ],
)
def test_level_labels_in_both_schemes(level: WarningLevel, four: str, three: str) -> None:
    assert level_label(level, LevelScheme.FOUR_COLOR) == four
    assert level_label(level, LevelScheme.THREE_TIER) == three
    assert LevelAssessment(level, (Claim("x", ("p",)),), scheme=LevelScheme.THREE_TIER).label == three


def test_rapid_report_rules(rapid_report: RapidReport) -> None:
    with pytest.raises(InvalidReport, match="issue_number"):
        dataclasses.replace(rapid_report, issue_number=0)
    with pytest.raises(InvalidReport, match="summary"):
        dataclasses.replace(rapid_report, summary=())
    with pytest.raises(InvalidReport, match="listed twice"):
        dataclasses.replace(rapid_report, key_posts=(*rapid_report.key_posts, rapid_report.key_posts[0]))
    with pytest.raises(InvalidReport, match="next_steps"):
        dataclasses.replace(rapid_report, next_steps=("",))


def test_cited_post_ids_in_reading_order_once(rapid_report: RapidReport) -> None:
    assert rapid_report.cited_post_ids() == ("wb-1001", "wb-1002", "news-7")
    assert len(rapid_report.claims()) == 2 + 2 + 2


def test_clock_statistics() -> None:
    stats = ClockStatistics(ResponseClock.GOLDEN_PERIOD, limit=timedelta(hours=2), met=3, missed=1, pending=5)
    assert stats.measured == 4
    assert stats.on_time_ratio == 0.75
    empty = ClockStatistics(ResponseClock.REFUTATION, limit=timedelta(hours=24), met=0, missed=0, pending=1)
    assert empty.on_time_ratio is None
    with pytest.raises(InvalidReport, match="limit"):
        ClockStatistics(ResponseClock.REFUTATION, limit=timedelta(0), met=0, missed=0, pending=0)
    with pytest.raises(InvalidReport, match="missed"):
        ClockStatistics(ResponseClock.REFUTATION, limit=timedelta(hours=1), met=0, missed=-1, pending=0)


def test_statistics_rules(statistics_report: StatisticsReport) -> None:
    assert statistics_report.cases_opened == 21
    with pytest.raises(InvalidReport, match="period_end"):
        dataclasses.replace(statistics_report, period_end=date(2026, 9, 30))
    with pytest.raises(InvalidReport, match="counted twice"):
        dataclasses.replace(
            statistics_report, cases_by_level=(*statistics_report.cases_by_level, LevelCount(WarningLevel.RED, 1, 0, 1))
        )
    with pytest.raises(InvalidReport, match="generated_at"):
        dataclasses.replace(statistics_report, generated_at=datetime(2026, 12, 31))
