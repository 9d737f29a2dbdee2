"""The shared error tree maps to the right gRPC code and carries ErrorInfo (and BadRequest) details."""

from __future__ import annotations

import pytest
from google.rpc import code_pb2, error_details_pb2  # type: ignore[import-untyped]
from qingfeng.rpc.errors import (
    AlreadyExists,
    ConcurrentModification,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvalidPageToken,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    status_of,
)


@pytest.mark.parametrize(
    ("err", "code", "reason"),
    [
        (InvalidArgument.of("name", "required"), code_pb2.INVALID_ARGUMENT, "ERROR_REASON_INVALID_ARGUMENT"),
        (InvalidPageToken.of("page_token", "bad"), code_pb2.INVALID_ARGUMENT, "ERROR_REASON_INVALID_PAGE_TOKEN"),
        (NotFound("case", "c1"), code_pb2.NOT_FOUND, "ERROR_REASON_NOT_FOUND"),
        (AlreadyExists("source", "x"), code_pb2.ALREADY_EXISTS, "ERROR_REASON_ALREADY_EXISTS"),
        (PermissionDenied("no"), code_pb2.PERMISSION_DENIED, "ERROR_REASON_AGENCY_NOT_ALLOWED"),
        (FailedPrecondition("closed"), code_pb2.FAILED_PRECONDITION, "ERROR_REASON_INVALID_STATE"),
        (ConcurrentModification("stale"), code_pb2.ABORTED, "ERROR_REASON_CONCURRENT_MODIFICATION"),
        (ResourceExhausted("quota"), code_pb2.RESOURCE_EXHAUSTED, "ERROR_REASON_RATE_LIMITED"),
        (Unavailable("db"), code_pb2.UNAVAILABLE, "ERROR_REASON_DEPENDENCY_UNAVAILABLE"),
        (ServiceError("bug"), code_pb2.INTERNAL, "ERROR_REASON_UNSPECIFIED"),
    ],
)
def test_each_error_has_its_code_and_reason(err: ServiceError, code: int, reason: str) -> None:
    status = status_of(err)
    info = error_details_pb2.ErrorInfo()
    assert status.code == code and status.message == str(err)
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == (reason, "qingfeng.v1")


def test_invalid_argument_lists_every_violation() -> None:
    err = InvalidArgument([FieldViolation("a", "missing"), FieldViolation("b.c", "too long")])
    status = status_of(err)
    bad = error_details_pb2.BadRequest()
    assert status.details[1].Unpack(bad)
    assert [(v.field, v.description) for v in bad.field_violations] == [("a", "missing"), ("b.c", "too long")]
    info = error_details_pb2.ErrorInfo()
    status.details[0].Unpack(info)
    assert dict(info.metadata) == {"field": "a"}


def test_not_found_names_the_resource() -> None:
    info = error_details_pb2.ErrorInfo()
    status_of(NotFound("task", "t-9")).details[0].Unpack(info)
    assert dict(info.metadata) == {"resource": "task", "id": "t-9"}
    assert str(NotFound("task", "t-9")) == "task 't-9' not found"
