"""`python -m gateway`: settings, then logging and tracing, then the app until SIGTERM."""

import asyncio
import logging
import sys

from qingfeng.logs import setup_logging
from qingfeng.telemetry import setup_tracing

from gateway.app import run
from gateway.settings import GatewayConfigError, load_settings


def main() -> None:
    try:
        settings = load_settings()
    except GatewayConfigError as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging("gateway", settings.log.level)
    setup_tracing(settings.telemetry, process="gateway")
    try:
        asyncio.run(run(settings))
    except GatewayConfigError as exc:
        logging.getLogger("gateway").error("cannot start: %s", exc)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
