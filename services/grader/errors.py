"""The grader's exception tree. ``server.py`` turns each into a gRPC status with ``google.rpc`` details.

GraderError
├── InvalidArgument         INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken    INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound                NOT_FOUND (an event no longer in memory, an unknown policy version)
├── ConcurrentModification  ABORTED (UpdatePolicy with an expected_active_version that is not active)
└── Unavailable             UNAVAILABLE (Kafka, Elasticsearch or the database did not take an effect; retry).
                            Inside the consumer loop it means "recover from the last checkpoint", never a crash.

An invalid policy is not an error of UpdatePolicy: the response lists the problems and applies nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ConcurrentModification",
    "FieldViolation",
    "GraderError",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
    "Unavailable",
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field and what is wrong with it."""

    field: str
    description: str


class GraderError(Exception):
    """Base of the grader's errors. ``reason`` is an ``ErrorReason`` value name of errors.proto."""

    reason = "ERROR_REASON_UNSPECIFIED"


class InvalidArgument(GraderError):
    reason = "ERROR_REASON_INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations))

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class InvalidPageToken(InvalidArgument):
    reason = "ERROR_REASON_INVALID_PAGE_TOKEN"


class NotFound(GraderError):
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id: str, detail: str = "") -> None:
        self.resource = resource
        self.id = id
        super().__init__(detail or f"{resource} {id!r} not found")


class ConcurrentModification(GraderError):
    reason = "ERROR_REASON_CONCURRENT_MODIFICATION"


class Unavailable(GraderError):
    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"
