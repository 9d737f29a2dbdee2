"""CoordinatorSettings: environment variables with the prefix ``QF_COORDINATOR_`` (nested groups use ``__``).

The variables are listed with their defaults in ``services/coordinator/README.md``. Everything the coordinator reads
from the environment is here; nothing else in the service looks at ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from qingfeng.kafka import ALERTS, AUDIT, CASES, DEADLETTER, EVENTS, PUBLICATION_REQUESTS, PUBLICATIONS, TASKS
from qingfeng.settings import (
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    service_settings_config,
)

from services.coordinator.adapters.policy_yaml import DEFAULT_DIRECTORY, DEFAULT_PLAYBOOKS, DEFAULT_ROUTING

__all__ = ["ConsumerSettings", "CoordinatorSettings", "CoordinatorTopics", "LoopSettings"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CoordinatorTopics(_Group):
    """Topic names. Only tests and side-by-side deployments change them."""

    alerts: str = ALERTS
    events: str = EVENTS
    publications: str = PUBLICATIONS
    cases: str = CASES
    tasks: str = TASKS
    publication_requests: str = PUBLICATION_REQUESTS
    # The stream copy of the audit log (every record, keyed by the audited entity); empty: not streamed.
    audit: str = AUDIT
    deadletter: str = DEADLETTER


class ConsumerSettings(_Group):
    """The loop over alerts, event snapshots (merges) and publications."""

    group_id: str = "coordinator"
    batch_size: int = Field(default=200, ge=1, le=5000)
    # Waits before restarting the loop after the database or Kafka failed (doubles up to the maximum).
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)


class LoopSettings(_Group):
    """The background loops: durable deadlines and the outbox relay."""

    deadline_every_s: float = Field(default=1.0, gt=0)
    relay_idle_s: float = Field(default=0.2, gt=0)
    relay_batch: int = Field(default=200, ge=1)


class CoordinatorSettings(ServiceSettings):
    """The coordinator process: its database, topics, policies and loops."""

    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_COORDINATOR_")

    grpc: GrpcSettings = GrpcSettings(port=50063)
    # SQLite file by default; QF_COORDINATOR_DATABASE__URL=postgresql+asyncpg://… for PostgreSQL.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/coordinator.db"))
    topics: CoordinatorTopics = CoordinatorTopics()
    consumer: ConsumerSettings = ConsumerSettings()
    loops: LoopSettings = LoopSettings()
    routing_policy_file: Path = DEFAULT_ROUTING
    playbooks_file: Path = DEFAULT_PLAYBOOKS
    directory_file: Path = DEFAULT_DIRECTORY
    # Written into fired timers (fired_by) to tell replicas apart; empty: host name and process id.
    node_name: str = ""
