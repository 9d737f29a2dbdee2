"""What the demo made happen, asked of the running suite through the gateway like any partner would.

After the replay the grader's alerts reach the coordinator, which opens cases and routes them by level. The summary
waits until the number of cases stops growing (or ``wait_s`` passes), then prints the events by level, the cases
opened and the rung each was routed to, and the people the directory names for it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Final

import grpc

from qingfeng.v1 import case_pb2, case_pb2_grpc, common_pb2, event_pb2, event_pb2_grpc

__all__ = ["Summary", "collect", "print_summary"]

_LEVEL_NAMES: Final = {
    common_pb2.WARNING_LEVEL_BLUE: "blue 一般",
    common_pb2.WARNING_LEVEL_YELLOW: "yellow 较重",
    common_pb2.WARNING_LEVEL_ORANGE: "orange 严重",
    common_pb2.WARNING_LEVEL_RED: "red 特别严重",
}
_RUNG_NAMES: Final = {
    common_pb2.OFFICIAL_LEVEL_OPINION_OFFICE: "舆情办 opinion office",
    common_pb2.OFFICIAL_LEVEL_DEPUTY_STANDING_MEMBER: "分管常委 deputy standing member",
    common_pb2.OFFICIAL_LEVEL_SECRETARY: "副书记/书记 (deputy) secretary",
    common_pb2.OFFICIAL_LEVEL_MUNICIPAL_COMMITTEE: "市委 municipal committee",
}
_SHOWN_CASES: Final = 12


@dataclass(frozen=True)
class Summary:
    events_by_level: Counter[str]
    cases: tuple[case_pb2.Case, ...]


def _pages(fetch: Callable[[str], Any], items: str) -> Iterator[Any]:
    token = ""
    while True:
        reply = fetch(token)
        yield from getattr(reply, items)
        token = reply.next_page_token
        if not token:
            return


def collect(channel: grpc.Channel, metadata: list[tuple[str, str]], *, wait_s: float, settle_s: float = 6.0) -> Summary:
    """Events by level and the cases opened, once the case count has been steady for ``settle_s`` seconds."""
    cases_stub = case_pb2_grpc.CoordinatorServiceStub(channel)
    events_stub = event_pb2_grpc.GraderServiceStub(channel)

    def list_cases() -> tuple[case_pb2.Case, ...]:
        return tuple(
            _pages(
                lambda t: cases_stub.ListCases(
                    case_pb2.ListCasesRequest(page_size=500, page_token=t), metadata=metadata, timeout=10
                ),
                "cases",
            )
        )

    deadline = time.monotonic() + wait_s
    cases, steady_since = list_cases(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - steady_since < settle_s:
        time.sleep(1.0)
        latest = list_cases()
        if len(latest) != len(cases):
            cases, steady_since = latest, time.monotonic()
    events = _pages(
        lambda t: events_stub.ListEvents(
            event_pb2.ListEventsRequest(page_size=500, page_token=t), metadata=metadata, timeout=10
        ),
        "events",
    )
    by_level = Counter(_LEVEL_NAMES.get(e.grade.level, "none") for e in events)
    return Summary(events_by_level=by_level, cases=cases)


def print_summary(summary: Summary, out: IO[str]) -> None:
    print("\nWhat happened:", file=out)
    levels = ", ".join(f"{summary.events_by_level[name]} {name}" for name in _LEVEL_NAMES.values())
    print(f"  events graded   {levels} (events still in the grader's memory)", file=out)
    routed = Counter(_RUNG_NAMES.get(c.routed_to, "not routed") for c in summary.cases)
    notices = sum(1 for c in summary.cases if c.information_notice)
    print(f"  cases opened    {len(summary.cases)} ({notices} information notices for 宣传部, not 涉腐)", file=out)
    for rung, count in routed.most_common():
        print(f"    {count:>4} routed to {rung}", file=out)
    worst = sorted(summary.cases, key=lambda c: (-c.level, c.created_at.seconds))[:_SHOWN_CASES]
    for case in worst:
        people = ", ".join(p.display_name or p.id for p in case.routed_people) or "-"
        level = _LEVEL_NAMES.get(case.level, "-")
        print(
            f"    {case.id}  {level:<12}  → {_RUNG_NAMES.get(case.routed_to, '-')} ({people})  {case.title[:40]}",
            file=out,
        )
