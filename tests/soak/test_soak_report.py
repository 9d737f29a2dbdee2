"""The soak's verdict (bench/_soak_report.py) on made-up observations: what counts as lost, repeated, late, grown."""

from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _soak_observe import SeenAlert  # noqa: E402
from _soak_report import (  # noqa: E402
    Fault,
    _recovery_lines,
    back_under,
    format_report,
    from_kafka,
    judge,
    latency_windows,
    memory_growth,
    recovery,
    rss_series,
)

NONE, BLUE, YELLOW = 1, 2, 3


def _alert(arrived: float, latency: float, event: str, seq: int, frm: int, to: int) -> SeenAlert:
    return SeenAlert(arrived, latency, f"{event}:{seq}", event, frm, to, seq)


def test_lost_means_accepted_but_not_in_elasticsearch() -> None:
    verdict = judge({"a", "b", "c"}, Counter({"a": 1, "b": 2}), Counter({"a": 1, "b": 1}), [], 0, 0, [], 0.0, [])
    assert verdict.lost == 1 and verdict.sample_lost == ["c"]
    assert verdict.lost_before_kafka == 1
    assert verdict.produced_again == 1
    assert verdict.es_duplicates == 0


def test_a_post_in_two_index_generations_is_a_duplicate() -> None:
    verdict = judge({"a"}, Counter({"a": 1}), Counter({"a": 2}), [], 0, 0, [], 0.0, [])
    assert verdict.lost == 0 and verdict.es_duplicates == 1


def test_repeated_alert_ids_and_reopened_events_are_counted_once_each() -> None:
    alerts = [
        _alert(10, 0.1, "event:1", 1, NONE, BLUE),
        _alert(11, 0.1, "event:1", 2, BLUE, YELLOW),
        _alert(30, 9.0, "event:1", 1, NONE, BLUE),  # the same alert again after a restart
        _alert(31, 0.2, "event:2", 1, NONE, BLUE),
    ]
    verdict = judge(set(), Counter(), Counter(), alerts, 2, 0, [], 40.0, [])
    assert verdict.alerts == 3 and verdict.alert_copies == 1
    assert verdict.events_reopened == 0 and verdict.chain_breaks == 0
    # Latency over first copies only: the repeated copy's 9 s is reported as a repeat, not as a late alert.
    assert verdict.latency_p99 == pytest.approx(0.2)


def test_an_event_opened_twice_under_new_sequences_breaks_its_chain() -> None:
    alerts = [_alert(10, 0.1, "event:1", 1, NONE, BLUE), _alert(20, 0.1, "event:1", 2, NONE, BLUE)]
    verdict = judge(set(), Counter(), Counter(), alerts, 1, 0, [], 30.0, [])
    assert verdict.events_reopened == 1 and verdict.chain_breaks == 1


def test_recovery_is_the_last_slow_alert_after_the_fault_healed() -> None:
    faults = [Fault("kill -9 grader", 100.0, 110.0), Fault("restart kafka", 200.0, 215.0)]
    alerts = [
        _alert(105, 0.5, "e:1", 1, NONE, BLUE),
        _alert(125, 4.0, "e:2", 1, NONE, BLUE),  # slow, 15 s after the grader was back
        _alert(150, 0.3, "e:3", 1, NONE, BLUE),
        _alert(220, 0.3, "e:4", 1, NONE, BLUE),
    ]
    verdict = judge(set(), Counter(), Counter(), alerts, 4, 0, faults, 300.0, [])
    assert [round(r or 0, 1) for _, r in verdict.recoveries] == [15.0, 0.0]
    report = format_report(verdict)
    assert "after kill -9 grader" in report and "15.0 s after healthy" in report


def test_latency_windows_group_by_arrival() -> None:
    alerts = [_alert(1000 + t, lat, f"e:{t}", 1, NONE, BLUE) for t, lat in ((1, 0.1), (2, 0.3), (12, 3.0))]
    windows = latency_windows(alerts, 1000.0, 10.0)
    assert [(start, count) for start, count, _, _ in windows] == [(0.0, 2), (10.0, 1)]
    assert windows[1][3] == 3.0


def test_memory_growth_compares_after_warmup_with_the_end() -> None:
    samples = [(float(t), "grader", 7, 100_000 if t < 50 else 120_000) for t in range(0, 200, 2)]
    (memory,) = memory_growth(samples, {"grader": (7, 0.0, 200.0)}, warmup_s=10.0)
    assert memory.baseline_kib == 100_000 and memory.end_kib == 120_000
    assert memory.growth == pytest.approx(0.2)
    assert "MISSED" in format_report(judge(set(), Counter(), Counter(), [], 0, 0, [], 0.0, [memory]))


def test_a_process_that_lived_too_short_has_no_memory_verdict() -> None:
    (memory,) = memory_growth([(1.0, "collector", 3, 1)], {"collector": (3, 0.0, 30.0)}, warmup_s=10.0)
    assert memory.growth is None


def test_a_span_that_ends_slow_never_recovered() -> None:
    faults = [Fault("restart elasticsearch", 100.0, 160.0)]
    alerts = [_alert(150, 0.5, "e:1", 1, NONE, BLUE), _alert(290, 40.0, "e:2", 1, NONE, BLUE)]
    verdict = judge(set(), Counter(), Counter(), alerts, 2, 0, faults, 300.0, [])
    report = format_report(verdict, (2315.0, 888.0))
    assert "still > 2 s at the next fault/end" in report
    assert "888 posts/s answered" in report and "-62%" in report


