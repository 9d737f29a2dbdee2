"""``CoordinatorService`` over gRPC: unpack → ``CoordinatorApi`` → pack; errors become statuses in one place.

The caller is the identity ``CredentialInterceptor`` verified (``qingfeng.rpc.current_caller``); a partner agency
gets the summary form of a case (``convert.case_proto(restricted=False)``) and a meeting without minutes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, NoReturn, TypeVar

import grpc
from qingfeng.rpc import current_caller
from qingfeng.rpc.errors import abort, status_of
from qingfeng.v1 import case_pb2, case_pb2_grpc, common_pb2

from services.coordinator.adapters.sql import CaseFilter, TaskFilter
from services.coordinator.convert import (
    CASE_STATUS,
    DISPOSITION,
    TASK_STATUS,
    agency_key,
    attachment_proto,
    audit_proto,
    case_proto,
    from_timestamp,
    instruction_proto,
    meeting_proto,
    task_proto,
)
from services.coordinator.core.model import Decision, Level, Rung
from services.coordinator.core.tasks import Upload
from services.coordinator.errors import (
    CoordinatorError,
    InvalidArgument,
)
from services.coordinator.ports import Clock
from services.coordinator.reporting import Reporting
from services.coordinator.service import CoordinatorApi, Viewer

__all__ = ["CoordinatorServicer", "status_of"]

_STATUS_OF: Final = {v: k for k, v in CASE_STATUS.items()}
_DISPOSITION_OF: Final = {v: k for k, v in DISPOSITION.items()}
_TASK_STATUS_OF: Final = {v: k for k, v in TASK_STATUS.items()}
_UPDATABLE: Final = frozenset({"description", "due_at", "agency", "assignee_unit", "status"})
R = TypeVar("R")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: CoordinatorError) -> NoReturn:
    await abort(context, err)
    raise AssertionError("abort_with_status returned")


def _viewer() -> Viewer:
    caller = current_caller()
    return Viewer(caller.principal, caller.agency, frozenset(caller.roles))


def _time(message: Any, field: str) -> datetime | None:
    return from_timestamp(getattr(message, field)) if message.HasField(field) else None


def _level(value: int, field: str) -> Level | None:
    if value == 0:
        return None
    if value not in Level._value2member_map_:
        raise InvalidArgument.of(field, "unknown level")
    return Level(value)


def _agency(value: int, field: str) -> str:
    key = agency_key(common_pb2.Agency.ValueType(value))
    if key is None:
        raise InvalidArgument.of(field, "an agency is required")
    return key


class CoordinatorServicer(case_pb2_grpc.CoordinatorServiceServicer):
    def __init__(self, api: CoordinatorApi, reporting: Reporting, clock: Clock) -> None:
        self._api = api
        self._reporting = reporting
        self._clock = clock

    async def _call(self, context: grpc.aio.ServicerContext[Any, Any], fn: Callable[[Viewer], Awaitable[R]]) -> R:
        try:
            return await fn(_viewer())
        except CoordinatorError as err:
            await _abort(context, err)

    def _case(self, viewer: Viewer, case: Any) -> case_pb2.Case:
        return case_proto(case, restricted=viewer.office)

    async def GetCase(self, request: case_pb2.GetCaseRequest, context: Any) -> case_pb2.GetCaseResponse:
        async def go(v: Viewer) -> case_pb2.GetCaseResponse:
            return case_pb2.GetCaseResponse(case=self._case(v, await self._api.get_case(v, request.id)))

        return await self._call(context, go)

    async def ListCases(self, request: case_pb2.ListCasesRequest, context: Any) -> case_pb2.ListCasesResponse:
        async def go(v: Viewer) -> case_pb2.ListCasesResponse:
            f = CaseFilter(
                status=_STATUS_OF.get(request.status),
                min_level=_level(request.min_level, "min_level"),
                routed_to=Rung(request.routed_to) if request.routed_to in Rung._value2member_map_ else None,
                event_id=request.event_id,
                opened_from=_time(request.opened, "start_time") if request.HasField("opened") else None,
                opened_to=_time(request.opened, "end_time") if request.HasField("opened") else None,
            )
            found, token = await self._api.list_cases(v, f, request.page_size, request.page_token)
            return case_pb2.ListCasesResponse(cases=[self._case(v, c) for c in found], next_page_token=token)

        return await self._call(context, go)

    async def AcknowledgeCase(self, request: case_pb2.AcknowledgeCaseRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.AcknowledgeCaseResponse:
            case = await self._api.acknowledge(v, request.case_id, request.note)
            return case_pb2.AcknowledgeCaseResponse(case=self._case(v, case))

        return await self._call(context, go)

    async def StartVerification(self, request: case_pb2.StartVerificationRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.StartVerificationResponse:
            case = await self._api.start_verification(v, request.case_id)
            return case_pb2.StartVerificationResponse(case=self._case(v, case))

        return await self._call(context, go)

    async def CloseCase(self, request: case_pb2.CloseCaseRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.CloseCaseResponse:
            return case_pb2.CloseCaseResponse(case=self._case(v, await self._api.close(v, request.case_id)))

        return await self._call(context, go)

    async def SetDisposition(self, request: case_pb2.SetDispositionRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.SetDispositionResponse:
            disposition = _DISPOSITION_OF.get(request.disposition)
            if disposition is None:
                raise InvalidArgument.of("disposition", "required")
            case, tasks = await self._api.set_disposition(v, request.case_id, disposition, request.rationale)
            now = self._clock()
            return case_pb2.SetDispositionResponse(case=self._case(v, case), tasks=[task_proto(t, now) for t in tasks])

        return await self._call(context, go)

    async def MarkCorruption(self, request: case_pb2.MarkCorruptionRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.MarkCorruptionResponse:
            case = await self._api.mark_corruption(v, request.case_id, request.corruption_related, request.reason)
            return case_pb2.MarkCorruptionResponse(case=self._case(v, case))

        return await self._call(context, go)

    async def EscalateCase(self, request: case_pb2.EscalateCaseRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.EscalateCaseResponse:
            level = _level(request.level, "level")
            case = await self._api.escalate(v, request.case_id, level, request.reason, request.request_id)
            return case_pb2.EscalateCaseResponse(case=self._case(v, case))

        return await self._call(context, go)

    async def CreateCase(self, request: case_pb2.CreateCaseRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.CreateCaseResponse:
            level = _level(request.level, "level") or Level.NONE
            regions = [(r.code, r.name) for r in request.regions]
            case = await self._api.create_case(v, request.event_id, request.title, level, regions)
            return case_pb2.CreateCaseResponse(case=self._case(v, case))

        return await self._call(context, go)

    async def CreateTask(self, request: case_pb2.CreateTaskRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.CreateTaskResponse:
            t = request.task
            due = _time(t, "due_at")
            if due is None:
                raise InvalidArgument.of("task.due_at", "required")
            task = await self._api.create_task(
                v, t.case_id, _agency(t.agency, "task.agency"), t.description, due, t.assignee_unit
            )
            return case_pb2.CreateTaskResponse(task=task_proto(task, self._clock()))

        return await self._call(context, go)

    async def ListTasks(self, request: case_pb2.ListTasksRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ListTasksResponse:
            now = self._clock()
            f = TaskFilter(
                case_id=request.case_id,
                agency=agency_key(request.agency) if request.agency else None,
                status=_TASK_STATUS_OF.get(request.status),
                overdue_at=now if request.overdue_only else None,
            )
            found, token = await self._api.list_tasks(v, f, request.page_size, request.page_token)
            return case_pb2.ListTasksResponse(tasks=[task_proto(t, now) for t in found], next_page_token=token)

        return await self._call(context, go)

    async def UpdateTask(self, request: case_pb2.UpdateTaskRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.UpdateTaskResponse:
            paths = set(request.update_mask.paths)
            if not paths or paths - _UPDATABLE:
                raise InvalidArgument.of("update_mask", f"name fields among {sorted(_UPDATABLE)}")
            t = request.task
            changes: dict[str, Any] = {}
            if "description" in paths:
                changes["description"] = t.description
            if "assignee_unit" in paths:
                changes["assignee_unit"] = t.assignee_unit
            if "agency" in paths:
                changes["agency"] = _agency(t.agency, "task.agency")
            if "due_at" in paths:
                if (due := _time(t, "due_at")) is None:
                    raise InvalidArgument.of("task.due_at", "required by the mask")
                changes["due_at"] = due
            if "status" in paths:
                if (status := _TASK_STATUS_OF.get(t.status)) is None:
                    raise InvalidArgument.of("task.status", "required by the mask")
                changes["status"] = status
            task = await self._api.update_task(v, t.id, changes)
            return case_pb2.UpdateTaskResponse(task=task_proto(task, self._clock()))

        return await self._call(context, go)

    async def CompleteTask(self, request: case_pb2.CompleteTaskRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.CompleteTaskResponse:
            task = await self._api.complete_task(v, request.task_id, request.result)
            return case_pb2.CompleteTaskResponse(task=task_proto(task, self._clock()))

        return await self._call(context, go)

    async def ReportTaskProgress(self, request: case_pb2.ReportTaskProgressRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ReportTaskProgressResponse:
            uploads = [Upload(a.name, a.content_type, a.content) for a in request.attachments]
            task = await self._api.report_progress(v, request.task_id, request.note, uploads)
            return case_pb2.ReportTaskProgressResponse(task=task_proto(task, self._clock()))

        return await self._call(context, go)

    async def GetTaskAttachment(self, request: case_pb2.GetTaskAttachmentRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.GetTaskAttachmentResponse:
            found, content = await self._api.get_attachment(v, request.task_id, request.attachment_id)
            return case_pb2.GetTaskAttachmentResponse(attachment=attachment_proto(found), content=content)

        return await self._call(context, go)

    async def ConveneMeeting(self, request: case_pb2.ConveneMeetingRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ConveneMeetingResponse:
            if request.kind == case_pb2.MEETING_KIND_UNSPECIFIED:
                raise InvalidArgument.of("kind", "required")
            kind = "emergency" if request.kind == case_pb2.MEETING_KIND_EMERGENCY else "quarterly"
            attendees = [_agency(a, "attendees") for a in request.attendees]
            meeting = await self._api.convene(
                v, kind, request.title, list(request.case_ids), _time(request, "scheduled_at"), attendees
            )
            return case_pb2.ConveneMeetingResponse(meeting=meeting_proto(meeting))

        return await self._call(context, go)

    async def ListMeetings(self, request: case_pb2.ListMeetingsRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ListMeetingsResponse:
            kind = {case_pb2.MEETING_KIND_EMERGENCY: "emergency", case_pb2.MEETING_KIND_QUARTERLY: "quarterly"}
            found = await self._api.list_meetings(v, kind.get(request.kind), request.case_id)
            partner = None if v.office else (v.agency or "")
            return case_pb2.ListMeetingsResponse(meetings=[meeting_proto(m, partner=partner) for m in found])

        return await self._call(context, go)

    async def RecordMinutes(self, request: case_pb2.RecordMinutesRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.RecordMinutesResponse:
            decisions = [
                Decision(d.text, _agency(d.owner, f"decisions[{n}].owner"), d.case_id, _time(d, "due_at"))
                for n, d in enumerate(request.decisions)
            ]
            present = [_agency(a, "present") for a in request.present]
            meeting = await self._api.record_minutes(v, request.meeting_id, request.minutes, decisions, present)
            return case_pb2.RecordMinutesResponse(meeting=meeting_proto(meeting))

        return await self._call(context, go)

    async def AddInstruction(self, request: case_pb2.AddInstructionRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.AddInstructionResponse:
            if request.level not in Rung._value2member_map_:
                raise InvalidArgument.of("level", "the leader's rung is required")
            leader = (request.leader.id, request.leader.display_name, request.leader.role)
            assign = [_agency(a, "assign_to") for a in request.assign_to]
            stored = await self._api.add_instruction(
                v,
                request.case_id,
                leader,
                Rung(request.level),
                request.text,
                _time(request, "issued_at"),
                assign,
                _time(request, "due_at"),
            )
            return case_pb2.AddInstructionResponse(instruction=instruction_proto(stored))

        return await self._call(context, go)

    async def ListInstructions(self, request: case_pb2.ListInstructionsRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ListInstructionsResponse:
            found = await self._api.list_instructions(v, request.case_id)
            return case_pb2.ListInstructionsResponse(instructions=[instruction_proto(i) for i in found])

        return await self._call(context, go)

    async def GetRapidReport(self, request: case_pb2.GetRapidReportRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.GetRapidReportResponse:
            pdf = request.format == case_pb2.REPORT_FORMAT_PDF
            done = await self._reporting.rapid_report(v, request.case_id, pdf=pdf)
            report = case_pb2.RenderedReport(title=done.title, content_type=done.content_type, content=done.content)
            return case_pb2.GetRapidReportResponse(report=report, issue_number=done.issue_number)

        return await self._call(context, go)

    async def GetStatistics(self, request: case_pb2.GetStatisticsRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.GetStatisticsResponse:
            pdf = request.format == case_pb2.REPORT_FORMAT_PDF
            has = request.HasField("period")
            start = _time(request.period, "start_time") if has else None
            end = _time(request.period, "end_time") if has else None
            done = await self._reporting.statistics(v, start, end, pdf=pdf)
            report = case_pb2.RenderedReport(title=done.title, content_type=done.content_type, content=done.content)
            return case_pb2.GetStatisticsResponse(report=report)

        return await self._call(context, go)

    async def ListAuditRecords(self, request: case_pb2.ListAuditRecordsRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.ListAuditRecordsResponse:
            has_range = request.HasField("at")
            page = await self._api.audit_records(
                v,
                from_seq=request.from_seq,
                target=request.target,
                agency=agency_key(request.agency) if request.agency else None,
                start=_time(request.at, "start_time") if has_range else None,
                end=_time(request.at, "end_time") if has_range else None,
                size=request.page_size,
                token=request.page_token,
            )
            return case_pb2.ListAuditRecordsResponse(
                records=[audit_proto(r) for r in page.records], next_page_token=page.next_token
            )

        return await self._call(context, go)

    async def VerifyAuditChain(self, request: case_pb2.VerifyAuditChainRequest, context: Any) -> Any:
        async def go(v: Viewer) -> case_pb2.VerifyAuditChainResponse:
            valid, checked, first_bad = await self._api.verify_audit(v)
            message = "" if valid else f"chain broken at seq {first_bad}"
            return case_pb2.VerifyAuditChainResponse(
                valid=valid, checked=checked, first_invalid_seq=first_bad, message=message
            )

        return await self._call(context, go)
