"""Soak with faults, short form (issue 13): bench/soak.py for one minute with one fault of each kind.

The soak starts its own Kafka and Elasticsearch (ports 29092/29200, a stack home of its own; the shared stack is
never restarted), the collector (fetch role), a separate indexer and the grader, feeds the shared posts through
ImportPosts, and in turn kills -9 the collector, the indexer and the grader and restarts the broker and
Elasticsearch. Its summary table is printed (run with ``-s`` to see it).

Asserted: no accepted post is lost (every id the collector accepted is in Elasticsearch, in one copy), and the grader
alerts once per level change and opens no event twice across its kill -9 (0352095). Expected failures, each with its
reason below, all non-strict (whether a run hits them is timing): a post produced again after a kill -9 (the
collector now reads its posts topic's tail at start, which closed the window it was found in); two intermittent
findings. Latency and memory are printed, not asserted: one minute on two shared cores is
too short for a memory trend, and p99 depends on what else the machine runs.

Long form (10 minutes at 2,315 posts/s, the issue's target): ``QF_SOAK_LONG=1 .venv/bin/pytest tests/soak -s`` or
``.venv/bin/python bench/soak.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from soak import SoakOptions, SoakResult, run_soak  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.data]


# Findings of this soak that are not fixed yet (see the report of the change that added it):
_WEDGED = (
    "intermittent: after the broker restart the collector's producer answered every ImportPosts with "
    "OutOfOrderSequenceNumber (Kafka error 45) until the collector itself was restarted (1 of 2 short runs)"
)
_REPRODUCED = (
    "issue 13: a kill -9 between Kafka's ack and the database write no longer re-produces (the restarted collector "
    "reads its posts topic's tail, adapters/produced_tail.py; 0 re-produced in the one short run since), but not "
    "guaranteed: a send that failed on the client's side (broker restart) yet was written is produced again by the "
    "retry, and a tail read cut off by its time bound misses the newest ids; not strict (timing)"
)
_STALE_EVENTS = (
    "intermittent: 6 of 377 live (not merged) events shared a representative post with another in 1 of 2 short runs "
    "(a merged event's snapshot left stale after a grader kill -9?); 0 in the other"
)


def _downloads_missing() -> str | None:
    from qingfeng.cli import es_server
    from qingfeng.cli.maven import kafka_libs_ready
    from qingfeng.cli.stack_config import load_stack_config

    shared = load_stack_config({k: v for k, v in os.environ.items() if not k.startswith("QF_STACK_")})
    if not kafka_libs_ready(shared) or not es_server.installed(shared):
        return f"the stack's downloads are not in {shared.home}: run `.venv/bin/qingfeng stack up` once"
    return None


@pytest.fixture(scope="module")
def soak(shared_data: Path) -> SoakResult:
    problem = _downloads_missing()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI: {problem}", pytrace=False)
        pytest.skip(problem)
    long_form = bool(os.environ.get("QF_SOAK_LONG"))
    options = SoakOptions(data=shared_data) if long_form else SoakOptions.short(data=shared_data)
    result = run_soak(options)
    print(result.report)
    return result


def test_every_fault_was_injected_and_healed(soak: SoakResult) -> None:
    assert [fault.name for fault in soak.faults] == [
        "kill -9 collector",
        "kill -9 indexer",
        "kill -9 grader",
        "restart kafka",
        "restart elasticsearch",
    ]
    assert all(fault.healthy >= fault.began for fault in soak.faults)
    assert soak.feed.accepted > 0


@pytest.mark.xfail(reason=_WEDGED, strict=False)
def test_collector_answers_again_after_every_fault(soak: SoakResult) -> None:
    # Lines still unanswered 90 s after the last fault healed: ImportPosts never went through again.
    assert soak.feed.unanswered_lines == 0, soak.report


def test_no_accepted_post_is_lost(soak: SoakResult) -> None:
    assert soak.drained, "the indexer and the grader did not catch up after the soak:\n" + soak.report
    assert soak.verdict.lost == 0, soak.report
    assert soak.verdict.es_duplicates == 0, soak.report


def test_alerts_flowed_during_the_soak(soak: SoakResult) -> None:
    assert soak.verdict.alerts > 0 and soak.verdict.latency_p99 is not None, soak.report


@pytest.mark.xfail(reason=_REPRODUCED, strict=False)
def test_collector_produces_each_post_once(soak: SoakResult) -> None:
    assert soak.verdict.produced_again == 0, soak.report


def test_each_level_change_alerted_once(soak: SoakResult) -> None:
    assert (soak.verdict.alert_copies, soak.verdict.events_reopened) == (0, 0), soak.report


@pytest.mark.xfail(reason=_STALE_EVENTS, strict=False)
def test_no_event_twice_in_elasticsearch(soak: SoakResult) -> None:
    assert soak.verdict.duplicate_events == 0, soak.report