def _entered(arrived: float, latency: float, n: int) -> SeenAlert:
    """An alert as ``from_kafka`` gives it: latency from the post's entry into Kafka."""
    return SeenAlert(arrived, latency, f"e{n}:1", f"e{n}", NONE, BLUE, 1, n)


def test_from_kafka_counts_from_the_posts_entry_and_leaves_out_unknown_posts() -> None:
    alerts = [
        SeenAlert(130.0, 30.0, "e:1", "e", NONE, BLUE, 1, graded_us=100_000_000),  # sent at 100 s
        SeenAlert(140.0, 1.0, "f:1", "f", NONE, BLUE, 1, graded_us=139_000_000),  # its post never seen
    ]
    entered = from_kafka(alerts, {100_000_000: 128.5})  # the post reached Kafka at 128.5 s (the broker was down)
    assert [(a.id, a.latency_s) for a in entered] == [("e:1", 1.5)]


def test_back_under_is_the_first_window_after_healthy_within_the_target() -> None:
    fault = Fault("restart kafka", 100.0, 120.0)
    alerts = [_alert(121, 9.0, "a", 1, NONE, BLUE), _alert(126, 3.0, "b", 1, NONE, BLUE),
              _alert(131, 0.5, "c", 1, NONE, BLUE), _alert(140, 4.0, "d", 1, NONE, BLUE)]  # fmt: skip
    assert back_under(fault, 200.0, alerts) == 15.0  # windows 120-125 (9 s), 125-130 (3 s), 130-135 (0.5 s)
    assert back_under(fault, 200.0, alerts[:2]) == math.inf
    assert back_under(fault, 200.0, []) is None


def test_a_recovery_separates_what_the_outage_held_from_posts_after_it() -> None:
    fault = Fault("restart kafka", 100.0, 150.0)
    entered = [
        _entered(95.0, 1.0, 1),  # before the fault
        _entered(152.0, 55.0, 2),  # in Kafka at 97 s, alerted after the restart: held by the outage
        _entered(160.0, 3.5, 3),  # into Kafka at 156.5 s: in the first 30 s after healthy
        _entered(190.0, 1.2, 4),  # into Kafka at 188.8 s: after the first 30 s
        _entered(200.0, 0.8, 5),
    ]
    r = recovery(fault, 300.0, entered, entered)
    assert (r.held, r.held_max_s) == (1, 55.0)
    assert r.before_p99 == 1.0 and r.first_p99 == 3.5 and r.later_p99 == 1.2
    assert r.first_alert_s == 2.0
    assert r.back_under_s == 40.0  # by entry: 155-160 holds 3.5 s, 185-190 the first within the target
    verdict = judge(set(), Counter(), Counter(), [], 0, 0, [fault], 300.0, [])
    assert verdict.recovered == []  # no post arrivals: no recovery by entry
    report = "\n".join(_recovery_lines([r]))
    assert "after restart kafka: into Kafka > 30 s after, p99 <= 2 s" in report and "met" in report
    assert (
        "during the fault (post in Kafka before healthy, alerted after the fault began): 1 alerts, p99 55.0 s" in report
    )


def test_posts_into_kafka_after_the_first_30_s_still_slow_miss_the_target() -> None:
    fault = Fault("restart kafka", 100.0, 150.0)
    r = recovery(fault, 300.0, [_entered(200.0, 4.0, 1)], [])
    assert r.later_p99 == 4.0
    assert "MISSED" in _recovery_lines([r])[0] and "+2.00 s" in _recovery_lines([r])[0]


def test_a_post_the_next_fault_held_counts_for_that_fault_not_for_the_recovery_before_it() -> None:
    fault = Fault("kill -9 grader", 100.0, 110.0)
    entered = [
        _entered(150.0, 0.5, 1),  # into Kafka at 149.5 s, after the first 30 s: within the target
        _entered(209.0, 10.0, 2),  # into Kafka at 199 s, 1 s before the next fault (at 200 s) held it
        _entered(206.0, 7.0, 3),  # into Kafka at 199 s too: held by the next fault, counted there
    ]
    r = recovery(fault, 200.0, entered, entered)
    assert r.later_p99 == 0.5
    assert back_under(fault, 200.0, entered, by_entry=True) == 40.0  # the window 145-150 s
    # Into Kafka at 197 s: already waiting 3 s, over the target, when the next fault began.
    slow = recovery(fault, 200.0, [*entered, _entered(203.0, 6.0, 4)], entered)
    assert slow.later_p99 == 6.0


def test_rss_series_gives_each_interval_median_across_incarnations() -> None:
    samples = [(100.0, "grader", 7, 1024 * 500), (110.0, "grader", 7, 1024 * 520), (130.0, "grader", 7, 1024 * 600),
               (161.0, "grader", 9, 1024 * 400), (105.0, "collector", 8, 1024 * 300)]  # fmt: skip
    assert rss_series(samples, "grader", 100.0, every_s=30.0) == "0s 510, 30s 600, 60s 400"
