"""The publisher over SQL (SQLite and PostgreSQL): the whole sign-off flow, audited, with its outbox events, and
optimistic concurrency so two concurrent approvals cannot both win."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from qingfeng.kafka import PUBLICATIONS
from qingfeng.v1 import publication_pb2

from services.publisher.application import RequestFacts
from services.publisher.core import machine
from services.publisher.core.model import Actor, Decision, DraftStatus, Kind, PublicationStatus
from services.publisher.errors import (
    AlreadySigned,
    ChecksFailed,
    ConcurrentModification,
    NotSignedOff,
    PermissionDenied,
    PublisherError,
)
from tests.services.publisher.harness import AUTHOR, DEPUTY, DIRECTOR, DIRECTOR_2, harness

pytestmark = pytest.mark.asyncio


async def test_sign_off_publish_deliver_audited_and_announced(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft()
        assert draft.status is DraftStatus.APPROVED
        assert "该局长正常履职" in draft.body and "市纪委监委" in draft.body
        pubs = await h.publisher.publish(DEPUTY, draft.id, [])
        assert {p.channel_id for p in pubs} == {"weibo-qingfeng", "mastodon-qingfeng"}
        assert await h.publisher.publish(DEPUTY, draft.id, []) == pubs  # idempotent: same publications
        assert await h.worker.run_once() == 2
        assert await h.worker.run_once() == 0
        done, _ = await h.publisher.get_draft(draft.id)
        assert done.status is DraftStatus.PUBLISHED and done.published_at == h.clock.now
        assert len(h.platform.posts) == 2
        for pub, _ in await h.publisher.list_publications(draft_id=draft.id, limit=10, offset=0):
            assert pub.status is PublicationStatus.PUBLISHED and pub.url.startswith("https://channel.test/")
        events = await h.outbox(PUBLICATIONS)
        assert [e.event_type for e in events] == ["publication.published"] * 2
        message = publication_pb2.Publication.FromString(events[0].payload)
        assert message.case_id == "case-1" and message.event_id == "ev-1" and message.external_id
        assert message.draft_kind == publication_pb2.DRAFT_KIND_REFUTATION
        actions = await h.audit_actions()
        assert actions[:5] == [
            "draft.create", "draft.submit", "draft.sign_off.approved", "draft.sign_off.approved", "draft.publish",
        ]  # fmt: skip
        assert actions.count("publication.published") == 2


async def test_two_concurrent_approvals_cannot_both_win(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.publisher.create_draft(AUTHOR, case_id="c", kind=Kind.STATEMENT, title="通报", body="正文。",
                                               level="blue", channel_ids=["weibo-qingfeng"])  # fmt: skip
        draft = await h.publisher.submit(AUTHOR, draft.id)
        results = await asyncio.gather(
            h.publisher.sign_off(DIRECTOR, draft.id, Decision.APPROVED, "", 1),
            h.publisher.sign_off(DIRECTOR_2, draft.id, Decision.APPROVED, "", 1),
            return_exceptions=True,
        )
        wins = [r for r in results if not isinstance(r, BaseException)]
        losses = [r for r in results if isinstance(r, BaseException)]
        assert len(wins) == 1 and len(losses) == 1
        assert isinstance(losses[0], (ConcurrentModification, AlreadySigned)), losses[0]
        final, _ = await h.publisher.get_draft(draft.id)
        assert final.status is DraftStatus.APPROVED
        assert [s.signer for s in final.chain] == [wins[0].chain[0].signer]
        assert (await h.audit_actions()).count("draft.sign_off.approved") == 1


async def test_interleaved_read_then_write_loses_on_the_version(db_url: str) -> None:
    """Both approvals read the same version before either writes: the second write matches no row."""
    async with harness(db_url) as h:
        draft = await h.publisher.create_draft(AUTHOR, case_id="c", kind=Kind.STATEMENT, title="通报", body="正文。",
                                               level="blue", channel_ids=["weibo-qingfeng"])  # fmt: skip
        draft = await h.publisher.submit(AUTHOR, draft.id)
        now = h.clock()
        first = machine.sign_off(draft, DIRECTOR, Decision.APPROVED, "", 1, now)
        second = machine.sign_off(draft, DIRECTOR_2, Decision.APPROVED, "", 1, now)
        async with h.store.transaction() as s:
            await h.store.save_draft(s, first, expected_version=draft.version)
        with pytest.raises(ConcurrentModification):
            async with h.store.transaction() as s:
                await h.store.save_draft(s, second, expected_version=draft.version)
        stored, _ = await h.publisher.get_draft(draft.id)
        assert stored.chain[0].signer == "director"


async def test_refusals_reach_the_caller_and_change_nothing(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.publisher.create_draft(AUTHOR, case_id="c", kind=Kind.STATEMENT, title="通报", body="正文。",
                                               level="yellow", channel_ids=["weibo-qingfeng"])  # fmt: skip
        with pytest.raises(NotSignedOff):
            await h.publisher.publish(DIRECTOR, draft.id, [])
        draft = await h.publisher.submit(AUTHOR, draft.id)
        with pytest.raises(PermissionDenied):
            await h.publisher.sign_off(AUTHOR, draft.id, Decision.APPROVED, "", 1)
        before = await h.audit_actions()
        with pytest.raises(PublisherError):
            await h.publisher.sign_off(DIRECTOR, draft.id, Decision.REJECTED, "", 1)
        assert await h.audit_actions() == before
        rejected = await h.publisher.sign_off(DIRECTOR, draft.id, Decision.REJECTED, "口径需统一", 1)
        assert rejected.status is DraftStatus.REJECTED


async def test_edit_after_approval_goes_back_and_keeps_versions(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft()
        edited = await h.publisher.update_draft(AUTHOR, draft.id, body=draft.body + "特此说明。")
        assert edited.status is DraftStatus.PENDING_APPROVAL and edited.revision == 2
        _, versions = await h.publisher.get_draft(draft.id)
        assert [v.revision for v in versions] == [1, 2]
        diff = await h.publisher.diff(draft.id, 1)
        assert "+" in diff and "特此说明。" in diff
        assert "draft.edit" in await h.audit_actions()


async def test_failed_check_blocks_publishing_with_the_reason(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.publisher.create_draft(AUTHOR, case_id="c", kind=Kind.STATEMENT, title="通报",
                                               body="据内部资料显示。" + "很长" * 300, level="blue",
                                               channel_ids=["mastodon-qingfeng"])  # fmt: skip
        draft = await h.publisher.submit(AUTHOR, draft.id)
        draft = await h.publisher.sign_off(DIRECTOR, draft.id, Decision.APPROVED, "", 1)
        with pytest.raises(ChecksFailed) as err:
            await h.publisher.publish(DIRECTOR, draft.id, [])
        assert any("forbidden word '内部资料'" in f for f in err.value.findings)
        assert any("too long for channel 'mastodon-qingfeng'" in f for f in err.value.findings)
        stored, _ = await h.publisher.get_draft(draft.id)
        assert stored.status is DraftStatus.APPROVED and h.platform.posts == {}


async def test_schedule_waits_for_its_time(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        at = h.clock.now + timedelta(hours=1)
        scheduled = await h.publisher.schedule(DIRECTOR, draft.id, at, [])
        assert scheduled.status is DraftStatus.SCHEDULED
        assert await h.worker.run_once() == 0
        h.clock.advance(hours=1)
        assert await h.worker.run_once() == 1
        done, _ = await h.publisher.get_draft(draft.id)
        assert done.status is DraftStatus.PUBLISHED and done.published_at == at


async def test_one_draft_per_request_id(db_url: str) -> None:
    async with harness(db_url) as h:
        request = RequestFacts(
            id="req-1", case_id="case-9", event_id="ev-9", kind=Kind.REFUTATION, level="orange",
            facts={"事件": "x", "核查结论": "y"}, due_at=None, requested_at=h.clock.now, requested_by="coordinator",
        )  # fmt: skip
        system = Actor("coordinator", None)
        first, created = await h.publisher.create_from_request(request, system)
        again, created_again = await h.publisher.create_from_request(request, system)
        assert created and not created_again and again.id == first.id
        assert first.due_at == h.clock.now + timedelta(hours=24) and first.request_id == "req-1"
        assert len(await h.publisher.list_drafts(case_id="case-9", limit=10, offset=0)) == 1


async def test_edit_of_a_scheduled_release_withdraws_it_until_signed_again(db_url: str) -> None:
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        await h.publisher.schedule(DIRECTOR, draft.id, h.clock.now + timedelta(minutes=30), [])
        assert len(await h.publisher.list_publications(draft_id=draft.id, limit=9, offset=0)) == 1
        edited = await h.publisher.update_draft(AUTHOR, draft.id, title="关于网传信息的说明（修订）")
        assert edited.status is DraftStatus.PENDING_APPROVAL and edited.scheduled_at is None
        assert await h.publisher.list_publications(draft_id=draft.id, limit=9, offset=0) == []
        h.clock.advance(hours=1)
        assert await h.worker.run_once() == 0 and h.platform.posts == {}
