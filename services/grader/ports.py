"""The seams between the grader's wiring and the outside systems, and the records that cross them.

Adapters: ``adapters/kafka.py`` (PostReader, OutputSink, AlertLog), ``adapters/sql.py`` (StateStore); for the
index role ``adapters/elastic.py`` (EventIndex) and ``adapters/post_events.py`` (PostEventIndex). The unit tests hold
an in-memory fake of each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from opentelemetry.context import Context
from qingfeng.kafka import DeadLetterSpec, Delivery, Record
from qingfeng.v1 import event_pb2

__all__ = [
    "AlertLog",
    "AuditEntry",
    "Checkpoint",
    "CheckpointInfo",
    "DeadLetterSink",
    "EventIndex",
    "OutputSink",
    "Outputs",
    "PolicyRecord",
    "PostEventIndex",
    "PostReader",
    "StateStore",
]


@dataclass(frozen=True)
class Outputs:
    """What one step of the engine emitted, as wire messages: alerts first in time order, then event snapshots, and
    the live event of every post the step applied."""

    alerts: tuple[event_pb2.Alert, ...] = ()
    events: tuple[event_pb2.Event, ...] = ()
    # Event id -> trace context of the post that last moved that event in this step. Alerts and snapshots are
    # produced as children of it, so one trace runs from the post's first request to the alert it caused.
    causes: Mapping[str, Context] = field(default_factory=dict)
    # Post id -> its live event (merges followed), in the order the posts were applied: published on the
    # post-events topic, from which the index role writes them onto the posts documents (search by event).
    assignments: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.alerts or self.events or self.assignments)

    def without(self, alert_ids: set[str]) -> Outputs:
        """The same outputs minus the alerts already on the alerts topic (a replay must not repeat them)."""
        if not alert_ids:
            return self
        alerts = tuple(a for a in self.alerts if a.id not in alert_ids)
        return Outputs(alerts, self.events, self.causes, self.assignments)


@dataclass(frozen=True)
class PolicyRecord:
    """One policy version as activated (or loaded from the configured file)."""

    version: str
    yaml: str
    sha256: str
    scheme: str
    activated_at: datetime | None = None
    activated_by: str = ""
    agency: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """An action to append to the tamper-evident audit log, in the same transaction as its checkpoint."""

    actor: str
    action: str
    target: str
    agency: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """The engine state with the input positions it reflects, stored atomically.

    ``positions``: next offset to read per posts partition. ``alert_offsets``: per alerts partition, an offset at or
    below the first alert written after this checkpoint, where a recovery scans for alerts already emitted.
    ``pending``: outputs of a command (override, policy change) stored before they are published, so a crash
    between the two cannot lose them (published again on recovery, minus the alerts already on the topic).
    """

    positions: Mapping[int, int]
    alert_offsets: Mapping[int, int]
    state: bytes
    policy_version: str
    saved_at: datetime
    pending: Outputs = Outputs()
    # The order log's last entry this state reflects (``OrderLog.order_mark``): a checkpoint encoded in the
    # background leaves the batches logged after it. None: the state reflects every entry.
    order_through: int | None = None
    # Changes the state holds that no replay of the posts reproduces (commands, idle ticks, a regrade), counted over
    # the state's life: a standby that sees it move reloads the state instead of following the order log (standby.py).
    generation: int = 0


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """What a standby polls: the last checkpoint without its state."""

    positions: Mapping[int, int]
    generation: int
    saved_at: datetime


class StateStore(Protocol):
    """Checkpoints, policy versions and the audit log (SQL)."""

    async def load(self) -> Checkpoint | None:
        """The last checkpoint, or None when the grader never stored one."""
        ...

    async def save(
        self, checkpoint: Checkpoint | None, *, policy: PolicyRecord | None = None, audit: Sequence[AuditEntry] = ()
    ) -> None:
        """Store the checkpoint (when given), and activate ``policy`` and append ``audit`` in the same transaction."""
        ...

    async def checkpoint_info(self) -> CheckpointInfo | None:
        """The last checkpoint's positions and generation, without reading its state."""
        ...

    async def order_batches(self) -> list[list[tuple[int, int, int]]]:
        """The order log since the last checkpoint, one list of runs per batch logged, oldest first."""
        ...

    async def active_policy(self) -> PolicyRecord | None:
        """The policy activated last, or None."""
        ...

    async def policy(self, version: str) -> PolicyRecord | None:
        """A policy version ever activated, or None."""
        ...


class OutputSink(Protocol):
    """The alerts, events and post-events topics: returns once every record is acknowledged."""

    async def publish(self, outputs: Outputs) -> Mapping[int, int]:
        """Produce the outputs; return, per alerts partition written, the offset after the last alert."""
        ...


class EventIndex(Protocol):
    """The events index of the console (written by the index role)."""

    async def index(self, events: Sequence[event_pb2.Event]) -> None:
        """Upsert one document per event; raises ``Unavailable`` when Elasticsearch did not take them."""
        ...


class PostEventIndex(Protocol):
    """The posts documents' ``event_id`` field (written by the index role)."""

    already_assigned: int
    """Assignments found on their documents already (the collector's indexer wrote them): nothing written."""

    async def assign(self, assignments: Mapping[str, str], *, wait_until: float | None = None) -> None:
        """Write each post's event id, waiting until ``wait_until`` (epoch seconds) for posts not indexed yet;
        raises ``Unavailable`` when Elasticsearch did not take them."""
        ...


class AlertLog(Protocol):
    """Reads back what is already on the alerts topic."""

    async def emitted(self, since: Mapping[int, int]) -> set[str]:
        """Ids of the alerts at or after ``since`` (partitions not named: from the beginning) up to the end now."""
        ...


class DeadLetterSink(Protocol):
    async def send(self, specs: Iterable[DeadLetterSpec]) -> list[Delivery]: ...


class PostReader(Protocol):
    """The posts topic, read by manual assignment of every partition (the grader is one global state)."""

    async def partitions(self) -> list[int]: ...

    async def seek(self, positions: Mapping[int, int], *, default: str) -> dict[int, int]:
        """Read each partition from its position, the others from ``default`` (earliest/latest); return where."""
        ...

    async def fetch(self, partitions: Sequence[int], timeout_ms: int, max_records: int) -> dict[int, list[Record]]:
        """Records of the given partitions (any may be missing from the result)."""
        ...

    def caught_up(self, partition: int, next_offset: int) -> bool:
        """Whether ``next_offset`` has reached the end of the partition as last seen by a fetch."""
        ...

    def lag(self, partition: int, next_offset: int) -> int:
        """Records from ``next_offset`` to the end of the partition as last seen by a fetch (0 when unknown)."""
        ...

    async def commit(self, positions: Mapping[int, int]) -> None:
        """Record the positions in the consumer group (lag monitoring); failures are logged, not raised."""
        ...

    async def committed(self) -> dict[int, int]:
        """The positions last committed to the consumer group (a standby reads the leader's: effects durable up to
        there); partitions never committed are missing."""
        ...
