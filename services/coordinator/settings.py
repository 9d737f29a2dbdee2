"""CoordinatorSettings: environment variables with the prefix ``QF_COORDINATOR_`` (nested groups use ``__``)."""

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

__all__ = ["CoordinatorSettings"]


class CoordinatorSettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_COORDINATOR_")

    grpc: GrpcSettings = GrpcSettings(port=50063)
    telemetry: TelemetrySettings = TelemetrySettings(service_name="qingfeng-coordinator")
    # SQLite file by default; QF_COORDINATOR_DATABASE__URL=postgresql+asyncpg://… for PostgreSQL.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/coordinator.db"))
