"""The coordinator's tables (mirroring ``migrations/versions``), list filters and page tokens of the SQL store."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from qingfeng.storage import audit_tables
from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, LargeBinary, MetaData, String, Table

from services.coordinator.core.model import CaseStatus, Level, Rung, TaskStatus
from services.coordinator.errors import InvalidPageToken

__all__ = [
    "ACTIVE_TASK",
    "CaseFilter",
    "OutboxTopics",
    "TaskFilter",
    "attachments_t",
    "audit_log",
    "cases_t",
    "event_posts_t",
    "instructions_t",
    "issues_t",
    "links_t",
    "meetings_t",
    "next_token",
    "page_offset",
    "processed_t",
    "redirects_t",
    "tasks_t",
    "timers_t",
]

_TS = DateTime(timezone=True)

metadata = MetaData()
audit_log, _audit_head = audit_tables(metadata)
cases_t = Table(
    "coord_cases",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("event_id", String(255)),
    Column("status", String(32)),
    Column("level", Integer()),
    Column("routed_to", Integer()),
    Column("ack_deadline", _TS),
    Column("created_at", _TS),
    Column("updated_at", _TS),
    Column("doc", JSON()),
)
links_t = Table(
    "coord_event_links", metadata, Column("event_id", String(255), primary_key=True), Column("case_id", String(80))
)
redirects_t = Table(
    "coord_redirects", metadata, Column("event_id", String(255), primary_key=True), Column("merged_into", String(255))
)
attachments_t = Table(
    "coord_attachment_contents",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size_bytes", BigInteger()),
    Column("content", LargeBinary()),
)
event_posts_t = Table(
    "coord_event_posts", metadata, Column("event_id", String(255), primary_key=True), Column("post_ids", JSON())
)
issues_t = Table(
    "coord_report_issues",
    metadata,
    Column("case_id", String(80), primary_key=True),
    Column("issue_number", Integer()),
    Column("issued_at", _TS),
)
processed_t = Table("coord_processed", metadata, Column("key", String(400), primary_key=True), Column("at", _TS))
tasks_t = Table(
    "coord_tasks",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("case_id", String(80)),
    Column("agency", String(64)),
    Column("status", String(32)),
    Column("due_at", _TS),
    Column("created_at", _TS),
    Column("doc", JSON()),
)
meetings_t = Table(
    "coord_meetings",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("kind", String(32)),
    Column("convened_at", _TS),
    Column("doc", JSON()),
)
instructions_t = Table(
    "coord_instructions",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("case_id", String(80)),
    Column("recorded_at", _TS),
    Column("doc", JSON()),
)
timers_t = Table(
    "coord_timers",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("kind", String(32)),
    Column("target", String(255)),
    Column("due_at", _TS),
    Column("state", String(16)),
    Column("fired_at", _TS),
    Column("fired_by", String(255)),
)

ACTIVE_TASK: Final = (TaskStatus.OPEN.value, TaskStatus.IN_PROGRESS.value)


@dataclass(frozen=True)
class OutboxTopics:
    cases: str
    tasks: str
    publication_requests: str
    audit: str = ""  # the stream copy of the audit log; empty: not streamed


@dataclass(frozen=True)
class CaseFilter:
    status: CaseStatus | None = None
    min_level: Level | None = None
    routed_to: Rung | None = None
    event_id: str = ""
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    ids: frozenset[str] | None = None  # a partner: only these


@dataclass(frozen=True)
class TaskFilter:
    case_id: str = ""
    agency: str | None = None
    status: TaskStatus | None = None
    overdue_at: datetime | None = None  # only tasks overdue at this time


def page_offset(token: str) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["o"]
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(offset)
        return offset
    except (ValueError, KeyError, TypeError, binascii.Error) as err:
        raise InvalidPageToken.of("page_token", "not a token of this list") from err


def next_token(offset: int, size: int, got: int) -> str:
    if got < size:
        return ""
    return base64.urlsafe_b64encode(json.dumps({"o": offset + size}).encode()).decode()
