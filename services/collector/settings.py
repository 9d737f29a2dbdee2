"""CollectorSettings: environment variables with the prefix ``QF_COLLECTOR_`` (nested groups use ``__``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from qingfeng.settings import GrpcSettings, ServiceSettings, TelemetrySettings, service_settings_config

__all__ = ["CollectorSettings"]


class CollectorSettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_COLLECTOR_")

    grpc: GrpcSettings = GrpcSettings(port=50061)
    telemetry: TelemetrySettings = TelemetrySettings(service_name="qingfeng-collector")
