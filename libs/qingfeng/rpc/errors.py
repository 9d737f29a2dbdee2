"""The error tree every service shares, and its one translation into a gRPC status with ``google.rpc`` details.

ServiceError                    (base; ``reason`` is an ``ErrorReason`` value name of errors.proto)
├── InvalidArgument             INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken        INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound                    NOT_FOUND: missing, or (need-to-know) not visible to the caller — the same answer
├── AlreadyExists               ALREADY_EXISTS
├── PermissionDenied            PERMISSION_DENIED: the caller's role may not do this (says nothing of resources)
├── FailedPrecondition          FAILED_PRECONDITION: the resource is not in a state that allows the action
├── ConcurrentModification      ABORTED: someone else changed it first; re-read and retry
├── ResourceExhausted           RESOURCE_EXHAUSTED: a quota or size limit
└── Unavailable                 UNAVAILABLE: a dependency did not take the effect; retry

A service's own ``errors.py`` subclasses these (to give a more precise ``reason``) and its servicer calls
``abort(context, err)``; every status carries an ``ErrorInfo`` (reason, domain ``qingfeng.v1``, metadata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, NoReturn

import grpc
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

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
    "status_of",
]

DOMAIN: Final = "qingfeng.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and what is wrong with it."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of every service error; subclasses set ``code`` and ``reason``."""

    code: ClassVar[int] = code_pb2.INTERNAL
    reason: ClassVar[str] = "ERROR_REASON_UNSPECIFIED"

    def metadata(self) -> Mapping[str, str]:
        """Machine-readable context for ``ErrorInfo.metadata``."""
        return {}


class InvalidArgument(ServiceError):
    code = code_pb2.INVALID_ARGUMENT
    reason = "ERROR_REASON_INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])

    def metadata(self) -> Mapping[str, str]:
        return {"field": self.violations[0].field} if self.violations else {}


class InvalidPageToken(InvalidArgument):
    reason = "ERROR_REASON_INVALID_PAGE_TOKEN"


class NotFound(ServiceError):
    code = code_pb2.NOT_FOUND
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id: str, detail: str = "") -> None:
        self.resource = resource
        self.id = id
        super().__init__(detail or f"{resource} {id!r} not found")

    def metadata(self) -> Mapping[str, str]:
        return {"resource": self.resource, "id": self.id}


class AlreadyExists(ServiceError):
    code = code_pb2.ALREADY_EXISTS
    reason = "ERROR_REASON_ALREADY_EXISTS"

    def __init__(self, resource: str, id: str) -> None:
        self.resource = resource
        self.id = id
        super().__init__(f"{resource} {id!r} already exists")

    def metadata(self) -> Mapping[str, str]:
        return {"resource": self.resource, "id": self.id}


class PermissionDenied(ServiceError):
    code = code_pb2.PERMISSION_DENIED
    reason = "ERROR_REASON_AGENCY_NOT_ALLOWED"


class FailedPrecondition(ServiceError):
    code = code_pb2.FAILED_PRECONDITION
    reason = "ERROR_REASON_INVALID_STATE"


class ConcurrentModification(ServiceError):
    code = code_pb2.ABORTED
    reason = "ERROR_REASON_CONCURRENT_MODIFICATION"


class ResourceExhausted(ServiceError):
    code = code_pb2.RESOURCE_EXHAUSTED
    reason = "ERROR_REASON_RATE_LIMITED"


class Unavailable(ServiceError):
    code = code_pb2.UNAVAILABLE
    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"


def status_of(err: ServiceError) -> status_pb2.Status:
    """The ``google.rpc.Status`` (code, message, details) for ``err``."""
    status = status_pb2.Status(code=err.code, message=str(err))
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=dict(err.metadata()))
    status.details.add().Pack(info)
    if isinstance(err, InvalidArgument):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in err.violations
        ]
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=violations))
    return status


async def abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> NoReturn:
    """End the call with ``err``'s status (details in the trailing metadata, as ``grpc_status`` reads them)."""
    await context.abort_with_status(rpc_status.to_status(status_of(err)))
    raise AssertionError("abort_with_status returned")  # pragma: no cover - it always raises
