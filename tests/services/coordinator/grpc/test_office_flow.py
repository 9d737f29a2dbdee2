"""The office's whole flow over gRPC: a manual case through acknowledgement, verification (核查), disposition and
closing; 涉腐 marks; tasks by hand and their updates; meetings and minutes; instructions; the audit log paged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from qingfeng.v1 import case_pb2, common_pb2

from services.coordinator.convert import timestamp
from services.coordinator.handling import Handling

from ..conftest import T0, FakeClock
from .harness import Running, running


@pytest.fixture
async def live(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(handling, clock) as r:
        yield r


async def test_manual_case_through_its_life(live: Running) -> None:
    channel, office = live.stub("opinion_office", principal="office.li")
    async with channel:
        created = (
            await office.CreateCase(
                case_pb2.CreateCaseRequest(
                    title="信访人反映某街道违规发放补贴",
                    level=common_pb2.WARNING_LEVEL_YELLOW,
                    regions=[common_pb2.Region(code="330102", name="上城区")],
                )
            )
        ).case
        assert created.status == case_pb2.CASE_STATUS_AWAITING_ACKNOWLEDGEMENT and created.wave == 1
        assert created.routed_to == common_pb2.OFFICIAL_LEVEL_DEPUTY_STANDING_MEMBER
        assert created.ack_deadline.ToDatetime() == (T0 + timedelta(hours=2)).replace(tzinfo=None)
        marked = (
            await office.MarkCorruption(
                case_pb2.MarkCorruptionRequest(case_id=created.id, corruption_related=False, reason="属一般民生诉求")
            )
        ).case
        assert marked.information_notice and marked.routed_to == common_pb2.OFFICIAL_LEVEL_OPINION_OFFICE
        acked = (await office.AcknowledgeCase(case_pb2.AcknowledgeCaseRequest(case_id=created.id))).case
        assert acked.status == case_pb2.CASE_STATUS_ACKNOWLEDGED and acked.acknowledged_by.id == "office.li"
        verifying = (await office.StartVerification(case_pb2.StartVerificationRequest(case_id=created.id))).case
        assert verifying.status == case_pb2.CASE_STATUS_VERIFYING
        disposed = await office.SetDisposition(
            case_pb2.SetDispositionRequest(
                case_id=created.id, disposition=case_pb2.DISPOSITION_REASONABLE_SUGGESTION, rationale="建议合理"
            )
        )
        assert [t.agency for t in disposed.tasks] == [common_pb2.AGENCY_RESPONSIBLE_UNIT]
        assert disposed.tasks[0].assignee_unit == "责任单位"
        closed = (await office.CloseCase(case_pb2.CloseCaseRequest(case_id=created.id))).case
        assert closed.status == case_pb2.CASE_STATUS_CLOSED and closed.HasField("closed_at")
        code = None
        try:
            await office.CloseCase(case_pb2.CloseCaseRequest(case_id=created.id))
        except grpc.aio.AioRpcError as err:
            code = err.code()
        assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_tasks_meetings_instructions_and_audit(live: Running) -> None:
    s = live.seeded
    channel, office = live.stub("opinion_office", principal="office.li")
    async with channel:
        task = (
            await office.CreateTask(
                case_pb2.CreateTaskRequest(
                    task=case_pb2.Task(
                        case_id=s.quiet_case,
                        agency=common_pb2.AGENCY_TELECOM_REGULATOR,
                        description="协调平台处置",
                        due_at=timestamp(T0 + timedelta(hours=6)),
                    )
                )
            )
        ).task
        assert task.agency == common_pb2.AGENCY_TELECOM_REGULATOR and not task.overdue
        moved = (
            await office.UpdateTask(
                case_pb2.UpdateTaskRequest(
                    task=case_pb2.Task(
                        id=task.id, description="协调平台删除不实信息", due_at=timestamp(T0 + timedelta(hours=9))
                    ),
                    update_mask=FieldMask(paths=["description", "due_at"]),
                )
            )
        ).task
        assert moved.description == "协调平台删除不实信息"
        assert moved.due_at.ToDatetime() == (T0 + timedelta(hours=9)).replace(tzinfo=None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await office.UpdateTask(
                case_pb2.UpdateTaskRequest(task=case_pb2.Task(id=task.id), update_mask=FieldMask(paths=["result"]))
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        overdue = await office.ListTasks(case_pb2.ListTasksRequest(overdue_only=True))
        assert list(overdue.tasks) == []  # nothing is due yet at T0

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await office.ConveneMeeting(
                case_pb2.ConveneMeetingRequest(kind=case_pb2.MEETING_KIND_EMERGENCY, case_ids=[s.quiet_case])
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        meeting = (
            await office.ConveneMeeting(
                case_pb2.ConveneMeetingRequest(kind=case_pb2.MEETING_KIND_QUARTERLY, title="第二季度联席会议")
            )
        ).meeting
        assert set(meeting.case_ids) == {s.rumour_case, s.petition_case, s.quiet_case}
        assert common_pb2.AGENCY_POLICE_CYBER in meeting.attendees
        minuted = (
            await office.RecordMinutes(
                case_pb2.RecordMinutesRequest(
                    meeting_id=meeting.id,
                    minutes="会议纪要",
                    present=[common_pb2.AGENCY_PROPAGANDA],
                    decisions=[
                        case_pb2.Decision(
                            text="宣传部加强引导", owner=common_pb2.AGENCY_PROPAGANDA, case_id=s.quiet_case
                        )
                    ],
                )
            )
        ).meeting
        assert len(minuted.decisions[0].task_ids) == 1 and list(minuted.present) == [common_pb2.AGENCY_PROPAGANDA]
        listed = await office.ListMeetings(case_pb2.ListMeetingsRequest(kind=case_pb2.MEETING_KIND_QUARTERLY))
        assert [m.id for m in listed.meetings] == [meeting.id] and listed.meetings[0].minutes == "会议纪要"

        instruction = (
            await office.AddInstruction(
                case_pb2.AddInstructionRequest(
                    case_id=s.petition_case,
                    leader=common_pb2.Actor(id="deputy", display_name="王常委", role="分管常委"),
                    level=common_pb2.OFFICIAL_LEVEL_DEPUTY_STANDING_MEMBER,
                    text="请信访局妥善处理",
                    assign_to=[common_pb2.AGENCY_PETITIONS],
                )
            )
        ).instruction
        assert len(instruction.task_ids) == 1 and instruction.recorded_by.id == "office.li"

        pages, token, seqs = 0, "", []
        while True:
            page = await office.ListAuditRecords(case_pb2.ListAuditRecordsRequest(page_size=7, page_token=token))
            seqs += [r.seq for r in page.records]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seqs == list(range(1, len(seqs) + 1)) and pages > 2
        assert all(len(r.hash) == 32 for r in page.records)
