"""Posts' event ids written behind the alert path: the next batch is graded while the last one's ids are written.

Writing each graded post's event id onto its posts document (``adapters/post_events.py``: a lookup and a bulk
update per batch) is the grader's costliest effect on Elasticsearch, and it serves search ("posts of this event"),
not alerting. Awaited in every batch, it held the grader idle while Elasticsearch worked: in the soak the grader's
event loop slept 86 % of the time behind the indexer's writes and alerts waited minutes in Kafka.

``AssignBehind`` keeps that durable without waiting for it:

- the writes run in a background task, strictly one after another in batch order, so a post re-assigned by a later
  batch (a merge) never ends with the older id;
- at most ``max_pending`` batches wait; a batch beyond that waits for the oldest (memory and Elasticsearch's lag
  stay bounded, and the grader slows to what the cluster takes);
- ``drain()`` waits for every write: the owner calls it before a checkpoint, so the positions a checkpoint commits
  never cover a post whose event id is not written (a crash replays those batches, and the writes are idempotent);
- a failed write is raised by the next ``submit`` or ``drain`` (as ``Unavailable`` from the writer): the owner then
  turns stale and recovers from its checkpoint, exactly as when the write was awaited in line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["AssignBehind"]

Write = Callable[[Mapping[str, str]], Awaitable[None]]


class AssignBehind:
    """Ordered, bounded write-behind of post id -> event id assignments."""

    def __init__(self, write: Write, *, max_pending: int = 4) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        self._write = write
        self._max_pending = max_pending
        self._pending: deque[asyncio.Task[None]] = deque()

    @property
    def pending(self) -> int:
        """Batches whose writes have not finished (tests, logs)."""
        return sum(1 for task in self._pending if not task.done())

    async def submit(self, events: Mapping[str, str]) -> None:
        """Queue one batch's assignments; waits only while ``max_pending`` batches are unwritten.

        Raises the error of an earlier batch's write, if one failed."""
        # Finished writes leave the queue (a failed one raises here); a full queue waits for its oldest.
        while self._pending and (self._pending[0].done() or len(self._pending) >= self._max_pending):
            await self._finish_oldest()
        previous = self._pending[-1] if self._pending else None
        self._pending.append(asyncio.create_task(self._after(previous, dict(events))))

    async def drain(self) -> None:
        """Wait until every queued write finished; raises the first failure."""
        while self._pending:
            await self._finish_oldest()

    async def discard(self) -> None:
        """Forget the queue (the owner is rebuilding from its checkpoint, which replays these batches): wait for what
        is running to end, cancelling what has not started, and swallow their errors."""
        tasks, self._pending = list(self._pending), deque()
        for task in tasks[1:]:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def _after(self, previous: asyncio.Task[None] | None, events: Mapping[str, str]) -> None:
        if previous is not None:
            # Order: this batch's ids may re-assign posts of the previous one. If that write failed, this one must
            # not land either way; its error is raised from the previous task.
            await asyncio.shield(previous)
        await self._write(events)

    async def _finish_oldest(self) -> None:
        task = self._pending.popleft()
        try:
            await task
        except BaseException:
            await self.discard()  # the rest depend on it; the owner recovers and replays them
            raise
