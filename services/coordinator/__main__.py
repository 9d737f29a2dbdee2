"""`python -m services.coordinator`: settings, then logging and tracing, then the app until SIGTERM."""

import asyncio

from qingfeng.logs import setup_logging
from qingfeng.telemetry import setup_tracing

from services.coordinator.app import run
from services.coordinator.settings import CoordinatorSettings


def main() -> None:
    settings = CoordinatorSettings()
    setup_logging("coordinator", settings.log.level)
    setup_tracing(settings.telemetry, process="coordinator")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
