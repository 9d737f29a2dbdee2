"""The ports the coordinator's wiring needs beyond the SQL store: a clock (time is always an argument of the core)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "system_clock"]


class Clock(Protocol):
    """Now, as an aware UTC datetime. Tests pass a controllable one."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    return datetime.now(UTC)
