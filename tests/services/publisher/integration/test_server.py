"""PublisherService over gRPC (in-process server behind the credential check, SQLite): every method, the roles of
the verified caller deciding the sign-off, and errors as google.rpc statuses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from qingfeng.rpc import CredentialInterceptor, build_server
from qingfeng.settings import GrpcSettings
from qingfeng.v1 import common_pb2, publication_pb2, publication_pb2_grpc

from services.publisher.server import PublisherServicer
from tests.identity import TRUST, as_caller, signed_channel
from tests.services.publisher.harness import Harness, harness

pytestmark = pytest.mark.asyncio
pb = publication_pb2
SVC = "/qingfeng.v1.PublisherService/"


def _server(servicer: PublisherServicer) -> Any:
    def register(server: Any) -> None:
        publication_pb2_grpc.add_PublisherServiceServicer_to_server(servicer, server)

    return build_server(
        GrpcSettings(port=0, plaintext=True),
        services=[(pb.DESCRIPTOR.services_by_name["PublisherService"], register)],
        interceptors=[CredentialInterceptor(TRUST)],
    )


@asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[publication_pb2_grpc.PublisherServiceStub, Harness]]:
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}") as h:
        server = _server(PublisherServicer(h.publisher))
        await server.server.start()
        channel = signed_channel(f"127.0.0.1:{server.port}")
        try:
            yield publication_pb2_grpc.PublisherServiceStub(channel), h
        finally:
            await channel.close()
            await server.server.stop(0)


def who(method: str, principal: str, *roles: str) -> Any:
    return as_caller(SVC + method, principal=principal, agency="opinion_office", roles=roles)


def reason_of(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


async def test_the_whole_release_over_grpc(tmp_path: Path) -> None:
    async with serving(tmp_path) as (stub, h):
        created = await stub.CreateDraft(
            pb.CreateDraftRequest(
                draft=pb.Draft(case_id="case-7", kind=pb.DRAFT_KIND_REFUTATION, template_id="refutation.v1",
                               level=common_pb2.WARNING_LEVEL_YELLOW, channel_ids=["weibo-qingfeng"]),
                template_values={"事件": "区长被带走", "核查结论": "区长正常工作"},
            ),
            metadata=who("CreateDraft", "writer", "舆情信息办公室主任"),
        )  # fmt: skip
        draft = created.draft
        assert draft.status == pb.DRAFT_STATUS_EDITING and "区长正常工作" in draft.body and draft.author.id == "writer"
        draft = (await stub.SubmitForReview(pb.SubmitForReviewRequest(draft_id=draft.id),
                                            metadata=who("SubmitForReview", "writer"))).draft  # fmt: skip
        assert [s.role for s in draft.sign_off] == ["舆情信息办公室主任", "分管常委"]

        with pytest.raises(grpc.aio.AioRpcError) as own:
            await stub.SignOff(pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_APPROVED, revision=1),
                               metadata=who("SignOff", "writer", "舆情信息办公室主任"))  # fmt: skip
        assert own.value.code() == grpc.StatusCode.PERMISSION_DENIED and "four-eyes" in (own.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as role:
            await stub.SignOff(pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_APPROVED, revision=1),
                               metadata=who("SignOff", "deputy", "分管常委"))  # fmt: skip
        assert role.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.aio.AioRpcError) as no_reason:
            await stub.SignOff(pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_REJECTED, revision=1),
                               metadata=who("SignOff", "director", "舆情信息办公室主任"))  # fmt: skip
        assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        for principal, role_name in (("director", "舆情信息办公室主任"), ("deputy", "分管常委")):
            approve = pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_APPROVED, revision=1)
            draft = (await stub.SignOff(approve, metadata=who("SignOff", principal, role_name))).draft
        assert draft.status == pb.DRAFT_STATUS_APPROVED
        assert [s.signer.id for s in draft.sign_off] == ["director", "deputy"]

        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await stub.SignOff(pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_APPROVED, revision=1),
                               metadata=who("SignOff", "someone", "舆情信息办公室主任"))  # fmt: skip
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(twice.value) == "ERROR_REASON_INVALID_STATE"

        published = await stub.PublishDraft(pb.PublishDraftRequest(draft_id=draft.id),
                                            metadata=who("PublishDraft", "operator"))  # fmt: skip
        [pub] = published.publications
        assert pub.status == pb.PUBLICATION_STATUS_PENDING and pub.case_id == "case-7"
        await h.worker.run_once()
        got = (
            await stub.GetPublication(pb.GetPublicationRequest(id=pub.id), metadata=who("GetPublication", "a"))
        ).publication
        assert got.status == pb.PUBLICATION_STATUS_PUBLISHED and got.url.startswith("https://channel.test/")
        assert got.channel_kind == pb.CHANNEL_KIND_MICROBLOG and got.draft_kind == pb.DRAFT_KIND_REFUTATION

        correction = pb.CorrectPublicationRequest(publication_id=pub.id, text="更正：时间有误")
        corrected = await stub.CorrectPublication(correction, metadata=who("CorrectPublication", "operator"))
        assert corrected.publication.status == pb.PUBLICATION_STATUS_CORRECTED
        assert [c.text for c in corrected.publication.corrections] == ["更正：时间有误"]
        with pytest.raises(grpc.aio.AioRpcError) as no_why:
            await stub.RetractPublication(pb.RetractPublicationRequest(publication_id=pub.id),
                                          metadata=who("RetractPublication", "operator"))  # fmt: skip
        assert no_why.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        retracted = await stub.RetractPublication(pb.RetractPublicationRequest(publication_id=pub.id, reason="撤回"),
                                                  metadata=who("RetractPublication", "operator"))  # fmt: skip
        assert retracted.publication.status == pb.PUBLICATION_STATUS_RETRACTED

        listed = await stub.ListPublications(
            pb.ListPublicationsRequest(case_id="case-7"), metadata=who("ListPublications", "a")
        )
        assert [p.id for p in listed.publications] == [pub.id]
        final = (await stub.GetDraft(pb.GetDraftRequest(id=draft.id), metadata=who("GetDraft", "a"))).draft
        assert final.status == pb.DRAFT_STATUS_RETRACTED and final.HasField("published_at")


async def test_edit_diff_schedule_and_listing(tmp_path: Path) -> None:
    async with serving(tmp_path) as (stub, h):
        draft = (await stub.CreateDraft(pb.CreateDraftRequest(draft=pb.Draft(
            case_id="c", kind=pb.DRAFT_KIND_STATEMENT, title="通报", body="第一句。第二句。",
            level=common_pb2.WARNING_LEVEL_BLUE, channel_ids=["weibo-qingfeng"])),
            metadata=who("CreateDraft", "writer"))).draft  # fmt: skip
        edited = (await stub.UpdateDraft(pb.UpdateDraftRequest(
            draft=pb.Draft(id=draft.id, body="第一句。第二句改了。"), update_mask=FieldMask(paths=["body"]),
            expected_revision=1), metadata=who("UpdateDraft", "writer"))).draft  # fmt: skip
        assert edited.revision == 2
        with pytest.raises(grpc.aio.AioRpcError) as stale:
            await stub.UpdateDraft(pb.UpdateDraftRequest(draft=pb.Draft(id=draft.id, body="x"),
                                   update_mask=FieldMask(paths=["body"]), expected_revision=1),
                                   metadata=who("UpdateDraft", "writer"))  # fmt: skip
        assert stale.value.code() == grpc.StatusCode.ABORTED
        got = await stub.GetDraft(pb.GetDraftRequest(id=draft.id, diff_from_revision=1), metadata=who("GetDraft", "a"))
        assert [v.revision for v in got.versions] == [1, 2] and "+第二句改了。" in got.diff
        await stub.SubmitForReview(pb.SubmitForReviewRequest(draft_id=draft.id), metadata=who("SubmitForReview", "w"))
        await stub.SignOff(pb.SignOffRequest(draft_id=draft.id, decision=pb.SIGN_OFF_DECISION_APPROVED, revision=2),
                           metadata=who("SignOff", "director", "舆情信息办公室主任"))  # fmt: skip
        request = pb.ScheduleDraftRequest(draft_id=draft.id)
        request.scheduled_at.FromDatetime(h.clock.now.replace(tzinfo=None).replace(hour=9))
        scheduled = (await stub.ScheduleDraft(request, metadata=who("ScheduleDraft", "operator"))).draft
        assert scheduled.status == pb.DRAFT_STATUS_SCHEDULED
        page1 = await stub.ListDrafts(pb.ListDraftsRequest(page_size=1), metadata=who("ListDrafts", "a"))
        assert len(page1.drafts) == 1 and page1.next_page_token == ""
        with pytest.raises(grpc.aio.AioRpcError) as bad_token:
            await stub.ListDrafts(pb.ListDraftsRequest(page_token="nonsense"), metadata=who("ListDrafts", "a"))
        assert reason_of(bad_token.value) == "ERROR_REASON_INVALID_PAGE_TOKEN"
        channels = await stub.ListChannels(
            pb.ListChannelsRequest(include_disabled=True), metadata=who("ListChannels", "a")
        )
        assert {c.id for c in channels.channels} >= {"weibo-qingfeng", "webhook-daily"}
        del h.channels["mastodon-qingfeng"]  # as if its token had not been set at start
        enabled = await stub.ListChannels(pb.ListChannelsRequest(), metadata=who("ListChannels", "a"))
        assert "mastodon-qingfeng" not in {c.id for c in enabled.channels}
        assert "weibo-qingfeng" in {c.id for c in enabled.channels}
        templates = await stub.ListTemplates(
            pb.ListTemplatesRequest(kind=pb.DRAFT_KIND_REPLY), metadata=who("ListTemplates", "a")
        )
        assert [t.id for t in templates.templates] == ["reply.v1"]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetDraft(pb.GetDraftRequest(id="nope"), metadata=who("GetDraft", "a"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_call_without_a_credential_is_refused(tmp_path: Path) -> None:
    # A bare channel (no gateway credential) must be turned away before any handler runs.
    async with harness(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}") as h2:
        servicer = PublisherServicer(h2.publisher)
        server = _server(servicer)
        await server.server.start()
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await publication_pb2_grpc.PublisherServiceStub(channel).ListChannels(pb.ListChannelsRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        await server.server.stop(0)
