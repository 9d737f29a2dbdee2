"""The consumer's merge buffers stay bounded behind a large lag, even while one partition holds the merge back.

Records are released in event time only when every partition has one buffered or is read to its end; a partition
that is behind and answers nothing (a slow broker) blocks the release. The loop then fetches only the partitions
with less than a batch buffered (``EventTimeMerge.needy``), so the others cannot pile up a backlog in memory: each
holds under two batches, whatever the lag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qingfeng.kafka import Record

from services.grader.consumer import PostConsumer
from services.grader.settings import ConsumerSettings

BATCH = 50


class StalledReader:
    """Partition 0: an endless backlog; partition 1: behind (a million records to read) but answering nothing."""

    def __init__(self) -> None:
        self.next = 0
        self.fetched = 0

    async def fetch(self, partitions: Sequence[int], timeout_ms: int, max_records: int) -> dict[int, list[Record]]:
        out: dict[int, list[Record]] = {}
        if 0 in partitions:
            out[0] = [
                Record(topic="t", partition=0, offset=self.next + k, key=None, value=b"", headers=(), timestamp_ms=0)
                for k in range(max_records)
            ]
            self.next += max_records
            self.fetched += max_records
        return out

    def caught_up(self, partition: int, next_offset: int) -> bool:
        return False

    def lag(self, partition: int, next_offset: int) -> int:
        return 1_000_000

    async def commit(self, positions: Mapping[int, int]) -> None:
        pass


async def test_buffers_stay_under_two_batches_while_a_partition_blocks_the_merge() -> None:
    reader = StalledReader()
    owner: Any = object()  # never reached: nothing can be released
    consumer = PostConsumer(owner, reader, owner, ConsumerSettings(batch_size=BATCH, linger_ms=0))  # type: ignore[arg-type]
    consumer._merge.reset({0: 0, 1: 0})
    for _ in range(200):
        assert await consumer._step() is False
    assert reader.fetched >= BATCH  # partition 0 was read
    assert consumer._merge.buffered() < 2 * BATCH
    assert reader.fetched < 2 * BATCH  # no fetch once a batch waits there
