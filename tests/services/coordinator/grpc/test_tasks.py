"""Progress reports with attachments over gRPC: the owning agency reports and reads back the exact bytes; any other
agency can neither report on the task nor read its attachment, and gets the answer of a missing one."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from qingfeng.v1 import case_pb2

from services.coordinator.core.policy import AttachmentRule
from services.coordinator.handling import Handling

from ..conftest import FakeClock
from .harness import PARTNERS, Running, running


@pytest.fixture
async def live(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    # A small limit, so the policy (not the transport's message size) is what refuses the big file.
    small = replace(handling.policies.routing, attachments=AttachmentRule(max_bytes=2000, max_per_task=5))
    async with running(Handling(handling.store, replace(handling.policies, routing=small)), clock) as r:
        yield r


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


async def test_progress_attachments_and_need_to_know(live: Running) -> None:
    task_id = live.seeded.tasks_by_agency["police_cyber"][0]
    content = "询问笔录".encode() * 100
    channel, police = live.stub("police_cyber", principal="police.wang")
    async with channel:
        upload = case_pb2.AttachmentUpload(name="笔录.txt", content_type="text/plain", content=content)
        reported = await police.ReportTaskProgress(
            case_pb2.ReportTaskProgressRequest(task_id=task_id, note="已约谈发帖人", attachments=[upload])
        )
        task = reported.task
        assert task.status == case_pb2.TASK_STATUS_IN_PROGRESS and task.progress[0].reported_by.id == "police.wang"
        attachment = task.attachments[0]
        assert attachment.sha256 == hashlib.sha256(content).hexdigest() and attachment.size_bytes == len(content)
        got = await police.GetTaskAttachment(
            case_pb2.GetTaskAttachmentRequest(task_id=task_id, attachment_id=attachment.id)
        )
        assert got.content == content
        too_big = case_pb2.AttachmentUpload(name="big.bin", content=b"0" * 2001)
        code, _ = await _code(
            police.ReportTaskProgress(
                case_pb2.ReportTaskProgressRequest(task_id=task_id, note="x", attachments=[too_big])
            )
        )
        assert code == grpc.StatusCode.INVALID_ARGUMENT

    for agency in PARTNERS:
        if agency == "police_cyber":
            continue
        channel, other = live.stub(agency)
        async with channel:
            foreign = await _code(
                other.GetTaskAttachment(case_pb2.GetTaskAttachmentRequest(task_id=task_id, attachment_id=attachment.id))
            )
            missing = await _code(
                other.GetTaskAttachment(
                    case_pb2.GetTaskAttachmentRequest(task_id="nope-0000", attachment_id=attachment.id)
                )
            )
            assert foreign[0] == missing[0] == grpc.StatusCode.NOT_FOUND
            assert foreign[1].replace(task_id, "<id>") == missing[1].replace("nope-0000", "<id>")
            report = await _code(
                other.ReportTaskProgress(case_pb2.ReportTaskProgressRequest(task_id=task_id, note="x"))
            )
            assert report[0] == grpc.StatusCode.NOT_FOUND
            listed = await other.ListTasks(case_pb2.ListTasksRequest(page_size=500))
            assert task_id not in {t.id for t in listed.tasks}
