"""The delivery worker over SQL with fake channels: retries, dead letters, replay, and exactly one post after a
crash between the channel's acceptance and the database update."""

from __future__ import annotations

from datetime import timedelta

import pytest
from qingfeng.kafka import PUBLICATIONS, PUBLICATIONS_DEADLETTER
from qingfeng.v1 import post_pb2, publication_pb2

from services.publisher.core.model import DraftStatus, PublicationStatus
from tests.services.publisher.fakes import Killed, channel_error, rate_limited
from tests.services.publisher.harness import DIRECTOR, harness

pytestmark = pytest.mark.asyncio


async def test_retryable_errors_back_off_and_honour_retry_after(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        channel = h.channels["weibo-qingfeng"]
        channel.failures = [rate_limited(retry_after_s=45)]
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()
        waiting, _ = await h.publisher.get_publication(pub.id)
        assert waiting.status is PublicationStatus.PENDING and waiting.attempts == 1
        assert waiting.next_attempt_at == h.clock.now + timedelta(seconds=45)
        h.clock.advance(seconds=44)
        assert await h.worker.run_once() == 0
        h.clock.advance(seconds=1)
        assert await h.worker.run_once() == 1
        done, _ = await h.publisher.get_publication(pub.id)
        assert done.status is PublicationStatus.PUBLISHED and done.attempts == 2
        # The second attempt looked on the channel before delivering again.
        assert channel.calls == [f"deliver:{pub.id}", f"find:{pub.id}", f"deliver:{pub.id}"]
        assert h.platform.count(pub.id) == 1


async def test_non_retryable_error_dead_letters_at_once_and_replays(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        h.channels["weibo-qingfeng"].failures = [channel_error("INVALID", "422 text rejected")]
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()
        failed, _ = await h.publisher.get_publication(pub.id)
        assert failed.status is PublicationStatus.FAILED and failed.attempts == 1
        assert "422 text rejected" in failed.last_error
        stored, _ = await h.publisher.get_draft(draft.id)
        assert stored.status is DraftStatus.FAILED
        [letter_row] = await h.outbox(PUBLICATIONS_DEADLETTER)
        letter = post_pb2.DeadLetter.FromString(letter_row.payload)
        assert letter.reason == post_pb2.DEAD_LETTER_REASON_DELIVERY_FAILED and letter.key == pub.id
        assert publication_pb2.Publication.FromString(letter.payload).case_id == "case-1"
        # The operator replays it (PublishDraft on a failed draft): delivered once.
        await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()
        done, _ = await h.publisher.get_publication(pub.id)
        assert done.status is PublicationStatus.PUBLISHED and h.platform.count(pub.id) == 1
        assert (await h.publisher.get_draft(draft.id))[0].status is DraftStatus.PUBLISHED
        assert "draft.replay_failed" in await h.audit_actions()


async def test_attempts_run_out_one_channel_fails_the_other_publishes(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft()
        h.channels["mastodon-qingfeng"].failures = [channel_error("UNAVAILABLE", "503")] * 3
        await h.publisher.publish(DIRECTOR, draft.id, [])
        for _ in range(3):
            await h.worker.run_once()
            h.clock.advance(seconds=120)
        stored, _ = await h.publisher.get_draft(draft.id)
        assert stored.status is DraftStatus.PARTIALLY_FAILED
        pubs = {p.channel_id: p for p, _ in await h.publisher.list_publications(draft_id=draft.id, limit=9, offset=0)}
        assert pubs["mastodon-qingfeng"].status is PublicationStatus.FAILED
        assert pubs["mastodon-qingfeng"].attempts == 3
        assert pubs["weibo-qingfeng"].status is PublicationStatus.PUBLISHED
        assert len(await h.outbox(PUBLICATIONS_DEADLETTER)) == 1
        # A single dead letter can be replayed on its own (the operator CLI does this).
        replayed = await h.publisher.replay(DIRECTOR, pubs["mastodon-qingfeng"].id)
        assert replayed.status is PublicationStatus.PENDING
        await h.worker.run_once()
        assert (await h.publisher.get_draft(draft.id))[0].status is DraftStatus.PUBLISHED


async def test_crash_after_the_channel_accepted_then_restart_posts_exactly_once(db_url: str) -> None:
    async with harness(db_url) as first:
        draft = await first.approved_draft(channel_ids=("weibo-qingfeng",))
        [pub] = await first.publisher.publish(DIRECTOR, draft.id, [])
        first.channels["weibo-qingfeng"].after_accept = [Killed()]
        with pytest.raises(Killed):
            await first.worker.run_once()
        platform, clock = first.platform, first.clock
    assert platform.count(pub.id) == 1  # the post landed; the database never heard of it
    async with harness(db_url, platform=platform, clock=clock) as second:
        stuck, _ = await second.publisher.get_publication(pub.id)
        assert stuck.in_flight and stuck.status is PublicationStatus.PENDING
        assert await second.worker.run_once() == 0  # the claim's lease has not run out yet
        clock.advance(seconds=31)
        assert await second.worker.run_once() == 1
        done, _ = await second.publisher.get_publication(pub.id)
        assert done.status is PublicationStatus.PUBLISHED and done.external_id == "1"
        assert platform.count(pub.id) == 1
        assert second.channels["weibo-qingfeng"].calls == [f"find:{pub.id}"]
        [event] = await second.outbox(PUBLICATIONS)
        assert publication_pb2.Publication.FromString(event.payload).external_id == "1"


async def test_lost_reply_is_an_unknown_outcome_retried_with_a_lookup(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        h.channels["weibo-qingfeng"].after_accept = [TimeoutError("read timeout")]
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()
        pending, _ = await h.publisher.get_publication(pub.id)
        assert pending.status is PublicationStatus.PENDING and "outcome unknown" in pending.last_error
        h.clock.advance(seconds=60)
        await h.worker.run_once()
        assert h.platform.count(pub.id) == 1
        assert (await h.publisher.get_publication(pub.id))[0].status is PublicationStatus.PUBLISHED


async def test_retract_and_correct_go_to_the_channel_and_the_outbox(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()
        fixed = await h.publisher.correct(DIRECTOR, pub.id, "更正：核查时间为11月30日，联系电话13912345678。")
        assert fixed.status is PublicationStatus.CORRECTED
        assert fixed.corrections == ("更正：核查时间为11月30日，联系电话139****5678。",)
        [(external_id, sent)] = h.platform.corrections
        assert external_id == "1" and sent.startswith(draft.title + "\n\n" + draft.body)
        assert sent.endswith("\n\n【更正】更正：核查时间为11月30日，联系电话139****5678。")
        gone = await h.publisher.retract(DIRECTOR, pub.id, "信息已过时")
        assert gone.status is PublicationStatus.RETRACTED and h.platform.retracted == ["1"]
        assert (await h.publisher.get_draft(draft.id))[0].status is DraftStatus.RETRACTED
        types = [e.event_type for e in await h.outbox(PUBLICATIONS)]
        assert types == ["publication.published", "publication.corrected", "publication.retracted"]
        actions = await h.audit_actions()
        assert "publication.correct" in actions and "publication.retract" in actions


async def test_a_channel_removed_after_scheduling_dead_letters_with_the_reason(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        del h.channels["weibo-qingfeng"]  # the publisher restarted without this channel
        await h.worker.run_once()
        failed, _ = await h.publisher.get_publication(pub.id)
        assert failed.status is PublicationStatus.FAILED and "'weibo-qingfeng' is not configured" in failed.last_error
        assert len(await h.outbox(PUBLICATIONS_DEADLETTER)) == 1
