"""`python -m services.collector`: settings, then logging, tracing and the garbage collector's tuning, then the app
until SIGTERM."""

from qingfeng.malloc_trim import exec_without_malloc_trim

# First of all: the process starts again with protobuf's malloc_trim stubbed out (qingfeng.malloc_trim), before
# the imports below are paid for.
exec_without_malloc_trim()

import asyncio  # noqa: E402

from qingfeng.gc_tuning import apply_gc_settings  # noqa: E402
from qingfeng.logs import setup_logging  # noqa: E402
from qingfeng.telemetry import setup_tracing  # noqa: E402

from services.collector.app import run  # noqa: E402
from services.collector.settings import CollectorSettings  # noqa: E402


def main() -> None:
    settings = CollectorSettings()
    setup_logging("collector", settings.log.level)
    setup_tracing(settings.telemetry, process="collector")
    apply_gc_settings(settings.gc)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
