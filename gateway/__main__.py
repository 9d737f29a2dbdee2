"""`python -m gateway`: settings, then logging and tracing, then the app until SIGTERM."""

from qingfeng.malloc_trim import exec_without_malloc_trim

# First of all: the process starts again with protobuf's malloc_trim stubbed out (qingfeng.malloc_trim), before
# the imports below are paid for.
exec_without_malloc_trim()

import asyncio  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from qingfeng.logs import setup_logging  # noqa: E402
from qingfeng.telemetry import setup_tracing  # noqa: E402

from gateway.app import run  # noqa: E402
from gateway.settings import GatewayConfigError, load_settings  # noqa: E402


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
