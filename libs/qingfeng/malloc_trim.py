"""Runs a Qingfeng process without protobuf's periodic ``malloc_trim(0)``: see ``native/no_malloc_trim.c``.

upb (protobuf's runtime) calls glibc's ``malloc_trim(0)`` after every 10,000 arena frees, and each of our posts is one
or more messages. Every trim gives all free heap pages back to the kernel, and the next allocations fault them in again:
measured on the shared posts, 2.9 page faults a post in the indexer and 1.35 in the collector, about 4 µs each on the
2-core benchmark machine. With the trims stubbed out the indexer stage took 34-44 µs a post instead of 43-55, and the
collector fed in process with an indexer process a median 118 µs a post of our CPU instead of 128 (interleaved runs,
README "Engine limits", issue 12).

A library cannot replace a libc function the process already resolved, so the stub is preloaded: an entry point
calls :func:`exec_without_malloc_trim` first, which starts the same command again with ``LD_PRELOAD`` naming the stub
(built next to the interpreter's prefix by ``make install`` and the image). Nothing happens where the stub is not
built, off Linux, or with ``QF_NO_MALLOC_TRIM=0`` (keep protobuf's trims).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

__all__ = ["SHIM_NAME", "SWITCH", "exec_without_malloc_trim", "preload_env", "shim_path", "wanted"]

SHIM_NAME: Final = "libqingfeng-no-malloc-trim.so"
SWITCH: Final = "QF_NO_MALLOC_TRIM"
_OFF: Final = frozenset({"0", "false", "no", "off"})
# Set in the restarted process's environment: it never restarts again, even if the loader ignored LD_PRELOAD.
_RESTARTED: Final = "QF_NO_MALLOC_TRIM_RESTARTED"


def shim_path(prefix: str | None = None) -> Path | None:
    """The built stub under ``prefix``/lib (the venv's or the image's), or None where it was not built."""
    path = Path(prefix if prefix is not None else sys.prefix) / "lib" / SHIM_NAME
    return path if path.is_file() else None


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the process should run without the trims: yes unless ``QF_NO_MALLOC_TRIM`` turns it off."""
    return environ.get(SWITCH, "1").strip().lower() not in _OFF


def preload_env(environ: Mapping[str, str], shim: Path) -> dict[str, str] | None:
    """``environ`` with ``shim`` first in ``LD_PRELOAD`` (what was there kept after it), or None when it is there
    already."""
    current = [part for part in environ.get("LD_PRELOAD", "").replace(":", " ").split() if part]
    if str(shim) in current:
        return None
    return {**environ, "LD_PRELOAD": " ".join([str(shim), *current])}


def exec_without_malloc_trim() -> None:
    """Start this command again with the stub preloaded, unless it is preloaded already, not built, turned off or
    not on Linux. Call it first thing in an entry point: what ran before is done twice (the interpreter's start-up,
    ~20 ms)."""
    if not sys.platform.startswith("linux") or not wanted(os.environ) or os.environ.get(_RESTARTED):
        return
    shim = shim_path()
    if shim is None:
        return
    env = preload_env(os.environ, shim)
    if env is None:
        return
    env[_RESTARTED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
