"""The publisher's use cases: one function per command, each one transaction of state + audit + outbox.

Each command reads the draft, lets the core decide (``core.machine``), writes it back at the version it read
(optimistic concurrency), appends the step to the hash-chained audit log and, when the outside world must hear of
it, queues a ``Publication`` on ``qingfeng.publications.v1`` in the same transaction (transactional outbox). The
gRPC servicer and the Kafka consumer only translate into these calls.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from qingfeng.storage import append_audit
from qingfeng.v1 import publication_pb2
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.publisher import convert
from services.publisher.adapters.sql import SqlStore
from services.publisher.core import delivery, machine
from services.publisher.core.checks import check_release, mask_private_numbers, release_text
from services.publisher.core.clocks import ResponseClock, due_at, response_clock
from services.publisher.core.model import (
    Actor,
    Decision,
    Draft,
    DraftStatus,
    Kind,
    Publication,
    PublicationStatus,
    Version,
)
from services.publisher.core.policy import Policies
from services.publisher.core.texts import diff_versions, fill
from services.publisher.errors import ChecksFailed, InvalidArgument, NotFound
from services.publisher.events import Topics, queue_dead_letter, queue_publication
from services.publisher.ports import ChannelAdapter

__all__ = ["Publisher", "RequestFacts", "Topics", "publication_id"]

# Opens the correction notice appended to a corrected release.
CORRECTION_MARK = "【更正】"
_ID_NAMESPACE = uuid.UUID("6f1c1d3e-2b7a-4e0c-9a55-3f0b8d6c9e21")


def publication_id(draft_id: str, channel_id: str) -> str:
    """Stable per (draft, channel): asking to publish twice finds the same publication, never a second one."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{draft_id}/{channel_id}"))


@dataclass(frozen=True)
class RequestFacts:
    """A coordinator's PublicationRequest, unpacked."""

    id: str
    case_id: str
    event_id: str
    kind: Kind
    level: str
    facts: Mapping[str, str]
    due_at: datetime | None
    requested_at: datetime | None
    requested_by: str
    reply_to_post_id: str = ""
    playbook_step: str = ""


def _audit_details(draft: Draft, **extra: Any) -> dict[str, Any]:
    return {"case_id": draft.case_id, "status": draft.status.value, "revision": draft.revision, **extra}


