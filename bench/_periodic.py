"""The soak's samplers (RSS, CPU, lag) run in a thread: ``_sample()`` every ``every_s`` seconds until ``stop()``.

A thread rather than a task: the soak's own event loop is busy feeding, and a sample must not wait behind it.
"""

from __future__ import annotations

import threading
from typing import ClassVar

__all__ = ["PeriodicSampler"]


class PeriodicSampler:
    """Mixin for a sampler dataclass with an ``every_s`` field: ``start()`` and ``stop()`` around ``_sample()``."""

    thread_name: ClassVar[str] = "sampler"
    # Take one sample at start(): a baseline that later samples are counted from.
    sample_at_start: ClassVar[bool] = False
    every_s: float
    _stop_event: threading.Event | None = None
    _thread: threading.Thread | None = None

    def _sample(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.sample_at_start:
            self._sample()
        self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop_event,), name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self._stop_event is not None:
            self._stop_event.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.every_s):
            self._sample()
