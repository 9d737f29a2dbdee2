"""A warm standby follows the leader and takes over when it dies, neither repeating nor losing an alert.

The same stream is graded once without interruption (the reference) and once by two graders over one database and
one set of topics: A takes the lease and grades, B finds it held and follows A's order log; A crashes in the middle
of the stream (cancelled, its lease released as a killed process's is, alerts already published past its last
commit), B takes over and grades the rest. The alerts topic must hold exactly the reference's alerts, once each,
and the events must end at the same levels. B must have followed A (posts fed while A led), published nothing while
it followed, and graded after the takeover without restoring the checkpoint again.
"""

from __future__ import annotations

import asyncio

import pytest

from services.grader.ports import AuditEntry
from services.grader.settings import CheckpointSettings, StandbySettings
from tests.services.grader.integration.conftest import MakeSettings, Running, alert_keys, produce_stream
from tests.services.grader.integration.helpers import read_alerts, synthetic_stream

pytestmark = pytest.mark.integration


async def _until(check: object, what: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():  # type: ignore[operator]
        assert loop.time() < deadline, what
        await asyncio.sleep(0.01)


async def test_standby_takes_over_without_repeating_or_losing_alerts(make_settings: MakeSettings) -> None:
    stream = synthetic_stream()
    reference = make_settings()
    await produce_stream(reference, stream)
    ref = await Running.start(reference)
    await _until(lambda: sum(ref.app.owner.positions.values()) >= len(stream), "the reference graded everything")
    expected_levels = {s.event_id: s.level for s in ref.app.owner.engine.snapshots()}
    await ref.graceful()
    expected = alert_keys(await read_alerts(reference.kafka, reference.topics.alerts))
    assert len(expected) >= 6

    # A checkpoint every 12 batches (of 25 posts): none while part 2 is followed, one or more in part 3 and 4, so the
    # standby also sees the order log emptied under it and must keep in step.
    settings = make_settings(
        checkpoint=CheckpointSettings(every_batches=12, every_s=3600),
        standby=StandbySettings(poll_s=0.05, takeover_grace_s=0.1),
    )
    part1, part2, part3, part4 = stream[:180], stream[180:300], stream[300:420], stream[420:]
    await produce_stream(settings, part1)
    a = await Running.start(settings)
    await a.wait_posts(len(part1))
    assert a.app.follower is not None and a.app.follower.leading

    b = await Running.start(settings)
    follower = b.app.follower
    assert follower is not None
    await _until(lambda: follower.reloads >= 1, "the standby restored the leader's checkpoint")
    await produce_stream(settings, part2)
    await _until(lambda: follower.posts >= 100, "the standby follows the leader's durable batches")
    assert not follower.leading and b.app.owner.stale, "a standby serves nothing while it follows"

    await produce_stream(settings, part3)
    await a.wait_posts(len(part1) + len(part2) + 60)
    await a.crash()
    out_at_crash = len(await read_alerts(settings.kafka, settings.topics.alerts))

    await produce_stream(settings, part4)
    await _until(lambda: follower.leading, "the standby took the lease")
    await _until(lambda: sum(b.app.owner.positions.values()) >= len(stream), "the standby graded the rest")
    levels = {s.event_id: s.level for s in b.app.owner.engine.snapshots()}
    loads, followed = follower.reloads, follower.posts
    await b.graceful()

    alerts = await read_alerts(settings.kafka, settings.topics.alerts, expect=len(expected))
    ids = [alert.id for alert in alerts]
    assert len(ids) == len(set(ids)), "an alert was published twice"
    assert alert_keys(alerts) == expected
    assert levels == expected_levels
    assert out_at_crash < len(expected), "the crash must leave alerts for the standby to publish"
    assert followed >= 100, f"the standby followed {followed} posts"
    assert loads >= 1


async def test_standby_reloads_after_a_command_and_leads_with_it(make_settings: MakeSettings) -> None:
    # An override changes the state outside the posts: following the order log cannot reproduce it, so the standby
    # must reload the checkpoint the command stored (its generation moved) and lead with the override in place.
    settings = make_settings(standby=StandbySettings(poll_s=0.05, takeover_grace_s=0.1))
    stream = synthetic_stream()
    await produce_stream(settings, stream[:300])
    a = await Running.start(settings)
    await a.wait_posts(300)
    b = await Running.start(settings)
    follower = b.app.follower
    assert follower is not None
    await _until(lambda: follower.reloads >= 1, "the standby restored the leader's checkpoint")

    event = a.app.owner.engine.snapshots()[0]
    level = "red" if event.level != "red" else "blue"
    at = a.app.owner.engine.clock_at
    assert at is not None
    await a.app.owner.command(
        lambda engine: engine.override(event.event_id, level, "test", "tester", at),
        AuditEntry(actor="tester", action="event.override", target=event.event_id),
    )
    await _until(lambda: follower.reloads >= 2, "the standby reloads the checkpoint after the command")
    await a.crash()
    await _until(lambda: follower.leading and not b.app.owner.stale, "the standby took over")
    taken = b.app.owner.engine.event(event.event_id)
    assert taken is not None and taken.level == level, "the new leader lost the override"
    await b.graceful()


async def test_a_standby_joining_a_quiet_leader_gets_a_checkpoint_to_follow(make_settings: MakeSettings) -> None:
    # Two batches of ten posts, the second one well within the time rule of the first, and then the stream is quiet:
    # the leader takes the checkpoint the time rule makes due while idle. Before, a quiet stream kept its last batches
    # uncovered until the next post, and a standby that joined found nothing to follow from (a CI run waited 60 s).
    settings = make_settings(
        checkpoint=CheckpointSettings(every_batches=1000, every_s=2.0),
        standby=StandbySettings(poll_s=0.05, takeover_grace_s=0.1),
    )
    stream = synthetic_stream()
    await produce_stream(settings, stream[:10])
    a = await Running.start(settings)
    await a.wait_posts(10)
    await produce_stream(settings, stream[10:20])
    await a.wait_posts(20)
    checkpointer = a.app.owner.checkpointer
    await _until(lambda: checkpointer.uncovered_batches == 0, "the quiet leader checkpointed its last batch", 15)
    taken = a.app.owner.checkpoints
    b = await Running.start(settings)
    follower = b.app.follower
    assert follower is not None
    await _until(lambda: follower.reloads >= 1, "the standby restored the quiet leader's checkpoint", 15)
    await asyncio.sleep(2.5)  # past the time rule again: an unchanged state is not stored again
    assert a.app.owner.checkpoints == taken
    assert not follower.leading
    await a.graceful()
    await b.graceful()
