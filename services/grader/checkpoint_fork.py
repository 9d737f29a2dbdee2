"""A checkpoint's state encoded by a forked child, off the grader's event loop.

With a full clustering horizon (120 s at 2,315 posts/s: ~280,000 posts, 20 MB compressed) building the state's
plain data and its JSON took 0.9-1.2 s of the loop thread's CPU per checkpoint, and more wall time on a busy
machine: every alert behind it waited (p99 post -> alert 3-4 s in the soak once the horizon was full). A forked
child sees the process as it was at the fork (copy-on-write pages), so it can snapshot, encode and compress the
engine while the parent grades on; the parent only pays the fork itself (page tables: milliseconds).

The child runs pure Python and the compressor on its copy, writes the bytes to a pipe and leaves with ``os._exit``
(no atexit handlers, no buffered output of the parent's flushed twice, nothing of gRPC or Kafka touched). Its garbage
collector is off: a collection would touch every object and copy every page. Memory: while it runs, the pages it reads
(their reference counts change) and the pages the parent changes are copied, up to the state's size again.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

from services.grader.state_codec import pin_mmap_threshold

__all__ = ["ChildEncoding", "Encoded", "EncodingFailed", "fork_available", "start_encoding"]


class EncodingFailed(Exception):
    """The child did not deliver the state (it raised, was killed, or its output was cut short)."""


@dataclass(frozen=True, slots=True)
class Encoded:
    state: bytes
    cpu_s: float  # the child's user + system CPU


def fork_available() -> bool:
    return hasattr(os, "fork") and hasattr(os, "wait4")


def start_encoding(encode: Callable[[], bytes], *, nice: int = 0) -> ChildEncoding:
    """Fork; the child writes ``encode()`` (run on its copy of the process) to a pipe and exits."""
    pin_mmap_threshold()  # the parent reads the child's output (the blob) in a worker thread: mapped, given back
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: coverage does not follow it, the parent's tests check its output
        code = 1
        try:
            os.close(read_end)
            gc.disable()
            if nice:
                os.nice(nice)
            view = memoryview(encode())
            while view:
                view = view[os.write(write_end, view) :]
            code = 0
        finally:  # whatever happened: never back into the parent's code; the exit code tells the parent
            os._exit(code)
    os.close(write_end)
    return ChildEncoding(pid, read_end)


class ChildEncoding:
    """One running child; ``collect`` blocks (run it in a worker thread), ``kill`` ends it early."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid = pid
        self._fd = fd
        self._reaped = False

    def collect(self) -> Encoded:
        """Read the child's output to its end and reap it; raises ``EncodingFailed`` unless it exited 0."""
        chunks: list[bytes] = []
        try:
            while chunk := os.read(self._fd, 1 << 20):  # os.read releases the GIL: the loop grades meanwhile
                chunks.append(chunk)
        finally:
            os.close(self._fd)
            _, status, usage = os.wait4(self.pid, 0)
            self._reaped = True
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise EncodingFailed(f"checkpoint child {self.pid} exited with {code}")
        return Encoded(b"".join(chunks), usage.ru_utime + usage.ru_stime)

    def kill(self) -> None:
        """Stop the child (a shutdown while it encodes); ``collect`` then raises ``EncodingFailed``."""
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
