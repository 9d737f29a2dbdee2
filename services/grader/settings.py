"""GraderSettings: environment variables with the prefix ``QF_GRADER_`` (nested groups use ``__``)."""

from __future__ import annotations

from typing import ClassVar

from pydantic_settings import SettingsConfigDict
from qingfeng.settings import GrpcSettings, ServiceSettings, TelemetrySettings, service_settings_config

__all__ = ["GraderSettings"]


class GraderSettings(ServiceSettings):
    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_GRADER_")

    grpc: GrpcSettings = GrpcSettings(port=50062)
    telemetry: TelemetrySettings = TelemetrySettings(service_name="qingfeng-grader")
