"""The coordinator's exception tree. ``server.py`` turns each into a gRPC status with ``google.rpc`` details.

CoordinatorError
├── InvalidArgument         INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken    INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound                NOT_FOUND: a missing resource, and equally one the caller may not see (不泄露案情)
├── PermissionDenied        PERMISSION_DENIED: a partner calling an office-only method (says nothing of resources)
├── FailedPrecondition      FAILED_PRECONDITION: the case or task is not in a state that allows the action
├── Unavailable             UNAVAILABLE: the database did not take the effect; retry
└── RenderFailed            INTERNAL: a report could not be rendered (e.g. the CJK fonts are not installed)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CoordinatorError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
    "PermissionDenied",
    "RenderFailed",
    "Unavailable",
]


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class CoordinatorError(Exception):
    """Base of the coordinator's errors. ``reason`` is an ``ErrorReason`` value name of errors.proto."""

    reason = "ERROR_REASON_UNSPECIFIED"


class InvalidArgument(CoordinatorError):
    reason = "ERROR_REASON_INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class InvalidPageToken(InvalidArgument):
    reason = "ERROR_REASON_INVALID_PAGE_TOKEN"


class NotFound(CoordinatorError):
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id: str) -> None:
        self.resource = resource
        self.id = id
        super().__init__(f"{resource} {id!r} not found")


class PermissionDenied(CoordinatorError):
    reason = "ERROR_REASON_AGENCY_NOT_ALLOWED"


class FailedPrecondition(CoordinatorError):
    reason = "ERROR_REASON_INVALID_STATE"


class Unavailable(CoordinatorError):
    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"


class RenderFailed(CoordinatorError):
    reason = "ERROR_REASON_UNSPECIFIED"
