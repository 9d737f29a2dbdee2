"""`python -m services.publisher`: settings, then logging and tracing, then the app until SIGTERM."""

from qingfeng.malloc_trim import exec_without_malloc_trim

# First of all: the process starts again with protobuf's malloc_trim stubbed out (qingfeng.malloc_trim), before
# the imports below are paid for.
exec_without_malloc_trim()

import asyncio  # noqa: E402

from qingfeng.logs import setup_logging  # noqa: E402
from qingfeng.telemetry import setup_tracing  # noqa: E402

from services.publisher.app import run  # noqa: E402
from services.publisher.settings import PublisherSettings  # noqa: E402


def main() -> None:
    settings = PublisherSettings()
    setup_logging("publisher", settings.log.level)
    setup_tracing(settings.telemetry, process="publisher")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
