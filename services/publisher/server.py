"""``PublisherService`` over gRPC: unpack the request, call the application, pack the reply or the error's status.

The caller is the one the credential interceptor verified (``qingfeng.rpc.current_caller``): its principal is the
author or signer, and its roles decide which sign-off step it may sign. Errors become a ``google.rpc.Status`` with
``ErrorInfo`` (and ``BadRequest`` for bad fields) in ``status_of``, the one place that maps them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final, NoReturn, TypeVar

import grpc
from qingfeng.rpc import current_caller
from qingfeng.rpc.errors import abort, status_of
from qingfeng.v1 import publication_pb2 as pb
from qingfeng.v1 import publication_pb2_grpc

from services.publisher import convert
from services.publisher.application import Publisher
from services.publisher.core.model import Actor, Decision, Draft
from services.publisher.errors import (
    InvalidArgument,
    InvalidPageToken,
    PublisherError,
)

__all__ = ["PublisherServicer", "status_of"]

_DEFAULT_PAGE: Final = 50
_MAX_PAGE: Final = 500
_EDITABLE_FIELDS: Final = frozenset({"title", "body", "channel_ids", "reply_to_post_id"})
R = TypeVar("R")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: PublisherError) -> NoReturn:
    await abort(context, err)


def _actor() -> Actor:
    caller = current_caller()
    return Actor(caller.principal, caller.agency, frozenset(caller.roles))


def _page(page_size: int, page_token: str, filters: dict[str, Any]) -> tuple[int, int, str]:
    """(limit, offset, fingerprint): a token is only valid for the filters it was made with."""
    if page_size < 0:
        raise InvalidArgument.of("page_size", "must not be negative")
    size = min(page_size or _DEFAULT_PAGE, _MAX_PAGE)
    fingerprint = json.dumps(filters, sort_keys=True)
    offset = 0
    if page_token:
        try:
            data = json.loads(base64.urlsafe_b64decode(page_token.encode()))
            offset = int(data["o"])
            if data["f"] != fingerprint or offset < 0:
                raise ValueError
        except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
            raise InvalidPageToken.of("page_token", "not a token of this listing") from None
    return size, offset, fingerprint


def _pub_status_name(status: int) -> str:
    known = convert.PUB_STATUS_OF.get(status)  # type: ignore[call-overload]
    return known.value if known else ""


def _token(offset: int, fingerprint: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset, "f": fingerprint}).encode()).decode()


class PublisherServicer(publication_pb2_grpc.PublisherServiceServicer):
    def __init__(self, publisher: Publisher) -> None:
        self._app = publisher

    async def _guard(self, context: grpc.aio.ServicerContext[Any, Any], call: Callable[[], Awaitable[R]]) -> R:
        try:
            return await call()
        except PublisherError as err:
            await _abort(context, err)

    def _draft(self, draft: Draft) -> pb.Draft:
        return convert.draft_proto(draft, self._app.clock_of(draft))

    # Drafts

    async def CreateDraft(self, request: pb.CreateDraftRequest, context: Any) -> pb.CreateDraftResponse:
        async def call() -> pb.CreateDraftResponse:
            d = request.draft
            kind = convert.KIND_OF.get(d.kind)
            if kind is None:
                raise InvalidArgument.of("draft.kind", "required")
            draft = await self._app.create_draft(
                _actor(), case_id=d.case_id, kind=kind, title=d.title, body=d.body, template_id=d.template_id,
                values=dict(request.template_values), level=convert.level_name(d.level), event_id=d.event_id,
                channel_ids=list(d.channel_ids), reply_to_post_id=d.reply_to_post_id,
                due=convert.to_datetime(d.due_at) if d.HasField("due_at") else None,
            )  # fmt: skip
            return pb.CreateDraftResponse(draft=self._draft(draft))

        return await self._guard(context, call)

    async def GetDraft(self, request: pb.GetDraftRequest, context: Any) -> pb.GetDraftResponse:
        async def call() -> pb.GetDraftResponse:
            if not request.id:
                raise InvalidArgument.of("id", "required")
            draft, versions = await self._app.get_draft(request.id)
            diff = (
                await self._app.diff(request.id, int(request.diff_from_revision)) if request.diff_from_revision else ""
            )
            return pb.GetDraftResponse(
                draft=self._draft(draft), versions=[convert.version_proto(v) for v in versions], diff=diff
            )

        return await self._guard(context, call)

    async def ListDrafts(self, request: pb.ListDraftsRequest, context: Any) -> pb.ListDraftsResponse:
        async def call() -> pb.ListDraftsResponse:
            filters = {
                "case_id": request.case_id,
                "status": convert.STATUS_OF[request.status].value if request.status in convert.STATUS_OF else "",
                "kind": convert.KIND_OF[request.kind].value if request.kind in convert.KIND_OF else "",
            }
            size, offset, fingerprint = _page(request.page_size, request.page_token, filters)
            drafts = await self._app.list_drafts(**filters, limit=size + 1, offset=offset)
            token = _token(offset + size, fingerprint) if len(drafts) > size else ""
            return pb.ListDraftsResponse(drafts=[self._draft(d) for d in drafts[:size]], next_page_token=token)

        return await self._guard(context, call)

    async def UpdateDraft(self, request: pb.UpdateDraftRequest, context: Any) -> pb.UpdateDraftResponse:
        async def call() -> pb.UpdateDraftResponse:
            paths = set(request.update_mask.paths)
            if not paths:
                raise InvalidArgument.of("update_mask", "name the fields to change")
            unknown = paths - _EDITABLE_FIELDS
            if unknown:
                raise InvalidArgument.of("update_mask", f"cannot change {', '.join(sorted(unknown))}")
            d = request.draft
            draft = await self._app.update_draft(
                _actor(), d.id,
                title=d.title if "title" in paths else None,
                body=d.body if "body" in paths else None,
                channel_ids=list(d.channel_ids) if "channel_ids" in paths else None,
                reply_to_post_id=d.reply_to_post_id if "reply_to_post_id" in paths else None,
                expected_revision=int(request.expected_revision),
            )  # fmt: skip
            return pb.UpdateDraftResponse(draft=self._draft(draft))

        return await self._guard(context, call)

    async def SubmitForReview(self, request: pb.SubmitForReviewRequest, context: Any) -> pb.SubmitForReviewResponse:
        async def call() -> pb.SubmitForReviewResponse:
            return pb.SubmitForReviewResponse(draft=self._draft(await self._app.submit(_actor(), request.draft_id)))

        return await self._guard(context, call)

    async def SignOff(self, request: pb.SignOffRequest, context: Any) -> pb.SignOffResponse:
        async def call() -> pb.SignOffResponse:
            decisions = {
                pb.SIGN_OFF_DECISION_APPROVED: Decision.APPROVED,
                pb.SIGN_OFF_DECISION_REJECTED: Decision.REJECTED,
            }
            decision = decisions.get(request.decision)
            if decision is None:
                raise InvalidArgument.of("decision", "approve or reject")
            if request.revision <= 0:
                raise InvalidArgument.of("revision", "the revision you read is required")
            draft = await self._app.sign_off(
                _actor(), request.draft_id, decision, request.comment, int(request.revision)
            )
            return pb.SignOffResponse(draft=self._draft(draft))

        return await self._guard(context, call)

    async def ScheduleDraft(self, request: pb.ScheduleDraftRequest, context: Any) -> pb.ScheduleDraftResponse:
        async def call() -> pb.ScheduleDraftResponse:
            if not request.HasField("scheduled_at"):
                raise InvalidArgument.of("scheduled_at", "required")
            at = convert.to_datetime(request.scheduled_at)
            draft = await self._app.schedule(_actor(), request.draft_id, at, list(request.channel_ids))
            return pb.ScheduleDraftResponse(draft=self._draft(draft))

        return await self._guard(context, call)

    async def PublishDraft(self, request: pb.PublishDraftRequest, context: Any) -> pb.PublishDraftResponse:
        async def call() -> pb.PublishDraftResponse:
            pubs = await self._app.publish(_actor(), request.draft_id, list(request.channel_ids))
            draft, _ = await self._app.get_draft(request.draft_id)
            return pb.PublishDraftResponse(publications=[self._app.publication_message(p, draft) for p in pubs])

        return await self._guard(context, call)

    # Publications

    async def RetractPublication(
        self, request: pb.RetractPublicationRequest, context: Any
    ) -> pb.RetractPublicationResponse:
        async def call() -> pb.RetractPublicationResponse:
            pub = await self._app.retract(_actor(), request.publication_id, request.reason)
            _, draft = await self._app.get_publication(pub.id)
            return pb.RetractPublicationResponse(publication=self._app.publication_message(pub, draft))

        return await self._guard(context, call)

    async def CorrectPublication(
        self, request: pb.CorrectPublicationRequest, context: Any
    ) -> pb.CorrectPublicationResponse:
        async def call() -> pb.CorrectPublicationResponse:
            pub = await self._app.correct(_actor(), request.publication_id, request.text)
            _, draft = await self._app.get_publication(pub.id)
            return pb.CorrectPublicationResponse(publication=self._app.publication_message(pub, draft))

        return await self._guard(context, call)

    async def GetPublication(self, request: pb.GetPublicationRequest, context: Any) -> pb.GetPublicationResponse:
        async def call() -> pb.GetPublicationResponse:
            if not request.id:
                raise InvalidArgument.of("id", "required")
            pub, draft = await self._app.get_publication(request.id)
            return pb.GetPublicationResponse(publication=self._app.publication_message(pub, draft))

        return await self._guard(context, call)

    async def ListPublications(self, request: pb.ListPublicationsRequest, context: Any) -> pb.ListPublicationsResponse:
        async def call() -> pb.ListPublicationsResponse:
            filters = {
                "case_id": request.case_id,
                "draft_id": request.draft_id,
                "channel_id": request.channel_id,
                "status": _pub_status_name(request.status),
            }
            size, offset, fingerprint = _page(request.page_size, request.page_token, filters)
            rows = await self._app.list_publications(**filters, limit=size + 1, offset=offset)
            token = _token(offset + size, fingerprint) if len(rows) > size else ""
            return pb.ListPublicationsResponse(
                publications=[self._app.publication_message(p, d) for p, d in rows[:size]], next_page_token=token
            )

        return await self._guard(context, call)

    async def ListChannels(self, request: pb.ListChannelsRequest, context: Any) -> pb.ListChannelsResponse:
        # A channel is enabled when the policy enables it and its adapter was built.
        rules = [
            replace(c, enabled=c.enabled and c.id in self._app.channels) for c in self._app.policies.channels.values()
        ]
        channels = [c for c in rules if c.enabled or request.include_disabled]
        return pb.ListChannelsResponse(channels=[convert.channel_proto(c) for c in channels])

    async def ListTemplates(self, request: pb.ListTemplatesRequest, context: Any) -> pb.ListTemplatesResponse:
        kind = convert.KIND_OF.get(request.kind)
        templates = [t for t in self._app.policies.templates.values() if kind is None or t.kind is kind]
        return pb.ListTemplatesResponse(templates=[convert.template_proto(t) for t in templates])
