"""Need-to-know over gRPC (不泄露案情): for every read method and every agency identity, agency A never sees agency B's
tasks or a case's restricted fields, and cannot tell whether they exist (the answer for another agency's resource is
the answer for a missing one). The office sees everything, and its reads of restricted data are audited."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from qingfeng.v1 import case_pb2, common_pb2

from services.coordinator.convert import agency_key
from services.coordinator.handling import Handling

from ..conftest import FakeClock
from .harness import PARTNERS, Running, running

MISSING = "does-not-exist-0000"


@pytest.fixture
async def live(handling: Handling, clock: FakeClock) -> AsyncIterator[Running]:
    async with running(handling, clock) as r:
        yield r


async def _error(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


def _same_answer(a: tuple[grpc.StatusCode, str], b: tuple[grpc.StatusCode, str], a_id: str, b_id: str) -> None:
    assert a[0] == b[0] == grpc.StatusCode.NOT_FOUND
    assert a[1].replace(a_id, "<id>") == b[1].replace(b_id, "<id>")


@pytest.mark.parametrize("agency", PARTNERS)
async def test_partner_sees_only_its_own(live: Running, agency: str) -> None:
    s = live.seeded
    own_tasks = set(s.tasks_by_agency.get(agency, []))
    foreign_tasks = {t for a, ids in s.tasks_by_agency.items() if a != agency for t in ids}
    all_cases = {s.rumour_case, s.petition_case, s.quiet_case}
    channel, stub = live.stub(agency)
    async with channel:
        # ListTasks: own tasks only, whatever the filter asks for.
        listed = await stub.ListTasks(case_pb2.ListTasksRequest(page_size=500))
        assert {t.id for t in listed.tasks} == own_tasks
        assert all(agency_key(t.agency) == agency for t in listed.tasks)
        for other in ("police_cyber", "propaganda", "petitions", "daily_newspaper"):
            if other != agency:
                asked = await stub.ListTasks(case_pb2.ListTasksRequest(agency=_enum(other)))
                assert list(asked.tasks) == []
        for case_id in all_cases:
            by_case = await stub.ListTasks(case_pb2.ListTasksRequest(case_id=case_id))
            assert {t.id for t in by_case.tasks} <= own_tasks

        # Tasks of others cannot be touched, and answer exactly like a missing task.
        missing_update = await _error(stub.CompleteTask(case_pb2.CompleteTaskRequest(task_id=MISSING, result="x")))
        for task_id in foreign_tasks:
            foreign = await _error(stub.CompleteTask(case_pb2.CompleteTaskRequest(task_id=task_id, result="x")))
            _same_answer(foreign, missing_update, task_id, MISSING)
            mask = FieldMask(paths=["status"])
            update = case_pb2.UpdateTaskRequest(
                task=case_pb2.Task(id=task_id, status=case_pb2.TASK_STATUS_IN_PROGRESS), update_mask=mask
            )
            missing = case_pb2.UpdateTaskRequest(
                task=case_pb2.Task(id=MISSING, status=case_pb2.TASK_STATUS_IN_PROGRESS), update_mask=mask
            )
            _same_answer(
                await _error(stub.UpdateTask(update)), await _error(stub.UpdateTask(missing)), task_id, MISSING
            )

        # Cases: the summary of those it has tasks on; any other answers like a missing one.
        visible = {t.case_id for t in listed.tasks}
        cases = await stub.ListCases(case_pb2.ListCasesRequest())
        assert {c.id for c in cases.cases} == visible
        missing_case = await _error(stub.GetCase(case_pb2.GetCaseRequest(id=MISSING)))
        missing_instr = await _error(stub.ListInstructions(case_pb2.ListInstructionsRequest(case_id=MISSING)))
        for case_id in all_cases:
            if case_id in visible:
                got = (await stub.GetCase(case_pb2.GetCaseRequest(id=case_id))).case
                _assert_summary_only(got)
                instructions = await stub.ListInstructions(case_pb2.ListInstructionsRequest(case_id=case_id))
                assert list(instructions.instructions) == []
            else:
                _same_answer(
                    await _error(stub.GetCase(case_pb2.GetCaseRequest(id=case_id))), missing_case, case_id, MISSING
                )
                err = await _error(stub.ListInstructions(case_pb2.ListInstructionsRequest(case_id=case_id)))
                _same_answer(err, missing_instr, case_id, MISSING)
                by_case = await stub.ListMeetings(case_pb2.ListMeetingsRequest(case_id=case_id))
                assert list(by_case.meetings) == []
        for c in cases.cases:
            _assert_summary_only(c)

        # Meetings: only those it is summoned to, without minutes, with its own decisions only.
        meetings = await stub.ListMeetings(case_pb2.ListMeetingsRequest())
        for m in meetings.meetings:
            assert m.minutes == "" and list(m.case_ids) == []
            assert all(agency_key(d.owner) == agency for d in m.decisions)
            assert {t for d in m.decisions for t in d.task_ids} <= own_tasks
        summoned = agency in (
            "propaganda",
            "police_cyber",
            "petitions",
            "daily_newspaper",
            "telecom_regulator",
            "case_management",
        )
        assert len(meetings.meetings) == (1 if summoned else 0)

        # The audit log and every office action: denied, whatever the resource.
        for call in (
            stub.ListAuditRecords(case_pb2.ListAuditRecordsRequest()),
            stub.VerifyAuditChain(case_pb2.VerifyAuditChainRequest()),
            stub.AcknowledgeCase(case_pb2.AcknowledgeCaseRequest(case_id=s.rumour_case)),
            stub.AcknowledgeCase(case_pb2.AcknowledgeCaseRequest(case_id=MISSING)),
            stub.MarkCorruption(case_pb2.MarkCorruptionRequest(case_id=s.quiet_case, reason="x")),
        ):
            assert (await _error(call))[0] == grpc.StatusCode.PERMISSION_DENIED


def _enum(agency: str) -> common_pb2.Agency.ValueType:
    from services.coordinator.convert import agency_enum

    return agency_enum(agency)


def _assert_summary_only(case: case_pb2.Case) -> None:
    assert case.id and case.title
    assert case.event_id == "" and case.routed_to == 0 and list(case.escalations) == []
    assert case.disposition_rationale == "" and list(case.routed_people) == [] and list(case.regions) == []
    assert not case.HasField("acknowledged_by") and not case.HasField("ack_deadline")
    assert case.corruption_relevance == 0 and not case.corruption_related


async def test_partner_completes_its_own_task(live: Running) -> None:
    task_id = live.seeded.tasks_by_agency["police_cyber"][0]
    channel, stub = live.stub("police_cyber", principal="police.zhang")
    async with channel:
        done = await stub.CompleteTask(case_pb2.CompleteTaskRequest(task_id=task_id, result="已依法处置"))
    assert done.task.status == case_pb2.TASK_STATUS_DONE and done.task.completed_by.id == "police.zhang"


async def test_office_sees_everything_and_reads_are_audited(live: Running) -> None:
    s = live.seeded
    channel, stub = live.stub("opinion_office", principal="office.li")
    async with channel:
        tasks = await stub.ListTasks(case_pb2.ListTasksRequest(page_size=500))
        assert {t.id for t in tasks.tasks} == {t for ids in s.tasks_by_agency.values() for t in ids}
        cases = await stub.ListCases(case_pb2.ListCasesRequest())
        assert [c.level for c in cases.cases] == [
            common_pb2.WARNING_LEVEL_ORANGE,
            common_pb2.WARNING_LEVEL_YELLOW,
            common_pb2.WARNING_LEVEL_BLUE,
        ]
        full = (await stub.GetCase(case_pb2.GetCaseRequest(id=s.rumour_case))).case
        assert full.event_id == "ev-r" and full.routed_to == common_pb2.OFFICIAL_LEVEL_SECRETARY
        assert full.disposition_rationale == "经核查为谣言" and full.HasField("refutation_due_at")
        instructions = await stub.ListInstructions(case_pb2.ListInstructionsRequest(case_id=s.rumour_case))
        assert [i.text for i in instructions.instructions] == ["迅速核实"]
        audit = await stub.ListAuditRecords(
            case_pb2.ListAuditRecordsRequest(target=f"cases/{s.rumour_case}", page_size=1000)
        )
        reads = [(r.action, r.actor.id) for r in audit.records if r.action in ("case.read", "instruction.list")]
        assert ("case.read", "office.li") in reads and ("instruction.list", "office.li") in reads
        verified = await stub.VerifyAuditChain(case_pb2.VerifyAuditChainRequest())
        assert verified.valid and verified.checked > 10


async def test_validation_errors_are_invalid_argument(live: Running) -> None:
    channel, stub = live.stub("opinion_office")
    async with channel:
        code, _ = await _error(stub.SetDisposition(case_pb2.SetDispositionRequest(case_id=live.seeded.quiet_case)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        code, _ = await _error(stub.ListCases(case_pb2.ListCasesRequest(page_token="garbage!")))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        # Disposition before acknowledgement: a state error, not a crash.
        request = case_pb2.SetDispositionRequest(
            case_id=live.seeded.quiet_case, disposition=case_pb2.DISPOSITION_MISUNDERSTANDING, rationale="x"
        )
        code, _ = await _error(stub.SetDisposition(request))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
