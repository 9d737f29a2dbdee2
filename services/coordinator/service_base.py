"""The shared part of the coordinator's API: the caller as the coordinator sees it, paging, and the need-to-know
checks every method goes through (see ``service.py``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.coordinator.adapters.sql import Unit
from services.coordinator.core.model import OFFICE_AGENCIES, Case, Change, Task
from services.coordinator.errors import InvalidArgument, NotFound, PermissionDenied
from services.coordinator.handling import Handling
from services.coordinator.ports import Clock

__all__ = ["ApiBase", "AuditPage", "Viewer", "new_id", "page_size"]

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True)
class Viewer:
    """The verified caller as the coordinator sees it."""

    principal: str
    agency: str | None
    roles: frozenset[str] = frozenset()

    @property
    def office(self) -> bool:
        return self.agency in OFFICE_AGENCIES


@dataclass(frozen=True)
class AuditPage:
    records: list[Any]
    next_token: str


def page_size(value: int, *, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if value < 0:
        raise InvalidArgument.of("page_size", "must not be negative")
    return min(value or default, maximum)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


class ApiBase:
    """What every part of the API shares: the store, the clock and the need-to-know checks."""

    def __init__(self, handling: Handling, clock: Clock) -> None:
        self._h = handling
        self._clock = clock

    @property
    def _policies(self) -> Any:
        return self._h.policies

    def _office_only(self, viewer: Viewer) -> None:
        if not viewer.office:
            raise PermissionDenied(f"agency {viewer.agency!r} may not do this (office only)")

    async def _visible_case(self, unit: Unit, viewer: Viewer, case_id: str, *, lock: bool = False) -> Case:
        if not case_id:
            raise InvalidArgument.of("case_id", "required")
        if not viewer.office and (
            viewer.agency is None or case_id not in await unit.case_ids_with_tasks_of(viewer.agency)
        ):
            raise NotFound("case", case_id)
        case = await unit.case(case_id, lock=lock)
        if case is None:
            raise NotFound("case", case_id)
        return case

    async def _visible_task(self, unit: Unit, viewer: Viewer, task_id: str) -> Task:
        task = await unit.task(task_id, lock=True) if task_id else None
        if task is None or (not viewer.office and task.agency != viewer.agency):
            raise NotFound("task", task_id)
        return task

    async def _commit(self, unit: Unit, change: Change, now: datetime) -> None:
        await self._h.commit(unit, change, now)
