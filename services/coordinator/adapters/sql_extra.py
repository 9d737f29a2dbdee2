"""The durable timers, attachment contents, event posts, report issue numbers and whole-table reads of the SQL
store's unit of work (``sql.Unit`` inherits them; see its docstring for the locking rules)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.coordinator.adapters.codec import decode
from services.coordinator.adapters.sql_schema import (
    attachments_t,
    audit_log,
    cases_t,
    event_posts_t,
    instructions_t,
    issues_t,
    links_t,
    tasks_t,
    timers_t,
)
from services.coordinator.core.model import Case, Instruction, Task, Timer

__all__ = ["TimersAndFiles", "rowcount"]


def rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", -1))


class TimersAndFiles:
    session: AsyncSession
    _pg: bool
    _node: str

    async def has_pending_timer(self, kind: str) -> bool:
        query = select(timers_t.c.id).where(timers_t.c.kind == kind, timers_t.c.state == "pending").limit(1)
        return (await self.session.execute(query)).first() is not None

    async def next_due_timer(self, now: datetime, *, skip: frozenset[str] = frozenset()) -> Timer | None:
        """The earliest pending timer due by ``now`` (not locked: ``claim_timer`` decides who fires it)."""
        query = (
            select(timers_t.c.id, timers_t.c.kind, timers_t.c.target, timers_t.c.due_at)
            .where(timers_t.c.state == "pending", timers_t.c.due_at <= now)
            .order_by(timers_t.c.due_at, timers_t.c.id)
            .limit(1)
        )
        if skip:
            query = query.where(timers_t.c.id.not_in(sorted(skip)))
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        due = row.due_at if row.due_at.tzinfo else row.due_at.replace(tzinfo=now.tzinfo)
        return Timer(row.id, row.kind, row.target, due)

    async def claim_timer(self, timer_id: str, now: datetime) -> bool:
        """Mark the timer fired in this transaction; False when another replica holds or already fired it.

        Call it after locking the timer's case or task, the order every writer follows (entity, then its timers).
        """
        query = select(timers_t.c.id).where(timers_t.c.id == timer_id, timers_t.c.state == "pending")
        if self._pg:
            query = query.with_for_update(skip_locked=True)
        if (await self.session.execute(query)).first() is None:
            return False
        claimed = await self.session.execute(
            update(timers_t)
            .where(timers_t.c.id == timer_id, timers_t.c.state == "pending")
            .values(state="fired", fired_at=now, fired_by=self._node)
        )
        return rowcount(claimed) == 1

    async def put_content(self, sha256: str, content: bytes) -> None:
        """Store an attachment's content once per hash (the same file attached twice is kept once)."""
        query = select(attachments_t.c.sha256).where(attachments_t.c.sha256 == sha256)
        if (await self.session.execute(query)).first() is None:
            await self.session.execute(
                insert(attachments_t).values(sha256=sha256, size_bytes=len(content), content=content)
            )

    async def content(self, sha256: str) -> bytes | None:
        query = select(attachments_t.c.content).where(attachments_t.c.sha256 == sha256)
        found = (await self.session.execute(query)).scalar_one_or_none()
        return bytes(found) if found is not None else None

    async def set_event_posts(self, event_id: str, post_ids: list[str]) -> None:
        query = select(event_posts_t.c.event_id).where(event_posts_t.c.event_id == event_id)
        if (await self.session.execute(query)).first() is None:
            await self.session.execute(insert(event_posts_t).values(event_id=event_id, post_ids=post_ids))
        else:
            stmt = update(event_posts_t).where(event_posts_t.c.event_id == event_id).values(post_ids=post_ids)
            await self.session.execute(stmt)

    async def posts_of_case(self, case_id: str) -> list[str]:
        """The representative posts of every event linked to the case (the event and those merged into it)."""
        events = select(links_t.c.event_id).where(links_t.c.case_id == case_id)
        rows = await self.session.execute(
            select(event_posts_t.c.post_ids)
            .where(event_posts_t.c.event_id.in_(events))
            .order_by(event_posts_t.c.event_id)
        )
        return [p for ids in rows.scalars() for p in ids]

    async def issue_number(self, case_id: str, now: datetime) -> int:
        """The case's rapid-report issue number (第N期), assigned the first time (numbers are consecutive)."""
        query = select(issues_t.c.issue_number).where(issues_t.c.case_id == case_id)
        found = (await self.session.execute(query)).scalar_one_or_none()
        if found is not None:
            return int(found)
        last = (await self.session.execute(select(func.max(issues_t.c.issue_number)))).scalar_one_or_none()
        number = int(last or 0) + 1
        await self.session.execute(insert(issues_t).values(case_id=case_id, issue_number=number, issued_at=now))
        return number

    async def all_records(self) -> tuple[list[Case], list[Task], list[Instruction]]:
        """Every case, task and instruction (the statistics' input; a deployment's volume is small)."""
        cases = [decode(Case, d) for d in (await self.session.execute(select(cases_t.c.doc))).scalars()]
        tasks = [decode(Task, d) for d in (await self.session.execute(select(tasks_t.c.doc))).scalars()]
        found = (await self.session.execute(select(instructions_t.c.doc))).scalars()
        return cases, tasks, [decode(Instruction, d) for d in found]

    async def audit_count(self) -> int:
        return int((await self.session.execute(select(func.count()).select_from(audit_log))).scalar_one())

    async def fired_timers(self) -> list[tuple[str, str, str]]:
        """(id, kind, fired_by) of every fired timer: what tests and operators check."""
        rows = await self.session.execute(
            select(timers_t.c.id, timers_t.c.kind, timers_t.c.fired_by).where(timers_t.c.state == "fired")
        )
        return [(r.id, r.kind, r.fired_by) for r in rows]
