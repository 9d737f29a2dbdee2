"""The modules a Qingfeng service process starts from (``python -m …``): what the process-wide tests check each of."""

from __future__ import annotations

from typing import Final

SERVICE_MAINS: Final = (
    "services.collector.__main__",
    "services.grader.__main__",
    "services.coordinator.__main__",
    "services.publisher.__main__",
    "gateway.__main__",
)
