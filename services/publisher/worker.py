"""The delivery worker: picks due publications, delivers them through their channel, records where they landed.

One attempt is three steps, and the order is what makes the effect exactly-once:

1. *claim* — in its own committed transaction: ``in_flight``, ``attempts``+1, at the version read (two workers
   cannot claim the same attempt). A scheduled draft whose time came turns PUBLISHING here.
2. *channel* — with no transaction open: if an earlier attempt was made (``core.delivery.needs_lookup``) ask the
   channel first whether it landed (``find``), and deliver only if not. The publication id is the idempotency key.
3. *record* — outcome, audit record and ``Publication`` event (outbox) in one transaction; after the last attempt a
   dead letter on ``qingfeng.publications-deadletter.v1`` too, and the draft settles (PUBLISHED / PARTIALLY_FAILED /
   FAILED).

A crash between 2 and 3 leaves the claim set: once its lease runs out the publication is due again, and step 2
finds the post instead of making a second one. A ``ChannelError`` that can succeed later (rate-limited, unavailable)
backs off, honouring Retry-After; one that cannot (invalid, unauthorised) dead-letters at once. Any other exception
is an unknown outcome: retried, with the lookup first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from qingfeng.storage import append_audit

from services.publisher.application import Publisher
from services.publisher.core import delivery, machine
from services.publisher.core.checks import check_release
from services.publisher.core.model import Actor, DraftStatus, Publication, PublicationStatus
from services.publisher.errors import ConcurrentModification
from services.publisher.ports import ChannelError, ChannelErrorKind, Delivered, Delivery

__all__ = ["WORKER", "DeliveryWorker"]

_log = logging.getLogger(__name__)
WORKER = Actor("publisher-worker", None)


class DeliveryWorker:
    def __init__(self, publisher: Publisher, retry: delivery.RetryPolicy, *, batch_size: int = 20) -> None:
        self.publisher = publisher
        self.store = publisher.store
        self.retry = retry
        self.batch_size = batch_size

    async def run_once(self) -> int:
        """Attempt every publication due now; returns how many attempts were made."""
        now = self.publisher.clock()
        async with self.store.transaction() as s:
            due = await self.store.due_publications(s, now, lease_s=self.retry.lease_s, limit=self.batch_size)
        made = 0
        for pub in due:
            if await self.attempt(pub.id):
                made += 1
        return made

    async def run(self, stop: asyncio.Event, *, idle_s: float = 1.0, retry_s: float = 5.0) -> None:
        while not stop.is_set():
            pause = idle_s
            try:
                if await self.run_once() >= self.batch_size:
                    pause = 0.0
            except Exception:
                _log.exception("delivery worker: database error")
                pause = retry_s
            if pause:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=pause)

    async def attempt(self, publication_id: str) -> bool:
        claimed = await self._claim(publication_id)
        if claimed is None:
            return False
        pub, look_first = claimed
        outcome = await self._deliver(pub, look_first)
        await self._record(pub, outcome)
        return True

    async def _claim(self, publication_id: str) -> tuple[Publication, bool] | None:
        now = self.publisher.clock()
        try:
            async with self.store.transaction() as s:
                current = await self.store.get_publication(s, publication_id)
                if current.status is not PublicationStatus.PENDING:
                    return None
                claimed = delivery.claim(current, now)
                await self.store.save_publication(s, claimed, expected_version=current.version, now=now)
                draft = await self.store.get_draft(s, current.draft_id)
                if draft.status is DraftStatus.SCHEDULED:
                    await self.store.save_draft(s, machine.came_due(draft, now), expected_version=draft.version)
                await append_audit(s, actor=WORKER.principal, action="publication.attempt",
                                   target=f"publication/{current.id}",
                                   details={"attempt": claimed.attempts, "channel_id": current.channel_id,
                                            "lookup_first": delivery.needs_lookup(current)},
                                   at=now)  # fmt: skip
        except ConcurrentModification:
            return None  # another worker claimed it
        return claimed, delivery.needs_lookup(current)

    async def _deliver(self, pub: Publication, look_first: bool) -> Delivered | ChannelError | Exception:
        adapter = self.publisher.channels.get(pub.channel_id)
        if adapter is None:
            # Disabled or removed since it was scheduled: dead-letter it; an operator replays once it is back.
            return ChannelError(ChannelErrorKind.INVALID, f"channel {pub.channel_id!r} is not configured")
        try:
            if look_first:
                found = await adapter.find(pub.id)
                if found is not None:
                    _log.info("publication %s already on %s (earlier attempt landed)", pub.id, pub.channel_id)
                    return found
            async with self.store.transaction() as s:
                draft = await self.store.get_draft(s, pub.draft_id)
            rule = self.publisher.policies.channels.get(pub.channel_id)
            title, body = draft.title, draft.body
            if rule is not None:
                checked = check_release(draft.title, draft.body, rule, self.publisher.policies.checks)
                if not checked.ok:
                    return ChannelError(
                        ChannelErrorKind.INVALID, "checks before publishing failed: " + "; ".join(checked.findings)
                    )
                title, body = checked.title, checked.body
            return await adapter.deliver(Delivery(pub.id, pub.channel_id, title, body, None))
        except ChannelError as err:
            return err
        except Exception as err:  # unknown outcome (timeout, bug): retried with a lookup first
            _log.warning("publication %s on %s: outcome unknown: %r", pub.id, pub.channel_id, err)
            return err

    async def _record(self, claimed: Publication, outcome: Delivered | ChannelError | Exception) -> None:
        now = self.publisher.clock()
        async with self.store.transaction() as s:
            current = await self.store.get_publication(s, claimed.id)
            if isinstance(outcome, Delivered):
                after = delivery.delivered(current, outcome.external_id, outcome.url, now)
                event = "publication.published"
            elif isinstance(outcome, ChannelError):
                after = delivery.failed(current, str(outcome), now, self.retry, retryable=outcome.retryable,
                                        retry_after_s=outcome.retry_after_s)  # fmt: skip
                event = "publication.failed"
            else:
                after = delivery.failed(current, f"outcome unknown: {outcome!r}", now, self.retry, retryable=True)
                event = "publication.failed"
            await self.store.save_publication(s, after, expected_version=current.version, now=now)
            draft = await self.store.get_draft(s, current.draft_id)
            draft = await self.publisher.settle_draft(s, draft, now)
            if after.status is not PublicationStatus.PENDING:
                await self.publisher.emit(s, after, draft, event)
            if after.status is PublicationStatus.FAILED:
                await self.publisher.dead_letter(s, after, draft)
            await append_audit(s, actor=WORKER.principal, action=event if after.status is not PublicationStatus.PENDING
                               else "publication.retry_scheduled", target=f"publication/{current.id}",
                               details={"status": after.status.value, "attempt": after.attempts,
                                        "external_id": after.external_id, "url": after.url,
                                        "error": after.last_error},
                               at=now)  # fmt: skip
