"""The arena limit: threads share the arenas it allows instead of one each (glibc; elsewhere nothing changes)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from pydantic import ValidationError
from qingfeng.malloc_tuning import MallocSettings, apply_malloc_settings

# Six threads alive at once, each allocating outside pymalloc (> 512 bytes), then glibc's own per-arena report.
_CHILD = textwrap.dedent(
    """
    import ctypes, sys, threading
    from qingfeng.malloc_tuning import MallocSettings, apply_malloc_settings
    applied = apply_malloc_settings(MallocSettings(arena_max=int(sys.argv[1])))
    barrier = threading.Barrier(7)
    def work():
        blocks = [bytearray(64 * 1024) for _ in range(8)]
        barrier.wait()
        barrier.wait()
        del blocks
    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    barrier.wait()
    sys.stderr.flush()
    ctypes.CDLL(None).malloc_stats()
    barrier.wait()
    for t in threads:
        t.join()
    print("applied" if applied else "not applied")
    """
)


def _arenas(arena_max: int) -> tuple[int, str]:
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(arena_max)], capture_output=True, text=True, timeout=60, check=True
    )
    return run.stderr.count("Arena "), run.stdout.strip()


def _glibc() -> bool:
    import ctypes

    try:
        ctypes.CDLL(None).malloc_stats  # noqa: B018
    except AttributeError:
        return False
    return True


@pytest.mark.skipif(not _glibc(), reason="the C library is not glibc: no arenas to limit (apply returns False)")
def test_threads_share_the_limited_arenas() -> None:
    limited, applied = _arenas(2)
    assert applied == "applied"
    assert limited <= 2
    default, not_applied = _arenas(0)  # 0: glibc's own choice, an arena per thread on this machine
    assert not_applied == "not applied"
    assert default > limited


def test_zero_keeps_glibc_default_and_bad_values_are_refused() -> None:
    assert apply_malloc_settings(MallocSettings(arena_max=0)) is False
    with pytest.raises(ValidationError, match="arena_max"):
        MallocSettings(arena_max=-1)
