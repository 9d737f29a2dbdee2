"""The soak's post event-id check (bench/_soak_report.py ``event_id_check``): every post's ``event_id`` in
Elasticsearch against the grader's last assignment on the post-events topic, and the observer's reading of that
topic (a later record overwrites an earlier assignment)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _soak_observe import Observer  # noqa: E402
from _soak_report import event_id_check  # noqa: E402
from qingfeng.v1 import post_event_pb2  # noqa: E402


def _value(pairs: list[tuple[str, str]]) -> bytes:
    return post_event_pb2.PostEventAssignments(
        assignments=[post_event_pb2.PostEventAssignment(post_id=p, event_id=e) for p, e in pairs]
    ).SerializeToString()


def test_the_observer_keeps_each_posts_last_assignment() -> None:
    observer = Observer("127.0.0.1:1")
    observer._on_assignments(b"k", _value([("p1", "ea"), ("p2", "ea")]), 0.0)
    observer._on_assignments(b"k", b"\xff\xff not a message", 0.0)
    observer._on_assignments(b"k", _value([("p1", "eb")]), 0.0)  # ea merged into eb
    assert observer.last_event == {"p1": "eb", "p2": "ea"}


def test_documents_are_counted_against_the_last_assignment() -> None:
    last = {"p1": "eb", "p2": "ea", "p3": "ec", "p4": "ed"}
    found = {"p1": "eb", "p2": "ea", "p3": "ea", "p9": "ez"}  # p3 kept an older event, p4 has none
    check = event_id_check(last, found)
    assert (check.assigned, check.matching, check.missing, check.different) == (4, 2, 1, 1)
    assert check.sample == (("p3", "ec", "ea"), ("p4", "ed", ""))
    assert check.line() == (
        "post event ids: 2 of 4 as the grader's last assignment (1 without one, 1 with another); "
        "first: p3 ec != ea, p4 ed != -"
    )
    every = event_id_check({"p1": "eb"}, {"p1": "eb"})
    assert every.line() == "post event ids: 1 of 1 as the grader's last assignment" and every.sample == ()
