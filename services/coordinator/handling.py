"""What the coordinator does with its inputs: alerts and event snapshots (merge redirects) from the grader,
publications from the publisher, and its own durable timers. Each input is one transaction of the SQL store:
processed-once check, the pure core, then rows + outbox + audit together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from services.coordinator.adapters.sql import SqlStore, Unit
from services.coordinator.core.cases import AlertView, ack_timer_fired, apply_alert, open_case, publication_published
from services.coordinator.core.meetings import quarterly_meeting, quarterly_timer
from services.coordinator.core.model import Change, Level, Timer
from services.coordinator.core.policy import Directory, Playbooks, RoutingPolicy
from services.coordinator.core.tasks import task_timer_fired, task_timers

__all__ = ["Handling", "Policies"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Policies:
    routing: RoutingPolicy
    playbooks: Playbooks
    directory: Directory


class Handling:
    """The input side of the coordinator (the consumers and the deadline loop call it)."""

    def __init__(self, store: SqlStore, policies: Policies) -> None:
        self.store = store
        self.policies = policies

    async def commit(self, unit: Unit, change: Change, now: datetime) -> None:
        """Every change also re-arms the supervision timers of the tasks it touches."""
        await unit.apply(change + task_timers(self.policies.routing, change.tasks), now)

    async def on_alert(self, alert: AlertView, now: datetime) -> str | None:
        """Open or update the event's case (one case per event: replays and merged events land on it); the case id."""
        p = self.policies
        async with self.store.unit() as unit:
            if not await unit.first_time(f"alert:{alert.id}", now):
                return await unit.case_id_for_event(await unit.resolve(alert.event_id))
            event_id = await unit.resolve(alert.event_id)
            case_id = await unit.case_id_for_event(event_id) or await unit.case_id_for_event(alert.event_id)
            view = replace(alert, event_id=event_id) if case_id is None else alert
            case = await unit.case(case_id, lock=True) if case_id else None
            if case is None:
                if alert.to_level < Level.BLUE:
                    return None
                change = open_case(p.routing, p.directory, view, now)
            else:
                change = apply_alert(p.routing, p.directory, case, view, now)
            await self.commit(unit, change, now)
            opened = change.case.id if change.case else case_id
            if opened:
                await unit.link(alert.event_id, opened)
                await unit.link(event_id, opened)
            return opened

    async def on_merge(self, gone: str, keep: str, now: datetime) -> None:
        """The grader merged event ``gone`` into ``keep``: later alerts of either go to one case (the older one's)."""
        async with self.store.unit() as unit:
            await unit.redirect(gone, keep)
            gone_case = await unit.case_id_for_event(gone)
            if gone_case is not None and await unit.case_id_for_event(keep) is None:
                await unit.link(keep, gone_case)
            await unit.audit_read("coordinator", None, "event.merge", f"events/{gone}", now, {"merged_into": keep})

    async def on_event_snapshot(self, event_id: str, post_ids: list[str], now: datetime) -> None:
        """Keep the posts the grader names for an event: the rapid report cites them."""
        if post_ids:
            async with self.store.unit() as unit:
                await unit.set_event_posts(event_id, post_ids)

    async def on_publication(self, publication_id: str, case_id: str, published_at: datetime, now: datetime) -> None:
        """A publication for the case is PUBLISHED: the golden-period / refutation clocks are met."""
        async with self.store.unit() as unit:
            if not case_id or not await unit.first_time(f"publication:{publication_id}:published", now):
                return
            case = await unit.case(case_id, lock=True)
            if case is None:
                _log.warning("publication %s names unknown case %s", publication_id, case_id)
                return
            await self.commit(unit, publication_published(case, publication_id, published_at, now), now)

    async def ensure_quarterly(self, now: datetime) -> None:
        async with self.store.unit() as unit:
            if not await unit.has_pending_timer("quarterly"):
                await unit.apply(Change(timers=(quarterly_timer(self.policies.routing, now),)), now)

    async def fire_due(self, now: datetime, *, limit: int = 100) -> int:
        """Fire up to ``limit`` due timers, one transaction each; how many this process fired. A timer another
        replica holds or fired is skipped for this round."""
        fired = 0
        tried: set[str] = set()
        while fired < limit:
            async with self.store.unit() as unit:
                timer = await unit.next_due_timer(now, skip=frozenset(tried))
                if timer is None:
                    return fired
                tried.add(timer.id)
                change = await self._effect(unit, timer, now)  # locks the case or task first
                if not await unit.claim_timer(timer.id, now):
                    continue  # the transaction ends without writing anything
                await self.commit(unit, change, now)
            fired += 1
        return fired

    async def _effect(self, unit: Unit, timer: Timer, now: datetime) -> Change:
        p = self.policies
        if timer.kind == "ack":
            case = await unit.case(timer.target, lock=True)
            return ack_timer_fired(p.routing, p.directory, case, timer.due_at, now) if case else Change()
        if timer.kind == "task":
            task = await unit.task(timer.target, lock=True)
            return task_timer_fired(p.routing, task, timer.due_at, now) if task else Change()
        if timer.kind == "quarterly":
            return quarterly_meeting(p.routing, await unit.open_cases(), timer.due_at, now)
        _log.error("unknown timer kind %s (%s)", timer.kind, timer.id)
        return Change()
