"""The garbage collector of a hot process: start-up objects frozen out of its scans, fewer young collections.

CPython's cyclic collector runs a young collection every 700 net allocations and walks every tracked object in the
older generations now and then. A collector or grader allocates a few objects per post and keeps large, long-lived
structures (lexicons, automata, the grader's post map), so those walks were a large share of its CPU: in
``bench/bench_limits.py --gc-compare`` (2026-11-30, load 9–13) one collector process spent 236–240 µs per post end to
end with the settings below against 284–344 µs without. Objects are still freed by reference counting at once;
only garbage in reference cycles waits longer (until a young collection every ``threshold0`` allocations).
"""

from __future__ import annotations

import gc

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GcSettings", "apply_gc_settings"]


class GcSettings(BaseModel):
    """``QF_<SERVICE>_GC__…``: how the process's garbage collector runs (``enabled=false`` keeps CPython's own)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # Move every object alive at start (modules, lexicons, compiled policies) to a generation no collection walks.
    freeze_at_start: bool = True
    # CPython's defaults are 700, 10, 10.
    threshold0: int = Field(default=20_000, ge=100, le=10_000_000)
    threshold1: int = Field(default=50, ge=1, le=10_000)
    threshold2: int = Field(default=100, ge=1, le=10_000)


def apply_gc_settings(settings: GcSettings) -> tuple[int, int, int]:
    """Apply ``settings`` once the process's start-up objects exist; returns the thresholds in force."""
    if settings.enabled:
        if settings.freeze_at_start:
            gc.collect()  # what is garbage now must not be frozen with the rest
            gc.freeze()
        gc.set_threshold(settings.threshold0, settings.threshold1, settings.threshold2)
    return gc.get_threshold()
