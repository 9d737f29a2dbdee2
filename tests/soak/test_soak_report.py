"""The soak's verdict (bench/_soak_report.py) on made-up observations: what counts as lost, repeated, late, grown."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _soak_observe import SeenAlert  # noqa: E402
from _soak_report import Fault, format_report, judge, latency_windows, memory_growth  # noqa: E402

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
