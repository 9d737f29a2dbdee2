"""`python -m services.publisher`: settings, then logging and tracing, then the app until SIGTERM."""

import asyncio

from qingfeng.logs import setup_logging
from qingfeng.telemetry import setup_tracing

from services.publisher.app import run
from services.publisher.settings import PublisherSettings


def main() -> None:
    settings = PublisherSettings()
    setup_logging("publisher", settings.log.level)
    setup_tracing(settings.telemetry, process="publisher")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
