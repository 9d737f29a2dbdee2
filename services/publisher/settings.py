"""PublisherSettings: environment variables with the prefix ``QF_PUBLISHER_`` (nested groups use ``__``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from qingfeng.settings import (
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    TelemetrySettings,
    service_settings_config,
)

__all__ = ["PublisherSettings"]


class PublisherSettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_PUBLISHER_")

    grpc: GrpcSettings = GrpcSettings(port=50064)
    telemetry: TelemetrySettings = TelemetrySettings(service_name="qingfeng-publisher")
    # SQLite file by default; QF_PUBLISHER_DATABASE__URL=postgresql+asyncpg://… for PostgreSQL.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/publisher.db"))
