"""After a failure the loop backs off between recoveries but probes a store that is down at a steady short interval
(consumer.py ``RetrySchedule``): a broker back after 20 s was noticed only at the probe due 31 s after the failure
when the probes followed the doubling backoff (bench/soak.py, kafka restart)."""

from __future__ import annotations

import asyncio
import time

from services.grader.consumer import PostConsumer, RetrySchedule
from services.grader.settings import ConsumerSettings
from tests.services.grader.unit.test_state import FakeDeadLetters, FakeReader, Ports, _until, started, story


def test_failed_attempts_double_up_to_the_maximum_and_progress_starts_over() -> None:
    schedule = RetrySchedule(1.0, 30.0, 1.0)
    assert [schedule.failed() for _ in range(7)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    schedule.progressed()
    assert schedule.failed() == 1.0


def test_probes_keep_a_steady_interval_and_leave_the_backoff_alone() -> None:
    schedule = RetrySchedule(1.0, 30.0, 1.0)
    schedule.failed()
    waits = [schedule.store_down() for _ in range(40)]
    assert waits == [1.0] * 40  # a store down for 40 s is asked 40 times, not at 1, 3, 7, 15, 31 s
    assert schedule.failed() == 2.0  # the next failed recovery still backs off from where it was


def test_a_probe_never_waits_longer_than_the_backoff() -> None:
    schedule = RetrySchedule(0.1, 30.0, 1.0)
    schedule.failed()
    assert schedule.store_down() == 0.2


def test_the_timeline_of_a_twenty_second_outage() -> None:
    """Seconds from the failure until the loop first asks a store that is back 20 s after it (probes take 0 s)."""

    def noticed(schedule: RetrySchedule, back_at: float) -> float:
        now = schedule.failed()
        while now < back_at:
            now += schedule.store_down()
        return now

    def before(back_at: float) -> float:
        # The schedule before: every probe that found the store down doubled the wait, as a failed recovery does.
        now, delay = 0.0, 1.0
        while now < back_at:
            now, delay = now + delay, min(delay * 2, 30.0)
        return now

    assert noticed(RetrySchedule(1.0, 30.0, 1.0), 20.0) == 20.0
    assert before(20.0) == 31.0
    assert noticed(RetrySchedule(1.0, 30.0, 1.0), 35.0) == 35.0
    assert before(35.0) == 61.0


async def test_the_loop_probes_at_the_interval_while_a_store_is_down_and_recovers_at_the_next_probe() -> None:
    ports = Ports()
    owner = await started(ports, every_batches=2)

    async def stores_answer() -> None:
        if ports.sink.fail:
            raise ConnectionError("kafka: connection refused")

    # A backoff of 0.05 s doubling to 60 s: with the probes on it, twenty probes would take ~14 hours.
    settings = ConsumerSettings(batch_size=5, poll_timeout_ms=5, retry_backoff_s=0.05, retry_backoff_max_s=60.0)
    consumer = PostConsumer(owner, FakeReader.of(story(60)), FakeDeadLetters(), settings,
                            stores_answer=stores_answer, probe_interval_s=0.005)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    await _until(lambda: consumer.batches >= 4, task)
    ports.sink.fail = True
    await _until(lambda: consumer.store_waits >= 20, task)
    assert owner.stale and consumer.recoveries == 0
    ports.sink.fail = False
    back = time.monotonic()
    await _until(lambda: not owner.stale, task)
    assert time.monotonic() - back < 1.0  # the next probe, not the backoff's next step (0.05 * 2**20 s)
    await _until(lambda: sum(owner.positions.values()) == 60, task)
    stop.set()
    await task
    assert consumer.recoveries == 1
