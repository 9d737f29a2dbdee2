from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.publisher.core.clocks import GOLDEN_PERIOD, REFUTATION, response_clock
from services.publisher.core.model import Draft, Kind
from services.publisher.core.policy import Clocks

T0 = datetime(2026, 11, 30, 8, tzinfo=UTC)
CLOCKS = Clocks()


def draft(kind: Kind, level: str, **kw: object) -> Draft:
    base = Draft(id="d", case_id="c", kind=kind, title="t", body="b", author="a", created_at=T0, updated_at=T0,
                 level=level, clock_started_at=T0)  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def test_refutation_within_24h_met_and_missed() -> None:
    met = response_clock(draft(Kind.REFUTATION, "blue", published_at=T0 + timedelta(hours=23)), CLOCKS, T0)
    assert met is not None and (met.name, met.met, met.due_at) == (REFUTATION, True, T0 + timedelta(hours=24))
    late = response_clock(draft(Kind.REFUTATION, "blue", published_at=T0 + timedelta(hours=25)), CLOCKS, T0)
    assert late is not None and late.met is False


def test_golden_period_for_orange_and_red_only() -> None:
    clock = response_clock(draft(Kind.STATEMENT, "red"), CLOCKS, T0 + timedelta(hours=1))
    assert clock is not None and (clock.name, clock.met) == (GOLDEN_PERIOD, None)
    overdue = response_clock(draft(Kind.STATEMENT, "orange"), CLOCKS, T0 + timedelta(hours=3))
    assert overdue is not None and overdue.met is False
    assert response_clock(draft(Kind.STATEMENT, "blue"), CLOCKS, T0) is None


def test_the_requests_due_at_wins() -> None:
    due = T0 + timedelta(hours=6)
    clock = response_clock(draft(Kind.REFUTATION, "blue", due_at=due, published_at=T0 + timedelta(hours=7)), CLOCKS, T0)
    assert clock is not None and clock.due_at == due and clock.met is False
