"""The one rule every property here checks, and the timing behind it.

A parser given anything either returns a value or raises its own documented error, and does so within a second
(issue #13). ``run`` calls it, lets only the named errors through as a result, and records the time per call so the
session summary can show the slowest example of each parser.

The second is CPU time of the calling thread (every parser here is synchronous, C parsers included): what an input
costs, whatever else the machine is doing. Wall time is recorded beside it; on a 2-core machine shared with other
test runs it varies several-fold, so it is reported, not asserted (the Hypothesis deadline is a looser backstop).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import settings

__all__ = ["MAX_SECONDS", "TIMINGS", "fewer", "run"]

MAX_SECONDS = 1.0
# parser name -> (calls, most CPU seconds of one call, most wall seconds of one call)
TIMINGS: dict[str, tuple[int, float, float]] = {}

T = TypeVar("T")


def run(
    name: str, parse: Callable[..., T], *args: Any, errors: tuple[type[BaseException], ...] = (), **kwargs: Any
) -> tuple[T | None, BaseException | None]:
    """``(value, None)`` or ``(None, error)`` for one of ``errors``; any other exception propagates (the property
    fails), and so does a call that took longer than ``MAX_SECONDS``."""
    value: T | None = None
    error: BaseException | None = None
    # The cyclic collector is paused for the call: in a long run its full collections over Hypothesis's heap took
    # seconds of this thread's CPU in whichever example they fell (not reproducible on re-run), which is not what an
    # input costs the parser.
    collecting = gc.isenabled()
    gc.disable()
    started, started_cpu = time.perf_counter(), time.thread_time()
    try:
        value = parse(*args, **kwargs)
    except errors as err:
        error = err
    finally:
        cpu, wall = time.thread_time() - started_cpu, time.perf_counter() - started
        if collecting:
            gc.enable()
    calls, most_cpu, most_wall = TIMINGS.get(name, (0, 0.0, 0.0))
    TIMINGS[name] = (calls + 1, max(most_cpu, cpu), max(most_wall, wall))
    assert cpu <= MAX_SECONDS, f"{name} took {cpu:.2f} s of CPU ({wall:.2f} s wall)"
    if error is not None:
        assert str(error), f"{name} raised {type(error).__name__} without a reason"
    return value, error


def fewer(examples: int) -> settings:
    """Settings for a secondary property: ``examples`` at most, fewer when the profile asks for fewer."""
    return settings(max_examples=min(examples, settings.default.max_examples))
