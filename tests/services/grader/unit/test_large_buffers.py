"""The checkpoint codec's large buffers are given back to the system when freed, whatever was freed before.

glibc raises its mmap threshold to the size of a mapped block when it is freed (``state_codec``'s docstring): after
one checkpoint blob, the next ones were cut from the arenas of the threads that allocated them and kept there. Each
case runs in a fresh interpreter (the thresholds are the process's, and ``pin_mmap_threshold`` acts once).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from services.grader import state_codec

ROOT = Path(__file__).resolve().parents[4]

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator behaviour")

# A 20 MiB block freed (as a checkpoint blob after it is stored), then an 8 MiB one allocated and freed in a worker
# thread (the next blob, read from the checkpoint child): was it mapped on its own, and what do the arenas keep?
_SCRIPT = """
import ctypes, json, sys, threading

class Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "codec":
    from services.grader.state_codec import decode_state, encode_state
    assert decode_state(encode_state({"a": [1, 2]})) == {"a": [1, 2]}
blob = bytes(20 << 20)
del blob
seen = {"arenas_before": libc.mallinfo2().arena}

def next_blob():
    blob = bytes(8 << 20)
    seen["mapped_while_alive"] = libc.mallinfo2().hblkhd
    del blob

worker = threading.Thread(target=next_blob)
worker.start()
worker.join()
seen["arenas_after"] = libc.mallinfo2().arena
print(json.dumps(seen))
"""


def _run(mode: str) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    env.pop("GLIBC_TUNABLES", None)
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", _SCRIPT, mode], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60)  # fmt: skip
    found: dict[str, int] = json.loads(out.stdout)
    return found


def test_without_the_pin_glibc_keeps_the_next_blob_in_a_thread_arena() -> None:
    # The behaviour the fix answers (if glibc stops raising its threshold, this fails and the pin can go).
    seen = _run("plain")
    assert seen["mapped_while_alive"] < 8 << 20
    assert seen["arenas_after"] - seen["arenas_before"] >= 8 << 20


def test_after_the_codec_ran_a_blob_is_mapped_and_given_back() -> None:
    seen = _run("codec")
    assert seen["mapped_while_alive"] >= 8 << 20
    assert seen["arenas_after"] - seen["arenas_before"] < 1 << 20


def test_an_operators_allocator_setting_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    pin = state_codec.pin_mmap_threshold.__wrapped__  # the uncached function: each call decides again
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.setenv(name, "65536" if name != "GLIBC_TUNABLES" else "glibc.malloc.mmap_threshold=65536")
        assert pin() is False
        monkeypatch.delenv(name)
    assert pin() is True
