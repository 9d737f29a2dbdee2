"""The publisher's exception tree. ``server.py`` turns each into a gRPC status with ``google.rpc`` details.

PublisherError
├── InvalidArgument         INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken    INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound                NOT_FOUND (draft, publication, channel, template)
├── Refused                 FAILED_PRECONDITION: the state machine refuses the step (reason names why)
│   ├── InvalidState        ERROR_REASON_INVALID_STATE: not allowed in the draft's current status
│   ├── AlreadySigned       ERROR_REASON_INVALID_STATE: this person already signed this revision
│   ├── NotSignedOff        ERROR_REASON_NOT_SIGNED_OFF: publishing before the chain is complete
│   └── ChecksFailed        ERROR_REASON_INVALID_STATE: a pre-publication check blocks it (findings listed)
├── PermissionDenied        PERMISSION_DENIED: four-eyes (the author signs) or the caller lacks the step's role
├── ConcurrentModification  ABORTED: the draft changed since it was read (optimistic concurrency, stale revision)
└── Unavailable             UNAVAILABLE: the database did not take the effect; retry

Pure: the core raises these too (they carry no I/O), so one tree covers the whole service.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadySigned",
    "ChecksFailed",
    "ConcurrentModification",
    "FieldViolation",
    "InvalidArgument",
    "InvalidPageToken",
    "InvalidState",
    "NotFound",
    "NotSignedOff",
    "PermissionDenied",
    "PublisherError",
    "Refused",
    "Unavailable",
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and what is wrong with it."""

    field: str
    description: str


class PublisherError(Exception):
    """Base of the publisher's errors. ``reason`` is an ``ErrorReason`` value name of errors.proto."""

    reason = "ERROR_REASON_UNSPECIFIED"


class InvalidArgument(PublisherError):
    reason = "ERROR_REASON_INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class InvalidPageToken(InvalidArgument):
    reason = "ERROR_REASON_INVALID_PAGE_TOKEN"


class NotFound(PublisherError):
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id: str) -> None:
        self.resource = resource
        self.id = id
        super().__init__(f"{resource} {id!r} not found")


class Refused(PublisherError):
    """The step is not allowed now; the message says why in words an operator understands."""

    reason = "ERROR_REASON_INVALID_STATE"


class InvalidState(Refused):
    pass


class AlreadySigned(Refused):
    pass


class NotSignedOff(Refused):
    reason = "ERROR_REASON_NOT_SIGNED_OFF"


class ChecksFailed(Refused):
    def __init__(self, findings: Sequence[str]) -> None:
        self.findings = tuple(findings)
        super().__init__("checks before publishing failed: " + "; ".join(self.findings))


class PermissionDenied(PublisherError):
    reason = "ERROR_REASON_AGENCY_NOT_ALLOWED"


class ConcurrentModification(PublisherError):
    reason = "ERROR_REASON_CONCURRENT_MODIFICATION"


class Unavailable(PublisherError):
    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"
