"""The translating edges: a PublicationRequest into RequestFacts, errors into gRPC statuses, drafts into protobuf."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from google.rpc import code_pb2, error_details_pb2  # type: ignore[import-untyped]
from qingfeng.v1 import common_pb2, publication_pb2, publication_request_pb2

from services.publisher import convert
from services.publisher.consumer import request_facts
from services.publisher.core.clocks import ResponseClock
from services.publisher.core.model import Decision, Draft, DraftStatus, Kind, Step
from services.publisher.errors import (
    AlreadySigned,
    ChecksFailed,
    ConcurrentModification,
    InvalidArgument,
    NotFound,
    NotSignedOff,
    PermissionDenied,
    PublisherError,
    Unavailable,
)
from services.publisher.server import status_of

NOW = datetime(2026, 11, 30, 8, tzinfo=UTC)


def request(**kw: object) -> publication_request_pb2.PublicationRequest:
    base: dict[str, object] = {
        "id": "r1",
        "case_id": "c1",
        "event_id": "e1",
        "kind": publication_pb2.DRAFT_KIND_REFUTATION,
        "level": common_pb2.WARNING_LEVEL_ORANGE,
        "facts": {"事件": "x"},
    }
    base.update(kw)
    return publication_request_pb2.PublicationRequest(**base)  # type: ignore[arg-type]


def test_request_facts_unpacks_everything() -> None:
    message = request(playbook_step="false_information.refute", reply_to_post_id="")
    message.due_at.FromDatetime(NOW + timedelta(hours=24))
    message.requested_at.FromDatetime(NOW)
    facts = request_facts(message)
    assert (facts.id, facts.case_id, facts.event_id, facts.kind, facts.level) == ("r1", "c1", "e1", Kind.REFUTATION,
                                                                                  "orange")  # fmt: skip
    assert facts.due_at == NOW + timedelta(hours=24) and facts.requested_at == NOW and facts.facts == {"事件": "x"}


@pytest.mark.parametrize(("change", "field"), [({"id": ""}, "id"), ({"case_id": ""}, "case_id"),
                                               ({"kind": 0}, "kind")])  # fmt: skip
def test_request_that_cannot_become_a_draft(change: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        request_facts(request(**change))
    assert err.value.violations[0].field == field


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (InvalidArgument.of("comment", "a rejection needs a reason"), code_pb2.INVALID_ARGUMENT,
         "ERROR_REASON_INVALID_ARGUMENT"),
        (NotFound("draft", "d9"), code_pb2.NOT_FOUND, "ERROR_REASON_NOT_FOUND"),
        (AlreadySigned("already approved"), code_pb2.FAILED_PRECONDITION, "ERROR_REASON_INVALID_STATE"),
        (NotSignedOff("not signed"), code_pb2.FAILED_PRECONDITION, "ERROR_REASON_NOT_SIGNED_OFF"),
        (ChecksFailed(["weibo: forbidden word"]), code_pb2.FAILED_PRECONDITION, "ERROR_REASON_INVALID_STATE"),
        (PermissionDenied("four-eyes"), code_pb2.PERMISSION_DENIED, "ERROR_REASON_AGENCY_NOT_ALLOWED"),
        (ConcurrentModification("changed"), code_pb2.ABORTED, "ERROR_REASON_CONCURRENT_MODIFICATION"),
        (Unavailable("db down"), code_pb2.UNAVAILABLE, "ERROR_REASON_DEPENDENCY_UNAVAILABLE"),
    ],
)  # fmt: skip
def test_status_of(error: PublisherError, code: int, reason: str) -> None:
    status = status_of(error)
    assert status.code == code and status.message == str(error)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info) and info.reason == reason and info.domain == "qingfeng.v1"
    if isinstance(error, InvalidArgument):
        bad = error_details_pb2.BadRequest()
        assert status.details[1].Unpack(bad) and bad.field_violations[0].field == "comment"


def test_draft_proto_maps_every_status_and_the_chain() -> None:
    step = Step(order=1, role="主任", official_level="opinion_office", decision=Decision.REJECTED, signer="li",
                comment="口径", decided_at=NOW, revision=2)  # fmt: skip
    for status in DraftStatus:
        draft = Draft(id="d", case_id="c", kind=Kind.RESULT, title="t", body="b", author="w", created_at=NOW,
                      updated_at=NOW, status=status, level="red", chain=(step,), revision=2)  # fmt: skip
        out = convert.draft_proto(draft, ResponseClock("golden_period", NOW, True))
        assert convert.STATUS_OF[out.status] is status
    assert out.level == common_pb2.WARNING_LEVEL_RED and out.kind == publication_pb2.DRAFT_KIND_RESULT
    [signed] = out.sign_off
    assert (signed.decision, signed.signer.id, signed.comment, signed.revision) == (
        publication_pb2.SIGN_OFF_DECISION_REJECTED, "li", "口径", 2)  # fmt: skip
    assert signed.official_level == common_pb2.OFFICIAL_LEVEL_OPINION_OFFICE
    assert out.response_clock_status == publication_pb2.RESPONSE_CLOCK_STATUS_MET
