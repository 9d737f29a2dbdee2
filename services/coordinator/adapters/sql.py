"""The coordinator's SQL store: cases, tasks, meetings, instructions, processed inputs and durable timers, with the
transactional outbox (cases, tasks, publication requests) and the hash-chained audit log in the same transaction.

``SqlStore.unit()`` opens one transaction (a ``Unit``); ``Unit.apply(change)`` makes a core ``Change`` durable:
rows upserted, superseded timers cancelled and new ones stored, one outbox row per announcement, one audit record per
entry. A case row is read ``FOR UPDATE`` when it is about to change, so two replicas (or the consumer and an RPC)
never interleave on one case on PostgreSQL; SQLite serialises whole transactions (``BEGIN IMMEDIATE``).

Timers fire once: the deadline loop peeks at the earliest due timer, locks its case or task (the order every writer
follows: entity, then its timers, so no deadlock with the consumer or an RPC), then ``claim_timer`` takes the timer
row with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (another replica skips it while this transaction holds it) and
flips it to ``fired`` with a conditional UPDATE that must touch exactly one row, in the transaction that applies its
effect. A crash before the commit
leaves it pending (it fires after the restart); after the commit it is fired for good.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, Final

from opentelemetry import trace
from qingfeng.kafka.headers import content_type_for
from qingfeng.storage import AuditRecord, add_to_outbox, append_audit, session_factory
from qingfeng.v1 import case_pb2, publication_request_pb2
from sqlalchemy import and_, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.coordinator.adapters.codec import decode, encode
from services.coordinator.adapters.sql_extra import TimersAndFiles, rowcount
from services.coordinator.adapters.sql_schema import (
    ACTIVE_TASK,
    CaseFilter,
    OutboxTopics,
    TaskFilter,
    audit_log,
    cases_t,
    instructions_t,
    links_t,
    meetings_t,
    next_token,
    page_offset,
    processed_t,
    redirects_t,
    tasks_t,
    timers_t,
)
from services.coordinator.convert import audit_proto, case_proto, publication_request_proto, task_proto
from services.coordinator.core.model import Case, Change, Instruction, Meeting, Task, Timer

__all__ = ["CaseFilter", "OutboxTopics", "SqlStore", "TaskFilter", "Unit", "audit_log"]

_CT_CASE: Final = content_type_for(case_pb2.Case())
_CT_TASK: Final = content_type_for(case_pb2.Task())
_CT_AUDIT: Final = content_type_for(case_pb2.AuditRecord())
_CT_PUBLICATIONREQUEST: Final = content_type_for(publication_request_pb2.PublicationRequest())


def _trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


class Unit(TimersAndFiles):
    """One transaction of the coordinator's store."""

    def __init__(self, session: AsyncSession, topics: OutboxTopics, node: str) -> None:
        self.session = session
        self._topics = topics
        self._node = node
        self._pg = session.get_bind().dialect.name == "postgresql"

    # reads ---------------------------------------------------------------------------------------------------------
    async def case(self, case_id: str, *, lock: bool = False) -> Case | None:
        query = select(cases_t.c.doc).where(cases_t.c.id == case_id)
        doc = (await self.session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
        return decode(Case, doc) if doc is not None else None

    async def resolve(self, event_id: str) -> str:
        """The event an id stands for now, following the grader's merge redirects."""
        seen = {event_id}
        for _ in range(64):  # merge chains are short; the bound guards against a cycle
            target = (
                await self.session.execute(select(redirects_t.c.merged_into).where(redirects_t.c.event_id == event_id))
            ).scalar_one_or_none()
            if target is None or target in seen:
                return event_id
            seen.add(target)
            event_id = target
        return event_id

    async def case_id_for_event(self, event_id: str) -> str | None:
        return (
            await self.session.execute(select(links_t.c.case_id).where(links_t.c.event_id == event_id))
        ).scalar_one_or_none()

    async def cases(self, f: CaseFilter, *, page_size: int, page_token: str = "") -> tuple[list[Case], str]:
        offset = page_offset(page_token)
        query = select(cases_t.c.doc)
        conditions: list[Any] = []
        if f.status is not None:
            conditions.append(cases_t.c.status == f.status.value)
        if f.min_level is not None:
            conditions.append(cases_t.c.level >= int(f.min_level))
        if f.routed_to is not None:
            conditions.append(cases_t.c.routed_to == int(f.routed_to))
        if f.event_id:
            conditions.append(cases_t.c.event_id == f.event_id)
        if f.opened_from is not None:
            conditions.append(cases_t.c.created_at >= f.opened_from)
        if f.opened_to is not None:
            conditions.append(cases_t.c.created_at < f.opened_to)
        if f.ids is not None:
            conditions.append(cases_t.c.id.in_(sorted(f.ids)))
        query = query.where(and_(*conditions)) if conditions else query
        query = (
            query.order_by(
                cases_t.c.level.desc(), cases_t.c.ack_deadline.is_(None), cases_t.c.ack_deadline, cases_t.c.id
            )
            .offset(offset)
            .limit(page_size)
        )
        docs = (await self.session.execute(query)).scalars().all()
        return [decode(Case, d) for d in docs], next_token(offset, page_size, len(docs))

    async def open_cases(self) -> list[Case]:
        docs = (await self.session.execute(select(cases_t.c.doc).where(cases_t.c.status != "closed"))).scalars()
        return [decode(Case, d) for d in docs]

    async def task(self, task_id: str, *, lock: bool = False) -> Task | None:
        query = select(tasks_t.c.doc).where(tasks_t.c.id == task_id)
        doc = (await self.session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
        return decode(Task, doc) if doc is not None else None

    async def tasks(self, f: TaskFilter, *, page_size: int, page_token: str = "") -> tuple[list[Task], str]:
        offset = page_offset(page_token)
        conditions: list[Any] = []
        if f.case_id:
            conditions.append(tasks_t.c.case_id == f.case_id)
        if f.agency is not None:
            conditions.append(tasks_t.c.agency == f.agency)
        if f.status is not None:
            conditions.append(tasks_t.c.status == f.status.value)
        if f.overdue_at is not None:
            conditions += [tasks_t.c.status.in_(ACTIVE_TASK), tasks_t.c.due_at < f.overdue_at]
        query = select(tasks_t.c.doc)
        query = query.where(and_(*conditions)) if conditions else query
        query = query.order_by(tasks_t.c.due_at, tasks_t.c.id).offset(offset).limit(page_size)
        docs = (await self.session.execute(query)).scalars().all()
        return [decode(Task, d) for d in docs], next_token(offset, page_size, len(docs))

    async def case_ids_with_tasks_of(self, agency: str) -> frozenset[str]:
        rows = await self.session.execute(select(tasks_t.c.case_id).where(tasks_t.c.agency == agency).distinct())
        return frozenset(rows.scalars())

    async def meeting(self, meeting_id: str, *, lock: bool = False) -> Meeting | None:
        query = select(meetings_t.c.doc).where(meetings_t.c.id == meeting_id)
        doc = (await self.session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
        return decode(Meeting, doc) if doc is not None else None

    async def meetings(self, *, kind: str | None, case_id: str, attendee: str | None) -> list[Meeting]:
        query = select(meetings_t.c.doc).order_by(meetings_t.c.convened_at.desc(), meetings_t.c.id)
        if kind:
            query = query.where(meetings_t.c.kind == kind)
        found = [decode(Meeting, d) for d in (await self.session.execute(query)).scalars()]
        return [
            m for m in found if (not case_id or case_id in m.case_ids) and (attendee is None or attendee in m.attendees)
        ]

    async def instructions(self, case_id: str) -> list[Instruction]:
        query = select(instructions_t.c.doc).where(instructions_t.c.case_id == case_id)
        docs = (await self.session.execute(query.order_by(instructions_t.c.recorded_at, instructions_t.c.id))).scalars()
        return [decode(Instruction, d) for d in docs]

    # writes --------------------------------------------------------------------------------------------------------
    async def first_time(self, key: str, now: datetime) -> bool:
        """Record an input as processed; False when it was already (a replay): the caller then does nothing."""
        if (await self.session.execute(select(processed_t.c.key).where(processed_t.c.key == key))).first():
            return False
        try:
            async with self.session.begin_nested():
                await self.session.execute(insert(processed_t).values(key=key, at=now))
        except IntegrityError:
            return False
        return True

    async def link(self, event_id: str, case_id: str) -> None:
        if await self.case_id_for_event(event_id) is None:
            await self.session.execute(insert(links_t).values(event_id=event_id, case_id=case_id))

    async def redirect(self, gone: str, keep: str) -> None:
        existing = (
            await self.session.execute(select(redirects_t.c.merged_into).where(redirects_t.c.event_id == gone))
        ).scalar_one_or_none()
        if existing is None:
            await self.session.execute(insert(redirects_t).values(event_id=gone, merged_into=keep))
        elif existing != keep:
            await self.session.execute(
                update(redirects_t).where(redirects_t.c.event_id == gone).values(merged_into=keep)
            )

    async def add_instruction(self, instruction: Instruction) -> None:
        await self.session.execute(
            insert(instructions_t).values(
                id=instruction.id,
                case_id=instruction.case_id,
                recorded_at=instruction.recorded_at,
                doc=encode(instruction),
            )
        )

    async def audit_read(
        self,
        actor: str,
        agency: str | None,
        action: str,
        target: str,
        now: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Reads of restricted data are audited like changes."""
        body = {**(details or {}), "trace_id": _trace_id()}
        record = await append_audit(
            self.session, actor=actor, agency=agency, action=action, target=target, details=body, at=now
        )
        await self._stream_audit(record, now)

    async def _stream_audit(self, record: AuditRecord, now: datetime) -> None:
        """The record's copy for qingfeng.audit.v1 (keyed by the audited entity), in the same transaction."""
        if self._topics.audit:
            await add_to_outbox(
                self.session,
                topic=self._topics.audit,
                key=record.target,
                event_type="audit.recorded",
                event_id=f"audit:{record.seq}",
                payload=audit_proto(record).SerializeToString(),
                headers={"content-type": _CT_AUDIT},
                now=now,
            )

    async def apply(self, change: Change, now: datetime) -> None:
        last_seq = 0
        for entry in change.audit:
            details = {**entry.details, "trace_id": _trace_id()}
            record = await append_audit(
                self.session,
                actor=entry.actor,
                agency=entry.agency,
                action=entry.action,
                target=entry.target,
                details=details,
                at=now,
            )
            await self._stream_audit(record, now)
            last_seq = record.seq
        if change.case is not None:
            await self._upsert_case(change.case)
            payload = case_proto(change.case).SerializeToString()
            for n, event_type in enumerate(change.case_events):
                await add_to_outbox(
                    self.session,
                    topic=self._topics.cases,
                    key=change.case.id,
                    event_type=event_type,
                    event_id=f"{change.case.id}@{last_seq}.{n}:{event_type}",
                    payload=payload,
                    headers={"content-type": _CT_CASE},
                    now=now,
                )
        for task in change.tasks:
            created = await self._upsert_task(task)
            await add_to_outbox(
                self.session,
                topic=self._topics.tasks,
                key=task.id,
                event_type="task.created" if created else "task.updated",
                event_id=f"{task.id}@{last_seq}:{task.updated_at.isoformat()}",
                payload=task_proto(task, now).SerializeToString(),
                headers={"content-type": _CT_TASK},
                now=now,
            )
        for meeting in change.meetings:
            await self._upsert_meeting(meeting)
        for ask in change.publications:
            await add_to_outbox(
                self.session,
                topic=self._topics.publication_requests,
                key=ask.case_id,
                event_type="publication.requested",
                event_id=ask.id,
                payload=publication_request_proto(ask).SerializeToString(),
                headers={"content-type": _CT_PUBLICATIONREQUEST},
                now=now,
            )
        for kind, target in change.cancel_timers:
            await self.session.execute(
                update(timers_t)
                .where(timers_t.c.kind == kind, timers_t.c.target == target, timers_t.c.state == "pending")
                .values(state="cancelled")
            )
        for timer in change.timers:
            await self._put_timer(timer)

    async def _upsert_case(self, case: Case) -> None:
        values = {
            "event_id": case.event_id,
            "status": case.status.value,
            "level": int(case.level),
            "routed_to": int(case.routed_to),
            "ack_deadline": case.ack_deadline,
            "created_at": case.created_at,
            "updated_at": case.updated_at,
            "doc": encode(case),
        }
        done = await self.session.execute(update(cases_t).where(cases_t.c.id == case.id).values(**values))
        if rowcount(done) == 0:
            await self.session.execute(insert(cases_t).values(id=case.id, **values))
        await self.link(case.event_id, case.id)

    async def _upsert_task(self, task: Task) -> bool:
        values = {
            "case_id": task.case_id,
            "agency": task.agency,
            "status": task.status.value,
            "due_at": task.due_at,
            "created_at": task.created_at,
            "doc": encode(task),
        }
        done = await self.session.execute(update(tasks_t).where(tasks_t.c.id == task.id).values(**values))
        if rowcount(done) == 0:
            await self.session.execute(insert(tasks_t).values(id=task.id, **values))
            return True
        return False

    async def _upsert_meeting(self, meeting: Meeting) -> None:
        values = {"kind": meeting.kind, "convened_at": meeting.convened_at, "doc": encode(meeting)}
        done = await self.session.execute(update(meetings_t).where(meetings_t.c.id == meeting.id).values(**values))
        if rowcount(done) == 0:
            await self.session.execute(insert(meetings_t).values(id=meeting.id, **values))

    async def _put_timer(self, timer: Timer) -> None:
        # Same id = same deadline for the same thing: re-arming it (after a cancel in this change) keeps one row.
        done = await self.session.execute(
            update(timers_t).where(timers_t.c.id == timer.id, timers_t.c.state != "fired").values(state="pending")
        )
        if rowcount(done) == 0:
            exists = (await self.session.execute(select(timers_t.c.id).where(timers_t.c.id == timer.id))).first()
            if exists is None:
                await self.session.execute(
                    insert(timers_t).values(
                        id=timer.id, kind=timer.kind, target=timer.target, due_at=timer.due_at, state="pending"
                    )
                )


class SqlStore:
    """Opens units of work over the coordinator's database."""

    def __init__(self, engine: AsyncEngine, topics: OutboxTopics, *, node: str = "coordinator") -> None:
        self.engine = engine
        self.sessions = session_factory(engine)
        self._topics = topics
        self._node = node

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[Unit]:
        async with self.sessions() as session, session.begin():
            yield Unit(session, self._topics, self._node)