class Publisher:
    """The commands and queries behind PublisherService, the request consumer and the delivery worker."""

    def __init__(
        self,
        store: SqlStore,
        policies: Policies,
        channels: Mapping[str, ChannelAdapter],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        topics: Topics | None = None,
        default_channels: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.policies = policies
        self.channels = channels
        self.clock = clock
        self._new_id = new_id
        self.topics = topics or Topics()
        # Channels a draft gets when nobody chose any: every enabled channel with an adapter, unless configured.
        self.default_channels = tuple(default_channels) or tuple(
            c.id for c in policies.channels.values() if c.enabled and c.id in channels
        )

    # Queries

    def clock_of(self, draft: Draft) -> ResponseClock | None:
        return response_clock(draft, self.policies.signoff.clocks, self.clock())

    async def get_draft(self, draft_id: str) -> tuple[Draft, list[Version]]:
        async with self.store.transaction() as s:
            return await self.store.get_draft(s, draft_id), await self.store.versions(s, draft_id)

    async def diff(self, draft_id: str, from_revision: int) -> str:
        _, versions = await self.get_draft(draft_id)
        by_revision = {v.revision: v for v in versions}
        if from_revision not in by_revision:
            raise InvalidArgument.of("diff_from_revision", f"draft {draft_id!r} has no revision {from_revision}")
        return diff_versions(by_revision[from_revision], versions[-1])

    async def list_drafts(self, **filters: Any) -> list[Draft]:
        async with self.store.transaction() as s:
            return await self.store.list_drafts(s, **filters)

    async def get_publication(self, publication_id: str) -> tuple[Publication, Draft]:
        async with self.store.transaction() as s:
            pub = await self.store.get_publication(s, publication_id)
            return pub, await self.store.get_draft(s, pub.draft_id)

    async def list_publications(self, **filters: Any) -> list[tuple[Publication, Draft]]:
        async with self.store.transaction() as s:
            pubs = await self.store.list_publications(s, **filters)
            drafts = {p.draft_id: await self.store.get_draft(s, p.draft_id) for p in pubs}
            return [(p, drafts[p.draft_id]) for p in pubs]

    # Commands on drafts

    async def create_draft(
        self,
        actor: Actor,
        *,
        case_id: str,
        kind: Kind,
        title: str = "",
        body: str = "",
        template_id: str = "",
        values: Mapping[str, str] | None = None,
        level: str = "",
        event_id: str = "",
        channel_ids: Sequence[str] = (),
        reply_to_post_id: str = "",
        due: datetime | None = None,
    ) -> Draft:
        now = self.clock()
        if template_id:
            template = self.policies.templates.get(template_id)
            if template is None:
                raise InvalidArgument.of("draft.template_id", f"no template {template_id!r}")
            if template.kind is not kind:
                raise InvalidArgument.of("draft.template_id", f"{template_id!r} is for {template.kind.value} releases")
            filled_title, filled_body = fill(template, {**self.policies.template_defaults, **(values or {})})
            title, body = title or filled_title, body or filled_body
        if not title.strip() and not body.strip():
            raise InvalidArgument.of("draft.body", "give a title and body, or a template_id")
        self._known_channels(channel_ids)
        draft = machine.new_draft(
            id=self._new_id(), case_id=case_id, kind=kind, author=actor, now=now, title=title, body=body,
            level=level, event_id=event_id, template_id=template_id, reply_to_post_id=reply_to_post_id,
            channel_ids=channel_ids or self.default_channels, due_at=due, clock_started_at=now,
        )  # fmt: skip
        async with self.store.transaction() as s:
            await self.store.insert_draft(s, draft)
            await self._version(s, draft, actor.principal)
            await self._audit(s, actor, "draft.create", draft, template_id=template_id)
        return draft

    async def create_from_request(self, request: RequestFacts, actor: Actor) -> tuple[Draft, bool]:
        """The draft for a coordinator's request: created once per request id; a replay returns the first one."""
        async with self.store.transaction() as s:
            existing = await self.store.draft_for_request(s, request.id)
            if existing is not None:
                return existing, False
        template = self.policies.template_for(request.kind)
        if template is None:  # pragma: no cover - the templates policy requires one per kind
            raise InvalidArgument.of("kind", f"no template for {request.kind.value}")
        title, body = fill(template, {**self.policies.template_defaults, **request.facts})
        started = request.requested_at or self.clock()
        deadline = request.due_at or due_at(request.kind, request.level, started, self.policies.signoff.clocks)
        draft = machine.new_draft(
            id=self._new_id(), case_id=request.case_id, kind=request.kind, author=actor, now=self.clock(),
            title=title, body=body, level=request.level, event_id=request.event_id, request_id=request.id,
            template_id=template.id, reply_to_post_id=request.reply_to_post_id, channel_ids=self.default_channels,
            due_at=deadline, clock_started_at=started,
        )  # fmt: skip
        try:
            async with self.store.transaction() as s:
                await self.store.insert_draft(s, draft)
                await self._version(s, draft, actor.principal)
                await self._audit(
                    s, actor, "draft.create_from_request", draft, request_id=request.id,
                    playbook_step=request.playbook_step, requested_by=request.requested_by,
                )  # fmt: skip
        except IntegrityError:
            # A concurrent delivery of the same request won the unique request_id: theirs is the draft.
            async with self.store.transaction() as s:
                won = await self.store.draft_for_request(s, request.id)
            if won is None:
                raise
            return won, False
        return draft, True

    async def update_draft(
        self,
        actor: Actor,
        draft_id: str,
        *,
        title: str | None = None,
        body: str | None = None,
        channel_ids: Sequence[str] | None = None,
        reply_to_post_id: str | None = None,
        expected_revision: int = 0,
    ) -> Draft:
        if channel_ids:
            self._known_channels(channel_ids)
        async with self.store.transaction() as s:
            old = await self.store.get_draft(s, draft_id)
            new = machine.edit(
                old, actor, self.clock(), title=title, body=body, channel_ids=channel_ids,
                reply_to_post_id=reply_to_post_id, expected_revision=expected_revision,
            )  # fmt: skip
            await self.store.save_draft(s, new, expected_version=old.version)
            if new.revision != old.revision:
                await self._version(s, new, actor.principal)
            if old.status is DraftStatus.SCHEDULED and new.status is not DraftStatus.SCHEDULED:
                await self._cancel_pending(s, new)
            back = old.status in (DraftStatus.APPROVED, DraftStatus.SCHEDULED, DraftStatus.PENDING_APPROVAL)
            await self._audit(s, actor, "draft.edit", new, previous_status=old.status.value,
                              back_to_approval=back and new.status is DraftStatus.PENDING_APPROVAL)  # fmt: skip
        return new

    async def submit(self, actor: Actor, draft_id: str) -> Draft:
        async with self.store.transaction() as s:
            old = await self.store.get_draft(s, draft_id)
            new = machine.submit(old, actor, self.policies.signoff, self.clock())
            await self.store.save_draft(s, new, expected_version=old.version)
            await self._audit(s, actor, "draft.submit", new, chain=[st.role for st in new.chain],
                              policy=self.policies.signoff.version)  # fmt: skip
        return new

    async def sign_off(self, actor: Actor, draft_id: str, decision: Decision, comment: str, revision: int) -> Draft:
        async with self.store.transaction() as s:
            old = await self.store.get_draft(s, draft_id)
            new = machine.sign_off(old, actor, decision, comment, revision, self.clock())
            await self.store.save_draft(s, new, expected_version=old.version)
            step = next(st for st in new.chain if st.signer == actor.principal)
            await self._audit(s, actor, f"draft.sign_off.{decision.value}", new, step=step.order, role=step.role,
                              comment=comment)  # fmt: skip
        return new

    async def schedule(self, actor: Actor, draft_id: str, at: datetime, channel_ids: Sequence[str]) -> Draft:
        self._known_channels(channel_ids)
        now = self.clock()
        async with self.store.transaction() as s:
            old = await self.store.get_draft(s, draft_id)
            new = machine.schedule(old, at, channel_ids, now)
            self._check(new)
            await self.store.save_draft(s, new, expected_version=old.version)
            await self._cancel_pending(s, new)
            for channel_id in new.channel_ids:
                await self._upsert_publication(s, new, channel_id, due=at, now=now)
            await self._audit(s, actor, "draft.schedule", new, scheduled_at=at.isoformat(),
                              channels=list(new.channel_ids))  # fmt: skip
        return new

    async def publish(self, actor: Actor, draft_id: str, channel_ids: Sequence[str]) -> list[Publication]:
        """Publish now; asking again returns the same publications; on a failed draft, replay its dead letters."""
        self._known_channels(channel_ids)
        now = self.clock()
        async with self.store.transaction() as s:
            old = await self.store.get_draft(s, draft_id)
            if old.status in (DraftStatus.PUBLISHING, DraftStatus.PUBLISHED, DraftStatus.RETRACTED):
                return await self.store.publications_of(s, draft_id)
            if old.status in (DraftStatus.FAILED, DraftStatus.PARTIALLY_FAILED):
                return await self._replay_failed(s, actor, old, now)
            new = machine.start_publishing(old, channel_ids, now)
            self._check(new)
            await self.store.save_draft(s, new, expected_version=old.version)
            await self._cancel_pending(s, new)
            for channel_id in new.channel_ids:
                await self._upsert_publication(s, new, channel_id, due=now, now=now)
            await self._audit(s, actor, "draft.publish", new, channels=list(new.channel_ids))
            return await self.store.publications_of(s, draft_id)

    async def replay(self, actor: Actor, publication_id: str) -> Publication:
        """An operator sends one dead-lettered publication again."""
        now = self.clock()
        async with self.store.transaction() as s:
            pub = await self.store.get_publication(s, publication_id)
            draft = await self.store.get_draft(s, pub.draft_id)
            again = delivery.replayed(pub, now)
            await self.store.save_publication(s, again, expected_version=pub.version, now=now)
            await self.settle_draft(s, draft, now)
            await append_audit(s, actor=actor.principal, agency=actor.agency, action="publication.replay",
                               target=f"publication/{pub.id}",
                               details={"draft_id": draft.id, "last_error": pub.last_error},
                               at=now)  # fmt: skip
            return again

    # Commands on publications (the channel first, then the record: a failed channel call changes nothing here)

    async def retract(self, actor: Actor, publication_id: str, reason: str) -> Publication:
        pub, draft = await self.get_publication(publication_id)
        now = self.clock()
        gone = delivery.retracted(pub, reason, now)  # refuses before touching the channel
        await self._adapter(pub.channel_id).retract(pub.external_id)
        async with self.store.transaction() as s:
            current = await self.store.get_publication(s, publication_id)
            gone = delivery.retracted(current, reason, now)
            await self.store.save_publication(s, gone, expected_version=current.version, now=now)
            draft = await self.settle_draft(s, draft, now)
            await self.emit(s, gone, draft, "publication.retracted")
            await append_audit(s, actor=actor.principal, agency=actor.agency, action="publication.retract",
                               target=f"publication/{pub.id}", details={"reason": reason, "case_id": pub.case_id},
                               at=now)  # fmt: skip
        return gone

    async def correct(self, actor: Actor, publication_id: str, text: str) -> Publication:
        """Send the release with the correction notice appended (an edit in place where the channel can edit, a new
        linked status where it cannot), checked and masked like the release; then record the notice."""
        pub, draft = await self.get_publication(publication_id)
        delivery.corrected(pub, text)  # refuses before touching the channel
        notice = text.strip()
        title, body = draft.title, f"{draft.body}\n\n{CORRECTION_MARK}{notice}"
        channel = self.policies.channels.get(pub.channel_id)
        if channel is not None:
            result = check_release(title, body, channel, self.policies.checks)
            if not result.ok:
                raise ChecksFailed([f"{pub.channel_id}: {f}" for f in result.findings])
            title, body = result.title, result.body
            notice = mask_private_numbers(notice, self.policies.checks.public_numbers)[0]
        await self._adapter(pub.channel_id).correct(pub.external_id, release_text(title, body))
        now = self.clock()
        async with self.store.transaction() as s:
            current = await self.store.get_publication(s, publication_id)
            fixed = delivery.corrected(current, notice)
            await self.store.save_publication(s, fixed, expected_version=current.version, now=now)
            await self.emit(s, fixed, draft, "publication.corrected")
            await append_audit(s, actor=actor.principal, agency=actor.agency, action="publication.correct",
                               target=f"publication/{pub.id}", details={"text": notice, "case_id": pub.case_id},
                               at=now)  # fmt: skip
        return fixed

    # Helpers shared with the delivery worker

    def _adapter(self, channel_id: str) -> ChannelAdapter:
        adapter = self.channels.get(channel_id)
        if adapter is None:
            raise NotFound("channel", channel_id)
        return adapter

    def _known_channels(self, channel_ids: Sequence[str]) -> None:
        for i, channel_id in enumerate(channel_ids):
            rule = self.policies.channels.get(channel_id)
            if rule is None or channel_id not in self.channels:
                raise InvalidArgument.of(f"channel_ids[{i}]", f"no channel {channel_id!r} is configured")
            if not rule.enabled:
                raise InvalidArgument.of(f"channel_ids[{i}]", f"channel {channel_id!r} is disabled")

    def _check(self, draft: Draft) -> None:
        findings: list[str] = []
        for channel_id in draft.channel_ids:
            rule = self.policies.channels[channel_id]
            result = check_release(draft.title, draft.body, rule, self.policies.checks)
            findings += [f"{channel_id}: {f}" for f in result.findings]
        if findings:
            raise ChecksFailed(findings)

    async def _version(self, s: AsyncSession, draft: Draft, author: str) -> None:
        await self.store.add_version(s, draft.id, Version(draft.revision, draft.title, draft.body, author,
                                                          draft.updated_at))  # fmt: skip

    async def _audit(self, s: AsyncSession, actor: Actor, action: str, draft: Draft, **details: Any) -> None:
        await append_audit(s, actor=actor.principal, agency=actor.agency, action=action, target=f"draft/{draft.id}",
                           details=_audit_details(draft, **details), at=draft.updated_at)  # fmt: skip

    async def _upsert_publication(self, s: AsyncSession, draft: Draft, channel_id: str, *, due: datetime,
                                  now: datetime) -> None:  # fmt: skip
        pid = publication_id(draft.id, channel_id)
        try:
            current = await self.store.get_publication(s, pid)
        except NotFound:
            pub = Publication(id=pid, draft_id=draft.id, case_id=draft.case_id, channel_id=channel_id, due_at=due)
            await self.store.insert_publication(s, pub, now)
            return
        if current.status is PublicationStatus.PENDING:
            await self.store.save_publication(s, replace(current, due_at=due, version=current.version + 1),
                                              expected_version=current.version, now=now)  # fmt: skip

    async def _cancel_pending(self, s: AsyncSession, draft: Draft) -> None:
        """Publications not yet attempted that the draft no longer wants (re-scheduled elsewhere, sent back)."""
        wanted = draft.channel_ids if draft.status in (DraftStatus.SCHEDULED, DraftStatus.PUBLISHING) else ()
        for pub in await self.store.publications_of(s, draft.id):
            if pub.status is PublicationStatus.PENDING and pub.attempts == 0 and pub.channel_id not in wanted:
                await self.store.delete_publication(s, pub.id)

    async def _replay_failed(self, s: AsyncSession, actor: Actor, draft: Draft, now: datetime) -> list[Publication]:
        for pub in await self.store.publications_of(s, draft.id):
            if pub.status is PublicationStatus.FAILED:
                await self.store.save_publication(s, delivery.replayed(pub, now), expected_version=pub.version, now=now)
        await self.settle_draft(s, draft, now)
        await self._audit(s, actor, "draft.replay_failed", draft)
        return await self.store.publications_of(s, draft.id)

    async def settle_draft(self, s: AsyncSession, draft: Draft, now: datetime) -> Draft:
        current = await self.store.get_draft(s, draft.id)
        settled = machine.settle(current, await self.store.publications_of(s, draft.id), now)
        await self.store.save_draft(s, settled, expected_version=current.version)
        return settled

    def publication_message(self, pub: Publication, draft: Draft) -> publication_pb2.Publication:
        return convert.publication_proto(pub, draft, self.policies.channels.get(pub.channel_id), self.clock_of(draft))

    async def emit(self, s: AsyncSession, pub: Publication, draft: Draft, event_type: str) -> None:
        await queue_publication(s, self.publication_message(pub, draft), version=pub.version, event_type=event_type,
                                topic=self.topics.publications, now=self.clock())  # fmt: skip

    async def dead_letter(self, s: AsyncSession, pub: Publication, draft: Draft) -> None:
        await queue_dead_letter(s, self.publication_message(pub, draft), version=pub.version, topics=self.topics,
                                now=self.clock())  # fmt: skip
