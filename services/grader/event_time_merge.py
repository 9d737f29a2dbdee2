"""The order in which the posts partitions' records reach the engine (``EventTimeMerge``).

The engine is one fold over every post, so the order in which the partitions' records reach it decides which post
opens an event (its id) and when levels change. The merge releases a record only when every partition either has a
later record buffered or has been read to its end. With the stream already in Kafka (a replay, a restart after
downtime) the order is a pure function of the partitions' contents, independent of how fetches happened to split
them, so a replay grades exactly like the first run and regenerates the same alert ids, which is what recovery
relies on (state.py). On a live tail a partition read to its end does not hold the others back, so the order then
depends on arrival: each batch's order is logged (``OrderLog``, runs of partition offsets: ``order_runs``) before its
effects, and a recovery follows the log (``EventTimeMerge.follow``) before merging again, so the replay feeds the
engine exactly as the lost run did.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from services.grader.post_items import Item

__all__ = ["EventTimeMerge", "order_runs"]

# The grader loop's logger, as before this class had a module of its own: log queries select the loop's records by it.
_log = logging.getLogger("services.grader.consumer")


def order_runs(items: Iterable[Item]) -> list[tuple[int, int, int]]:
    """The order of ``items`` as runs of consecutive offsets of one partition: (partition, first offset, count)."""
    runs: list[list[int]] = []
    for item in items:
        partition, offset = item.record.partition, item.record.offset
        last = runs[-1] if runs else None
        if last is not None and last[0] == partition and last[1] + last[2] == offset:
            last[2] += 1
        else:
            runs.append([partition, offset, 1])
    return [(p, first, count) for p, first, count in runs]


class EventTimeMerge:
    """Per-partition buffers released as a k-way merge on (event time, partition): see the module docstring."""

    def __init__(self) -> None:
        self._buffers: dict[int, deque[Item]] = {}
        self._fetched: dict[int, int] = {}  # next offset after what was fetched, per partition
        self._script: deque[list[int]] = deque()  # [partition, next offset, end offset] to release first

    def reset(self, positions: dict[int, int]) -> None:
        """Start over from these positions (after a seek): buffered records are dropped and fetched again."""
        self._buffers = {p: deque() for p in positions}
        self._fetched = dict(positions)
        self._script = deque()

    def follow(self, runs: Iterable[tuple[int, int, int]], positions: Mapping[int, int]) -> None:
        """Release the records of ``runs`` ((partition, first offset, count), in order) before merging again.

        Offsets before ``positions`` (the checkpoint's) and offsets a run repeats (a replay logs its order again)
        are skipped, so the script is exactly the order of the records after the positions, as first fed.
        """
        nxt = dict(positions)
        for partition, first, count in runs:
            start, end = max(first, nxt.get(partition, 0)), first + count
            if start < end:
                self._script.append([partition, start, end])
                nxt[partition] = end

    def scripted(self) -> int:
        """Records still to release in the logged order."""
        return sum(end - start for _, start, end in self._script)

    def add(self, partition: int, items: Iterable[Item]) -> None:
        buffer = self._buffers.setdefault(partition, deque())
        for item in items:
            buffer.append(item)
            self._fetched[partition] = item.record.offset + 1

    def buffered(self) -> int:
        return sum(len(b) for b in self._buffers.values())

    def backlog(self, lag: Callable[[int, int], int]) -> int:
        """Records buffered here plus those after what was fetched, to each partition's end as last seen."""
        return self.buffered() + sum(lag(p, self._fetched.get(p, 0)) for p in self._buffers)

    def needy(self, limit: int) -> list[int]:
        """Partitions worth fetching: those with fewer than ``limit`` records buffered."""
        return [p for p, b in self._buffers.items() if len(b) < limit]

    def release(self, limit: int, caught_up: Callable[[int, int], bool]) -> list[Item]:
        """Up to ``limit`` items in merge order; stops where a partition that is not at its end runs dry."""
        out: list[Item] = []
        buffers = self._buffers
        if not self._release_script(out, limit, caught_up):
            return out
        while len(out) < limit:
            best: tuple[float, int] | None = None
            for p, buffer in buffers.items():
                if buffer:
                    head = (buffer[0].key, p)
                    if best is None or head < best:
                        best = head
                elif not caught_up(p, self._fetched.get(p, 0)):
                    return out  # its next record may come first: wait for it
            if best is None:
                return out
            out.append(buffers[best[1]].popleft())
        return out

    def _release_script(self, out: list[Item], limit: int, caught_up: Callable[[int, int], bool]) -> bool:
        """Release in the logged order; True once the script is done (merging may go on)."""
        script = self._script
        while script and len(out) < limit:
            run = script[0]
            partition, offset, end = run
            buffer = self._buffers.setdefault(partition, deque())
            if not buffer:
                if caught_up(partition, self._fetched.get(partition, 0)):
                    script.popleft()  # the logged records are gone (retention): nothing left to follow there
                    continue
                return False  # fetch it first
            head = buffer[0].record.offset
            if head < offset:
                # The log does not cover this record (it skips a range): it cannot say the order any more.
                _log.warning("order log skips offsets of partition %d (%d < %d): merging instead", partition,
                             head, offset)  # fmt: skip
                script.clear()
                break
            # A record missing from the log's range (retention, a transaction marker) is skipped over.
            run[1] = offset = max(offset, head)
            if offset >= end:
                script.popleft()
                continue
            out.append(buffer.popleft())
            run[1] = offset + 1
            if run[1] >= end:
                script.popleft()
        return not script
