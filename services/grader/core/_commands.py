"""What analysts and operators ask of the grader besides the stream: fix a level by hand, switch the policy, and
see how another policy would grade the current events (Grader.override/set_policy/dry_run)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ._cooldown import LevelState
from .grading import compile_policy, rank_of
from .metrics import EventMetrics
from .model import LEVEL_RANK, LEVELS, DryRunRow, Output, Override
from .policy import Policy

if TYPE_CHECKING:
    from .engine import Grader

__all__ = ["dry_run", "override", "set_policy"]


def override(
    g: Grader, event_id: str, level: str | None, reason: str, by: str, at: datetime, expires_at: datetime | None
) -> list[Output]:
    """Fix an event's level by hand (level None clears it). Raises KeyError/ValueError on bad input."""
    ev = g._event(event_id)
    if level is None:
        ev.override = None
    else:
        if level not in LEVEL_RANK:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        if not reason.strip():
            raise ValueError("an override needs a reason")
        ev.override = Override(level, reason.strip(), by, at, expires_at)
    out: list[Output] = []
    dirty: dict[str, None] = {}
    g._regrade(ev, out, dirty, emit=True)
    g._flush(out, dirty)
    return out


def set_policy(g: Grader, policy: Policy) -> list[Output]:
    """Activate a new policy and regrade every event under it at once (no cool-down applies)."""
    old = g.policy
    g._use(policy)
    g.state_policy_version = policy.version
    out: list[Output] = []
    dirty: dict[str, None] = {}
    for ev in g.events.values():
        if policy.windows != old.windows or policy.top_authors != old.top_authors:
            ev.metrics.reconfigure(policy.windows, policy.top_authors, g.clock)
        if g.clock_at is not None:
            ev.state = LevelState(rank_of(g.cp, ev.metrics.live(g.clock))[0])
            g._regrade(ev, out, dirty, emit=True)
    g._flush(out, dirty)
    return out


def dry_run(g: Grader, policy: Policy) -> list[DryRunRow]:
    """How `policy` would grade every current event now, without changing anything."""
    cp = compile_policy(policy)
    rows = []
    for ev in g.events.values():
        metrics = ev.metrics
        if policy.windows != g.policy.windows or policy.top_authors != g.policy.top_authors:
            metrics = EventMetrics.from_dict(
                metrics.to_dict(), policy.windows, policy.top_authors, g.clock,
                g.config.bucket_seconds, g.config.retention_seconds,
            )  # fmt: skip
        raw = rank_of(cp, metrics.live(g.clock))[0]
        new = LEVEL_RANK[ev.override.level] if ev.override else raw
        rows.append(DryRunRow(ev.id, g.clusterer.title(ev.id), LEVELS[ev.level], LEVELS[new]))
    return rows
