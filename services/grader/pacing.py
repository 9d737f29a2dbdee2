"""Event snapshots paced: an event that keeps changing without a level change is published at most every few seconds.

On a live tail a batch is whatever arrived in the last poll, and every batch re-published a snapshot of every event
a post touched (rendered, produced to the events topic and indexed into Elasticsearch): with ~200 active stories
that was a third of the grader's CPU, for metrics nobody reads more often than a console refreshes. The pacer holds
back the snapshot of an event published less than ``interval_s`` ago and sends the latest one held once the
interval has passed. What is never held: the snapshot of an event with an alert in the same outputs (an alert
goes out with its event), and the snapshot of an event that is no longer live under its own id (merged into
another, expired), which is its last. The owner sends every held snapshot before each checkpoint (``take_all``),
so a checkpoint never covers a post whose event was not published, and a crash loses nothing: the replay from the
checkpoint touches the events again. ``interval_s`` = 0 publishes every snapshot (the behaviour before).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from services.grader.core import Alert, EventSnapshot, Output

__all__ = ["SnapshotPacer"]

# Publication times older than the interval mean nothing; past this many, they are pruned.
_PRUNE_AT = 4096


class SnapshotPacer:
    """Holds back event snapshots (see the module docstring); not thread-safe, used under the owner's lock."""

    def __init__(self, interval_s: float, monotonic: Callable[[], float]) -> None:
        self._interval = interval_s
        self._monotonic = monotonic
        self._held: dict[str, EventSnapshot] = {}
        self._sent: dict[str, float] = {}  # event id -> when its last snapshot was published

    @property
    def held(self) -> int:
        return len(self._held)

    def pace(self, outs: Sequence[Output], live: Callable[[str], bool]) -> list[Output]:
        """``outs`` without the snapshots that may wait, plus the held snapshots now due."""
        if self._interval <= 0:
            return list(outs)
        now = self._monotonic()
        alerted = {o.event_id for o in outs if isinstance(o, Alert)}
        paced: list[Output] = []
        for o in outs:
            if isinstance(o, EventSnapshot):
                eid = o.event_id
                if eid not in alerted and now - self._sent.get(eid, -math.inf) < self._interval and live(eid):
                    self._held[eid] = o  # the latest wins
                    continue
                self._held.pop(eid, None)
                self._sent[eid] = now
            paced.append(o)
        paced.extend(self.due(now))
        if len(self._sent) > _PRUNE_AT:
            self._sent = {eid: at for eid, at in self._sent.items() if now - at < self._interval}
        return paced

    def due(self, now: float | None = None) -> list[EventSnapshot]:
        """The held snapshots whose interval has passed (removed from the held ones)."""
        if not self._held:
            return []
        now = self._monotonic() if now is None else now
        out = [s for eid, s in self._held.items() if now - self._sent.get(eid, -math.inf) >= self._interval]
        for s in out:
            del self._held[s.event_id]
            self._sent[s.event_id] = now
        return out

    def take_all(self) -> list[EventSnapshot]:
        """Every held snapshot (before a checkpoint), as published now."""
        out = list(self._held.values())
        now = self._monotonic()
        for s in out:
            self._sent[s.event_id] = now
        self._held.clear()
        return out

    def reset(self) -> None:
        """Forget everything (a recovery rebuilds the engine; the replay publishes again)."""
        self._held.clear()
        self._sent.clear()
