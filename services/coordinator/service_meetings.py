"""Meetings, leaders' instructions and the audit log of the coordinator's API (see ``service.py`` for the rules of
need-to-know): office-only actions, partners see the meetings they are summoned to and no instructions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from qingfeng.storage import read_audit, verify_chain

from services.coordinator.core import meetings as meeting_core
from services.coordinator.core.cases import InvalidTransition
from services.coordinator.core.model import Decision, Instruction, Meeting, Rung
from services.coordinator.errors import FailedPrecondition, InvalidArgument, NotFound
from services.coordinator.service_base import ApiBase, AuditPage, Viewer, new_id, page_size

__all__ = ["MeetingApi"]


class MeetingApi(ApiBase):
    # meetings and instructions -------------------------------------------------------------------------------------
    async def convene(
        self,
        viewer: Viewer,
        kind: str,
        title: str,
        case_ids: Sequence[str],
        scheduled_at: datetime | None,
        attendees: Sequence[str],
    ) -> Meeting:
        self._office_only(viewer)
        now = self._clock()
        async with self._h.store.unit() as unit:
            agenda = [await self._visible_case(unit, viewer, c) for c in case_ids]
            if kind == "quarterly" and not agenda:
                agenda = sorted(await unit.open_cases(), key=lambda c: (-int(c.level), c.created_at))
            try:
                change = meeting_core.convene(
                    self._policies.routing,
                    kind,
                    title,
                    agenda,
                    scheduled_at,
                    attendees,
                    viewer.principal,
                    viewer.agency,
                    now,
                    new_id("m"),
                )
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
        return change.meetings[0]

    async def list_meetings(self, viewer: Viewer, kind: str | None, case_id: str) -> list[Meeting]:
        async with self._h.store.unit() as unit:
            if case_id and not viewer.office:
                visible = await unit.case_ids_with_tasks_of(viewer.agency) if viewer.agency else frozenset()
                if case_id not in visible:
                    return []
            attendee = None if viewer.office else (viewer.agency or "\x00none")
            return await unit.meetings(kind=kind, case_id=case_id, attendee=attendee)

    async def record_minutes(
        self, viewer: Viewer, meeting_id: str, minutes: str, decisions: Sequence[Decision], present: Sequence[str]
    ) -> Meeting:
        self._office_only(viewer)
        now = self._clock()
        async with self._h.store.unit() as unit:
            meeting = await unit.meeting(meeting_id, lock=True)
            if meeting is None:
                raise NotFound("meeting", meeting_id)
            try:
                change = meeting_core.record_minutes(
                    self._policies.routing, meeting, minutes, decisions, present, viewer.principal, viewer.agency, now
                )
            except InvalidTransition as err:
                raise FailedPrecondition(str(err)) from err
            await self._commit(unit, change, now)
        return change.meetings[0]

    async def add_instruction(
        self,
        viewer: Viewer,
        case_id: str,
        leader: tuple[str, str, str],
        rung: Rung,
        text: str,
        issued_at: datetime | None,
        assign_to: Sequence[str],
        due_at: datetime | None,
    ) -> Instruction:
        self._office_only(viewer)
        if not text.strip():
            raise InvalidArgument.of("text", "required")
        now = self._clock()
        async with self._h.store.unit() as unit:
            case = await self._visible_case(unit, viewer, case_id, lock=True)
            draft = Instruction(
                new_id("i"),
                case.id,
                leader[0],
                leader[1],
                leader[2],
                rung,
                text,
                issued_at or now,
                now,
                viewer.principal,
            )
            stored, change = meeting_core.add_instruction(
                self._policies.routing, case, draft, assign_to, due_at, viewer.agency
            )
            await unit.add_instruction(stored)
            await self._commit(unit, change, now)
        return stored

    async def list_instructions(self, viewer: Viewer, case_id: str) -> list[Instruction]:
        now = self._clock()
        async with self._h.store.unit() as unit:
            await self._visible_case(unit, viewer, case_id)
            if not viewer.office:
                return []  # instructions are the leaders' words on the case: restricted
            await unit.audit_read(viewer.principal, viewer.agency, "instruction.list", f"cases/{case_id}", now)
            return await unit.instructions(case_id)

    # audit ---------------------------------------------------------------------------------------------------------
    async def audit_records(
        self,
        viewer: Viewer,
        *,
        from_seq: int,
        target: str,
        agency: str | None,
        start: datetime | None,
        end: datetime | None,
        size: int,
        token: str,
    ) -> AuditPage:
        self._office_only(viewer)
        limit = page_size(size, default=100, maximum=1000)
        after = max(from_seq - 1, 0)
        if token:
            if not token.isdigit():
                raise InvalidArgument.of("page_token", "not a token of this list")
            after = int(token)
        found: list[Any] = []
        async with self._h.store.unit() as unit:
            while len(found) < limit:
                chunk = await read_audit(unit.session, after_seq=after, limit=500)
                if not chunk:
                    after = 0
                    break
                for record in chunk:
                    after = record.seq
                    if (
                        (not target or record.target == target)
                        and (agency is None or record.agency == agency)
                        and (start is None or record.at >= start)
                        and (end is None or record.at < end)
                    ):
                        found.append(record)
                        if len(found) == limit:
                            break
        return AuditPage(found, str(after) if len(found) == limit and after else "")

    async def verify_audit(self, viewer: Viewer) -> tuple[bool, int, int]:
        """(valid, records checked, first invalid seq or 0) over the whole chain."""
        self._office_only(viewer)
        async with self._h.store.unit() as unit:
            check = await verify_chain(unit.session)
            total = await unit.audit_count()
        return check.ok, total, check.first_bad_seq or 0
