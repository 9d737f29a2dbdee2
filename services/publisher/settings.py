"""PublisherSettings: environment variables with the prefix ``QF_PUBLISHER_`` (nested groups use ``__``).

The variables are listed with their defaults in ``services/publisher/README.md``. Everything the publisher reads from
the environment is here (channel secrets are read by the channel factory from the variables its policy names).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from qingfeng.kafka import PUBLICATION_REQUESTS, PUBLICATIONS, PUBLICATIONS_DEADLETTER
from qingfeng.settings import (
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    TelemetrySettings,
    service_settings_config,
)

from services.publisher.adapters.policy_yaml import CHANNELS_FILE, SIGNOFF_FILE, TEMPLATES_FILE

__all__ = ["DeliverySettings", "FeedServerSettings", "PolicySettings", "PublisherSettings", "PublisherTopics"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PublisherTopics(_Group):
    """Topic names. Only tests and side-by-side deployments change them."""

    requests: str = PUBLICATION_REQUESTS
    publications: str = PUBLICATIONS
    deadletter: str = PUBLICATIONS_DEADLETTER


class PolicySettings(_Group):
    templates_file: Path = TEMPLATES_FILE
    signoff_file: Path = SIGNOFF_FILE
    channels_file: Path = CHANNELS_FILE


class DeliverySettings(_Group):
    """The delivery worker: how often it looks for due publications, and the retry budget."""

    poll_s: float = Field(default=1.0, gt=0)
    batch_size: int = Field(default=20, ge=1, le=1000)
    # Attempts per round before a publication is dead-lettered (an operator replay starts a new round).
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    # An attempt claimed longer ago than this is presumed dead and taken over (with a lookup on the channel first).
    # Keep it above the channels' longest request timeout.
    lease_s: float = Field(default=60.0, gt=0)


class FeedServerSettings(_Group):
    """The HTTP server of the website's Atom feed (the feed channel's entries), at ``/feed.atom``."""

    host: str = "127.0.0.1"
    # 0 serves no feed (the entries are still kept).
    port: int = Field(default=50065, ge=0, le=65535)


class PublisherSettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_PUBLISHER_")

    grpc: GrpcSettings = GrpcSettings(port=50064)
    telemetry: TelemetrySettings = TelemetrySettings(service_name="qingfeng-publisher")
    # SQLite file by default; QF_PUBLISHER_DATABASE__URL=postgresql+asyncpg://… for PostgreSQL.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/publisher.db"))
    topics: PublisherTopics = PublisherTopics()
    policies: PolicySettings = PolicySettings()
    delivery: DeliverySettings = DeliverySettings()
    feed: FeedServerSettings = FeedServerSettings()
    # True: a channel of the policy that cannot be built (a secret not set) stops the start. False (default): it is
    # left out with an error in the log, and the other channels work.
    strict_channels: bool = False
    # Consumer group of the publication-request consumer.
    group_id: str = "publisher"
    # After the request consumer fails (Kafka or the database down) it resumes from its last commit after this
    # pause, doubling up to the maximum (back to the first once a batch went through).
    consumer_retry_backoff_s: float = Field(default=1.0, gt=0)
    consumer_retry_backoff_max_s: float = Field(default=30.0, gt=0)
    # Outbox relay: rows per batch and the pause when drained.
    relay_batch: int = Field(default=100, ge=1)
    relay_idle_s: float = Field(default=0.5, gt=0)
