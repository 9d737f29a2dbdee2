"""`python -m services.collector`: settings, then logging, tracing and the garbage collector's tuning, then the app
until SIGTERM."""

import asyncio

from qingfeng.gc_tuning import apply_gc_settings
from qingfeng.logs import setup_logging
from qingfeng.telemetry import setup_tracing

from services.collector.app import run
from services.collector.settings import CollectorSettings


def main() -> None:
    settings = CollectorSettings()
    setup_logging("collector", settings.log.level)
    setup_tracing(settings.telemetry, process="collector")
    apply_gc_settings(settings.gc)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
