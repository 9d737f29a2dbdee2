"""Tasks of the agencies and their supervision (督办): created by hand or by a playbook, updated, completed; an
overdue task gets a reminder, then more, and from the policy's count on the supervision climbs to the convening
leaders. Each task's next check is a durable timer (``task_timers``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from services.coordinator.core.cases import SYSTEM, InvalidTransition
from services.coordinator.core.model import (
    Attachment,
    AuditEntry,
    Change,
    Progress,
    Rung,
    Supervision,
    Task,
    TaskStatus,
    Timer,
)
from services.coordinator.core.policy import RoutingPolicy
from services.coordinator.core.routing import make_id

__all__ = [
    "TooLarge",
    "Upload",
    "complete_task",
    "create_task",
    "next_check",
    "report_progress",
    "task_timer_fired",
    "task_timers",
    "update_task",
]

_ACTIVE = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)


def create_task(task: Task, actor: str, agency: str | None) -> Change:
    entry = AuditEntry(
        actor,
        "task.create",
        f"tasks/{task.id}",
        {"case_id": task.case_id, "agency": task.agency, "due_at": task.due_at.isoformat()},
        agency,
    )
    return Change(tasks=(task,), audit=(entry,))


def update_task(task: Task, changes: dict[str, object], actor: str, agency: str | None, now: datetime) -> Change:
    """Change description, due date, agency, assignee unit or status (done goes through ``complete_task``)."""
    if task.status not in _ACTIVE:
        raise InvalidTransition(f"task {task.id} is {task.status.value}")
    if changes.get("status") is TaskStatus.DONE:
        raise InvalidTransition("use CompleteTask to mark a task done (it needs a result)")
    updated = replace(task, updated_at=now, **changes)  # type: ignore[arg-type]
    if "due_at" in changes:
        updated = replace(updated, supervision=Supervision())  # a new deadline starts supervision afresh
    shown = {k: (v.isoformat() if isinstance(v, datetime) else getattr(v, "value", v)) for k, v in changes.items()}
    entry = AuditEntry(actor, "task.update", f"tasks/{task.id}", shown, agency)
    return Change(tasks=(updated,), audit=(entry,))


def complete_task(task: Task, result: str, actor: str, agency: str | None, now: datetime) -> Change:
    if task.status not in _ACTIVE:
        raise InvalidTransition(f"task {task.id} is {task.status.value}")
    done = replace(task, status=TaskStatus.DONE, result=result, completed_at=now, completed_by=actor, updated_at=now)
    entry = AuditEntry(actor, "task.complete", f"tasks/{task.id}", {"overdue": task.overdue(now)}, agency)
    return Change(tasks=(done,), cancel_timers=(("task", task.id),), audit=(entry,))


class TooLarge(ValueError):
    """An attachment over the policy's size limit, or one attachment too many for the task."""


@dataclass(frozen=True)
class Upload:
    name: str
    content_type: str
    content: bytes


def report_progress(
    policy: RoutingPolicy,
    task: Task,
    note: str,
    uploads: Sequence[Upload],
    actor: str,
    agency: str | None,
    now: datetime,
) -> tuple[Change, tuple[tuple[str, bytes], ...]]:
    """A progress update with attachments (each checked against the size limit and hashed); the change and the
    (sha256, content) pairs to store. Progress on a finished task is refused."""
    if task.status not in _ACTIVE:
        raise InvalidTransition(f"task {task.id} is {task.status.value}")
    rule = policy.attachments
    if len(task.attachments) + len(uploads) > rule.max_per_task:
        raise TooLarge(f"a task holds at most {rule.max_per_task} attachments")
    added: list[Attachment] = []
    contents: list[tuple[str, bytes]] = []
    for n, upload in enumerate(uploads):
        if len(upload.content) > rule.max_bytes:
            raise TooLarge(f"attachment {upload.name!r} has {len(upload.content)} bytes; the limit is {rule.max_bytes}")
        digest = hashlib.sha256(upload.content).hexdigest()
        added.append(
            Attachment(
                make_id("a", task.id, now.isoformat(), n, digest),
                upload.name or f"附件{n + 1}",
                upload.content_type or "application/octet-stream",
                len(upload.content),
                digest,
                now,
                actor,
            )
        )
        contents.append((digest, upload.content))
    progress = Progress(note, now, actor, tuple(a.id for a in added))
    status = TaskStatus.IN_PROGRESS if task.status is TaskStatus.OPEN else task.status
    updated = replace(
        task,
        progress=(*task.progress, progress),
        attachments=(*task.attachments, *added),
        status=status,
        updated_at=now,
    )
    entry = AuditEntry(
        actor,
        "task.progress",
        f"tasks/{task.id}",
        {"note": note, "attachments": [(a.name, a.size_bytes, a.sha256) for a in added]},
        agency,
    )
    return Change(tasks=(updated,), audit=(entry,)), tuple(contents)


def next_check(policy: RoutingPolicy, task: Task) -> datetime | None:
    """When supervision looks at the task next: its due date, then every ``remind_every`` after a reminder."""
    if task.status not in _ACTIVE:
        return None
    if task.supervision.last_reminded_at is None:
        return task.due_at
    return task.supervision.last_reminded_at + policy.supervision.remind_every


def task_timers(policy: RoutingPolicy, tasks: tuple[Task, ...]) -> Change:
    """Replace the pending timer of each task by its next check."""
    timers: list[Timer] = []
    for task in tasks:
        at = next_check(policy, task)
        if at is not None:
            timers.append(Timer(make_id("tm", "task", task.id, at.isoformat()), "task", task.id, at))
    return Change(timers=tuple(timers), cancel_timers=tuple(("task", t.id) for t in tasks))


def _supervisor(policy: RoutingPolicy, reminders: int) -> Rung:
    rule = policy.supervision
    step = max(0, reminders - rule.escalate_after + 1)
    return rule.ladder[min(step, len(rule.ladder) - 1)]


def task_timer_fired(policy: RoutingPolicy, task: Task, due_at: datetime, now: datetime) -> Change:
    """督办: the task is overdue at its check time; send a reminder and, after enough of them, move supervision up.

    A stale timer (the task is done, or its deadline or supervision moved since) changes nothing.
    """
    if task.status not in _ACTIVE or next_check(policy, task) != due_at:
        return Change()
    reminders = task.supervision.reminders + 1
    rung = _supervisor(policy, reminders)
    escalated = task.supervision.supervised_by is not None and rung > task.supervision.supervised_by
    supervised = replace(task, supervision=Supervision(reminders, now, rung), updated_at=now)
    action = "task.supervision_escalate" if escalated else "task.remind"
    entry = AuditEntry(
        SYSTEM, action, f"tasks/{task.id}", {"reminders": reminders, "supervised_by": rung.key, "agency": task.agency}
    )
    return Change(tasks=(supervised,), audit=(entry,))
