"""After a failed batch the runner frees it before it waits to retry: a store down for a minute fails a batch every
few seconds, and each failed batch is cyclic garbage (its error's frames hold the batch; asyncio's tasks and their
exceptions reference each other) that the tuned collector's rare old-generation pass would leave in memory."""

from __future__ import annotations

import asyncio
import gc
import logging
import weakref
from typing import Any

import pytest
from qingfeng.kafka import consumer
from qingfeng.settings import KafkaSettings


class Held:
    """Stands for a batch's data (records, documents, request bodies) that a failed write's frames reference."""


async def test_a_failed_batch_is_freed_before_the_retry(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # pytest keeps every log record it captures, and the warning's record holds the error: not captured here.
    caplog.set_level(logging.ERROR, logger="qingfeng.kafka.consumer")
    held: list[weakref.ref[Held]] = []
    freed_at_retry: list[bool] = []
    stop = asyncio.Event()

    async def run_batches(*args: Any, **kwargs: Any) -> None:
        if held:
            freed_at_retry.append(held[-1]() is None)
        if len(held) == 3:
            stop.set()
            return
        batch = Held()
        held.append(weakref.ref(batch))
        err = ConnectionError("store down")
        err.args = (*err.args, [batch, err])  # a cycle: reference counting alone never frees it
        raise err

    monkeypatch.setattr(consumer, "run_batches", run_batches)
    gc.disable()  # as with qingfeng.gc_tuning's thresholds: no collection would come by itself in this test
    try:
        await consumer.run_batches_resuming(
            KafkaSettings(), ["t"], "g", lambda records: asyncio.sleep(0), stop,
            max_records=10, backoff_s=0.1, backoff_max_s=0.1, progress=lambda: 0, name="test",
        )  # fmt: skip
    finally:
        gc.enable()
    assert freed_at_retry == [True, True, True]
