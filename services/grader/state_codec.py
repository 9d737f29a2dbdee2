"""The engine state as a checkpoint stores it: compact UTF-8 JSON compressed with zstd level 1, and back.

A full 120 s horizon of the soak's stream (2,315 posts/s, 73 MB of JSON, measured in one process on 2026-12-01):
zstd level 1 compresses in 0.12 s to 15.9 MB where zlib level 1 took 0.49 s for 18.5 MB, and decompresses in 0.07
against 0.18-0.21 s. Both are a checkpoint's CPU (the CPU-share rule spaces checkpoints by it, so a cheaper one comes
sooner and a restart replays less) and a restart's wait. Checkpoints written with zlib before are still read: the
two formats are told apart by their first bytes.

The buffers here are the process's largest (the blob 17-24 MB, its JSON 70 MB), and they are allocated in worker
threads. glibc serves a block above its mmap threshold with its own mapping and gives it back when freed, but then
raises the threshold to that block's size (up to 32 MiB) and the trim threshold to twice it: after the first blob
freed, every later one, the checkpoint child's output and SQLite's copy were cut from the arenas of whichever
threads allocated them, which kept the space. In the soak's grade role that was the growth after a restart (worker
threads' arenas 74 -> 157 MiB, 95 MiB of it free, in 6 minutes while pymalloc's arenas did not move;
bench_memory_growth.py --kill-at 150, 2026-12-01).
``pin_mmap_threshold`` fixes both thresholds at glibc's defaults before the codec's first large buffer.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import zlib
from collections.abc import Callable
from typing import Any, Final

import orjson
import zstandard

__all__ = ["compress_text", "compressed", "decode_state", "encode_state", "pin_mmap_threshold", "state_text"]

_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"  # every zstd frame starts so; a zlib stream starts with 0x78

# mallopt's parameters (malloc.h) and glibc's defaults for them: a fresh process's behaviour, kept.
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_DEFAULT_THRESHOLD: Final = 128 * 1024
# What an operator sets to choose the thresholds (or the allocator's tunables) themselves: left alone then.
_OPERATOR_SETTINGS: Final = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@functools.cache
def pin_mmap_threshold() -> bool:
    """Fix glibc's mmap and trim thresholds at their defaults (see the module docstring), once per process; True
    when done. A no-op without glibc's ``mallopt`` (another C library) or when the environment already sets them.

    Setting the mmap threshold turns off its raising: a block of 128 KiB or more is mapped on its own and unmapped
    when freed, whatever was freed before, at the cost of a system call pair for each (a few per checkpoint)."""
    if any(name in os.environ for name in _OPERATOR_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # Both: setting the mmap threshold alone leaves the trim threshold where a raise put it. 1 is success.
    trim: int = mallopt(_M_TRIM_THRESHOLD, _DEFAULT_THRESHOLD)
    mapped: int = mallopt(_M_MMAP_THRESHOLD, _DEFAULT_THRESHOLD)
    return trim == 1 and mapped == 1


def encode_state(data: dict[str, Any]) -> bytes:
    """The engine state as stored: ``state_text`` compressed by ``compress_text``.

    orjson writes the UTF-8 bytes in one go. ``json.dumps`` built a list of chunks, joined them into a str (two bytes a
    character as soon as one Chinese title is in it) and then encoded that: for a 60 s horizon at 2,315 posts/s
    (150,000 posts, 2,300 events: an 8.5 MiB blob) every checkpoint peaked at +208 MiB over the live state (orjson:
    +121 MiB, and 0.8 instead of 1.2 s of CPU), a high-water mark of the grader's resident memory. The state holds no
    infinity or NaN (the windows write them as null themselves); orjson would write null where json wrote
    ``Infinity``.
    """
    return compress_text(state_text(data))


def state_text(data: dict[str, Any]) -> bytes:
    """The state as compact UTF-8 JSON, before compression."""
    try:
        return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson refuses an int beyond 64 bits: the standard encoder takes it
        # check_circular off: the snapshot is a tree of plain values, and the check tracked every list and dict.
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False, check_circular=False).encode("utf-8")


def compress_text(text: bytes) -> bytes:
    """One zstd frame at level 1 with the content size in its header (decompression allocates once)."""
    pin_mmap_threshold()
    return zstandard.ZstdCompressor(level=1).compress(text)


def compressed(text: bytes, cpu_clock: Callable[[], float]) -> tuple[bytes, float]:
    """``compress_text(text)`` with the CPU seconds it took, read by ``cpu_clock`` (run in a worker thread: the
    compressor releases the GIL, so the loop keeps grading meanwhile)."""
    started = cpu_clock()
    blob = compress_text(text)
    return blob, cpu_clock() - started


def decode_state(blob: bytes) -> dict[str, Any]:
    """A stored state back as plain data: zstd, or zlib as checkpoints were written before."""
    pin_mmap_threshold()  # before the blob read from the store is freed (a restart's first large free)
    raw = zstandard.ZstdDecompressor().decompress(blob) if blob[:4] == _ZSTD_MAGIC else zlib.decompress(blob)
    try:
        data: dict[str, Any] = orjson.loads(raw)  # from the bytes: no str copy of the whole text first
    except orjson.JSONDecodeError:  # what only json reads (``Infinity`` in a state written before)
        data = json.loads(raw)
    return data
