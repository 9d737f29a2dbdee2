"""A sampler's thread: ``sample()`` every ``every_s`` seconds until ``stop()`` (the soak's RSS, CPU and lag samplers).

A thread rather than a task: the soak's own event loop is busy feeding, and a sample must not wait behind it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls ``sample`` every ``every_s`` seconds in a daemon thread named ``name``."""

    def __init__(self, sample: Callable[[], None], every_s: float, name: str) -> None:
        self._sample = sample
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self._every_s):
            self._sample()
