"""The grader's whole state as JSON-able data, and a fresh grader filled from it (Grader.snapshot/restore)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ._record import STATE_FORMAT, event_in, event_out
from .clustering import Clusterer
from .metrics import EventMetrics
from .policy import Policy

if TYPE_CHECKING:
    from .engine import Grader

__all__ = ["load_state", "state_of"]


def state_of(g: Grader) -> dict[str, Any]:
    """The whole state as JSON-able data (store it with the consumed offsets)."""
    return {
        "format": STATE_FORMAT,
        "policy_version": g.state_policy_version,
        "clock": None if g.clock_at is None else g.clock,
        "clock_at": None if g.clock_at is None else g.clock_at.isoformat(),
        "next_expiry": None if g.clock_at is None else g.next_expiry,
        "clusterer": g.clusterer.to_dict(),
        "events": [event_out(ev, g._grade(ev)) for ev in g.events.values() if ev.evaluation or ev.grade],
        "live": [[eid, due] for eid, due in g.live.items()],
    }


def load_state(g: Grader, data: dict[str, Any], policy: Policy) -> None:
    """Fill `g`, a grader just built under `policy`, from state_of() output; windows are rebuilt under `policy`."""
    if data.get("format") != STATE_FORMAT:
        raise ValueError(f"not a grader state: format {data.get('format')!r}, expected {STATE_FORMAT!r}")
    if data["clock_at"] is not None:
        g.clock_at = datetime.fromisoformat(data["clock_at"])
        g.clock, g.next_expiry = data["clock"], data["next_expiry"]
    g.clusterer = Clusterer.from_dict(data["clusterer"], g.config.clustering)
    cfg = g.config
    for row in data["events"]:
        metrics = EventMetrics.from_dict(row["metrics"], policy.windows, policy.top_authors, None,
                                         cfg.bucket_seconds, cfg.retention_seconds)  # fmt: skip
        ev = event_in(row, metrics)
        g.events[ev.id] = ev
    for eid, due in data["live"]:
        g._schedule(eid, due)
    g.state_policy_version = data["policy_version"]
