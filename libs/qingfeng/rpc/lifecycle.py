"""The life of a service process: start, become ready, serve, and stop gracefully on SIGTERM.

Shutdown order (STYLE §4.2): health goes NOT_SERVING so load balancers stop routing, the server refuses new calls and
gives running ones ``shutdown_grace_s`` to finish, then the process's own cleanups run in reverse order of
registration (drain and commit the consumer, flush the producer, close clients), and tracing is flushed last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from qingfeng.rpc.server import GrpcServer
from qingfeng.telemetry import shutdown_tracing

__all__ = ["ReadinessCheck", "run_until_stopped"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadinessCheck:
    """A dependency the process needs before it reports SERVING: ``probe`` raises while it is unavailable."""

    name: str
    probe: Callable[[], Awaitable[None]]


async def _probe_all(checks: Sequence[ReadinessCheck], timeout_s: float) -> list[str]:
    failing: list[str] = []
    for check in checks:
        try:
            await asyncio.wait_for(check.probe(), timeout_s)
        except Exception as exc:  # any failure means "not ready": the reason goes to the log, not up the stack
            failing.append(f"{check.name}: {type(exc).__name__}: {exc}")
    return failing


async def _watch_readiness(
    grpc_server: GrpcServer, checks: Sequence[ReadinessCheck], interval_s: float, stop: asyncio.Event
) -> None:
    serving: bool | None = None
    while not stop.is_set():
        failing = await _probe_all(checks, timeout_s=max(interval_s, 2.0))
        now_serving = not failing
        if now_serving != serving:
            await grpc_server.set_serving(now_serving)
            if now_serving:
                log.info("serving", extra={"port": grpc_server.port})
            else:
                log.warning("not serving: %s", "; ".join(failing))
            serving = now_serving
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s if serving else min(interval_s, 1.0))


async def run_until_stopped(
    grpc_server: GrpcServer,
    *,
    readiness: Sequence[ReadinessCheck] = (),
    background: Sequence[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (),
    cleanups: Sequence[Callable[[], Awaitable[None]]] = (),
    grace_s: float = 5.0,
    readiness_interval_s: float = 5.0,
    stop: asyncio.Event | None = None,
) -> None:
    """Start the server and the ``background`` loops, serve until SIGTERM/SIGINT (or ``stop``), then shut down.

    Each background loop receives the stop event and must return soon after it is set. A loop that crashes stops
    the whole process: a half-running service is worse than a restart by the supervisor.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await grpc_server.start()
    log.info("grpc listening", extra={"port": grpc_server.port})
    tasks = [asyncio.create_task(_watch_readiness(grpc_server, readiness, readiness_interval_s, stop))]
    tasks += [asyncio.create_task(loop_fn(stop)) for loop_fn in background]
    failure: BaseException | None = None
    try:
        done, _ = await asyncio.wait([asyncio.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in tasks and not task.cancelled() and task.exception() is not None:
                failure = task.exception()
                log.error("background loop failed, stopping", exc_info=failure)
    finally:
        stop.set()
        log.info("stopping")
        await grpc_server.health.enter_graceful_shutdown()
        await grpc_server.server.stop(grace_s)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if (
                isinstance(result, BaseException)
                and result is not failure
                and not isinstance(result, asyncio.CancelledError)
            ):
                log.error("background loop failed during shutdown", exc_info=result)
        for cleanup in reversed(cleanups):
            try:
                await cleanup()
            except Exception:
                log.exception("cleanup failed")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        shutdown_tracing()
        log.info("stopped")
    if failure is not None:
        raise SystemExit(1)
