"""`python -m services.grader`: settings, then logging, tracing and the garbage collector's tuning, then the app until
SIGTERM."""

import asyncio

from qingfeng.gc_tuning import apply_gc_settings
from qingfeng.logs import setup_logging
from qingfeng.telemetry import setup_tracing

from services.grader.app import run
from services.grader.settings import GraderSettings


def main() -> None:
    settings = GraderSettings()
    setup_logging("grader", settings.log.level)
    setup_tracing(settings.telemetry, process="grader")
    apply_gc_settings(settings.gc)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
