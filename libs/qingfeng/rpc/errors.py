"""Every service error into one gRPC status with ``google.rpc`` details: ``ErrorInfo`` (reason, domain
``qingfeng.v1``, metadata) always, ``BadRequest`` for invalid arguments, ``PreconditionFailure`` for refused steps,
``RetryInfo`` when the error carries retry advice (``retry_delay_s``; a client reads it back with ``retry_delay_of``).
The tree itself is ``qingfeng.errors`` (re-exported here)."""

from __future__ import annotations

from typing import Any, Final, NoReturn

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from qingfeng.errors import (
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
)

__all__ = [
    "AlreadyExists",
    "ConcurrentModification",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "ServiceError",
    "Unavailable",
    "abort",
    "retry_delay_of",
    "status_of",
]

DOMAIN: Final = "qingfeng.v1"


def status_of(err: ServiceError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for ``err``."""
    status = status_pb2.Status(code=code_pb2.Code.Value(err.code), message=str(err))
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=dict(err.metadata()))
    status.details.add().Pack(info)
    if isinstance(err, InvalidArgument):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in err.violations
        ]
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=violations))
    if isinstance(err, FailedPrecondition):
        violation = error_details_pb2.PreconditionFailure.Violation(type=err.precondition, description=str(err))
        status.details.add().Pack(error_details_pb2.PreconditionFailure(violations=[violation]))
    if err.retry_delay_s is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromMilliseconds(max(0, round(err.retry_delay_s * 1000)))
        status.details.add().Pack(retry)
    return status


def retry_delay_of(err: grpc.RpcError) -> float | None:
    """The ``RetryInfo`` delay (seconds) of a failed call's status, or None when it carries no retry advice."""
    try:
        status = rpc_status.from_call(err)  # a failed call is its own grpc.Call
    except (AttributeError, TypeError, ValueError):  # not a call (a test double) or a malformed status
        return None
    for detail in status.details if status is not None else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            return float(retry.retry_delay.ToMilliseconds()) / 1000
    return None


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> NoReturn:
    """End the call with ``err``'s status (details in the trailing metadata, as ``grpc_status`` reads them)."""
    await context.abort_with_status(rpc_status.to_status(status_of(err)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises
