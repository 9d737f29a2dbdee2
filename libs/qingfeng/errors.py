"""The error tree every service shares, free of gRPC so a pure core may raise it (``qingfeng.rpc.errors`` turns
each into a gRPC status with ``google.rpc`` details).

ServiceError                    (base; ``reason`` is an ``ErrorReason`` value name of errors.proto)
├── InvalidArgument             INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken        INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound                    NOT_FOUND: missing, or (need-to-know) not visible to the caller — the same answer
├── AlreadyExists               ALREADY_EXISTS
├── PermissionDenied            PERMISSION_DENIED: the caller's role may not do this (says nothing of resources)
├── FailedPrecondition          FAILED_PRECONDITION: the resource is not in a state that allows the action
├── ConcurrentModification      ABORTED: someone else changed it first; re-read and retry
├── ResourceExhausted           RESOURCE_EXHAUSTED: a quota or size limit (or an overload: with retry advice)
└── Unavailable                 UNAVAILABLE: a dependency did not take the effect; retry

``retry_delay_s`` (set by ResourceExhausted and Unavailable when given) becomes a ``google.rpc.RetryInfo``: how long
the caller should wait before sending the same request again.

A service's own ``errors.py`` subclasses these (to give a more precise ``reason``); ``code`` is the name of a
``google.rpc.Code``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

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
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and what is wrong with it."""

    field: str
    description: str


class ServiceError(Exception):
    """Base of every service error; subclasses set ``code`` and ``reason``."""

    code: ClassVar[str] = "INTERNAL"
    reason: ClassVar[str] = "ERROR_REASON_UNSPECIFIED"
    # Seconds after which the same request may succeed (google.rpc.RetryInfo); None: no advice.
    retry_delay_s: float | None = None

    def metadata(self) -> Mapping[str, str]:
        """Machine-readable context for ``ErrorInfo.metadata``."""
        return {}


class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"
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
    code = "NOT_FOUND"
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id: str, detail: str = "") -> None:
        self.resource = resource
        self.id = id
        super().__init__(detail or f"{resource} {id!r} not found")

    def metadata(self) -> Mapping[str, str]:
        return {"resource": self.resource, "id": self.id}


class AlreadyExists(ServiceError):
    code = "ALREADY_EXISTS"
    reason = "ERROR_REASON_ALREADY_EXISTS"

    def __init__(self, resource: str, id: str) -> None:
        self.resource = resource
        self.id = id
        super().__init__(f"{resource} {id!r} already exists")

    def metadata(self) -> Mapping[str, str]:
        return {"resource": self.resource, "id": self.id}


class PermissionDenied(ServiceError):
    code = "PERMISSION_DENIED"
    reason = "ERROR_REASON_AGENCY_NOT_ALLOWED"


class FailedPrecondition(ServiceError):
    """Carries a ``google.rpc.PreconditionFailure`` whose violation type is ``precondition`` (what kind of rule)."""

    code = "FAILED_PRECONDITION"
    reason = "ERROR_REASON_INVALID_STATE"
    precondition: ClassVar[str] = "STATE"


class ConcurrentModification(ServiceError):
    code = "ABORTED"
    reason = "ERROR_REASON_CONCURRENT_MODIFICATION"


class ResourceExhausted(ServiceError):
    code = "RESOURCE_EXHAUSTED"
    reason = "ERROR_REASON_RATE_LIMITED"

    def __init__(self, message: str = "", *, retry_delay_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_delay_s = retry_delay_s


class Unavailable(ServiceError):
    code = "UNAVAILABLE"
    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"

    def __init__(self, message: str = "", *, retry_delay_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_delay_s = retry_delay_s
