"""`python -m services.grader`: settings, then logging, tracing and the garbage collector's tuning, then the app until
SIGTERM."""

from qingfeng.malloc_trim import exec_without_malloc_trim

# First of all: the process starts again with protobuf's malloc_trim stubbed out (qingfeng.malloc_trim), before
# the imports below are paid for.
exec_without_malloc_trim()

import time  # noqa: E402

_STARTED = time.perf_counter()  # before the imports below: how long they take is logged (restart time)

import asyncio  # noqa: E402
import logging  # noqa: E402

from qingfeng.gc_tuning import apply_gc_settings  # noqa: E402
from qingfeng.logs import setup_logging  # noqa: E402
from qingfeng.telemetry import setup_tracing  # noqa: E402

from services.grader.app import run  # noqa: E402
from services.grader.settings import GraderSettings  # noqa: E402
from services.grader.state_codec import pin_mmap_threshold  # noqa: E402


def main() -> None:
    settings = GraderSettings()
    setup_logging("grader", settings.log.level)
    setup_tracing(settings.telemetry, process="grader")
    apply_gc_settings(settings.gc)
    pin_mmap_threshold()  # before any large block is freed: Kafka's and gRPC's buffers too (state_codec.py)
    logging.getLogger("services.grader").info("process started: imports and settings took %.2fs",
                                              time.perf_counter() - _STARTED)  # fmt: skip
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
