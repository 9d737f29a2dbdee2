"""release_free_memory (services/grader/memory.py): the free pages in the middle of glibc's heap go back.

What a checkpoint leaves behind, in small: many buffers above pymalloc's 512 bytes (so malloc's), most freed, a few
kept in between, so no freed stretch is at the top of the heap and free() alone returns nothing.
"""

from __future__ import annotations

import platform

import pytest

from services.grader.memory import release_free_memory


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_heap_pages_go_back_to_the_system() -> None:
    release_free_memory()
    buffers = [bytearray(4000) for _ in range(20_000)]  # ~80 MiB from malloc's heap, touched (zeroed)
    kept = buffers[::50]  # one in fifty stays: the freed ones are holes, not the heap's top
    del buffers
    before = _rss_kib()
    assert release_free_memory()
    after = _rss_kib()
    assert len(kept) == 400
    assert before - after > 40 * 1024, (before, after)  # most of the ~78 MiB freed is resident no more
