"""The collector's exception tree. ``server.py`` turns each into a gRPC status with ``google.rpc`` details.

CollectorError
├── InvalidArgument       INVALID_ARGUMENT, with the field violations (google.rpc.BadRequest)
│   └── InvalidPageToken  INVALID_ARGUMENT, reason ERROR_REASON_INVALID_PAGE_TOKEN
├── NotFound              NOT_FOUND (a source id the registry does not know)
├── AlreadyExists         ALREADY_EXISTS (CreateSource with a taken id)
├── FailedPrecondition    FAILED_PRECONDITION (no tip key configured, built-in source changed …)
└── IndexingUnavailable   raised inside the indexer when Elasticsearch cannot take a batch; never reaches gRPC:
                          the indexer backs off and resumes from the last committed offset
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AlreadyExists",
    "CollectorError",
    "FailedPrecondition",
    "FieldViolation",
    "IndexingUnavailable",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
]


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field (``source.html.body_selector``) and what is wrong with it."""

    field: str
    description: str


class CollectorError(Exception):
    """Base of the collector's errors. ``reason`` is an ``ErrorReason`` value name of errors.proto."""

    reason = "ERROR_REASON_UNSPECIFIED"


class InvalidArgument(CollectorError):
    """The request is malformed; ``violations`` names every bad field found, not just the first."""

    reason = "ERROR_REASON_INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(f"{v.field}: {v.description}" for v in self.violations) or "invalid request")

    @classmethod
    def one(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class InvalidPageToken(InvalidArgument):
    reason = "ERROR_REASON_INVALID_PAGE_TOKEN"

    def __init__(self) -> None:
        super().__init__([FieldViolation("page_token", "not a token this server issued for this query")])


class NotFound(CollectorError):
    reason = "ERROR_REASON_NOT_FOUND"

    def __init__(self, resource: str, id_: str) -> None:
        self.resource = resource
        self.id = id_
        super().__init__(f"{resource} {id_!r} not found")


class AlreadyExists(CollectorError):
    reason = "ERROR_REASON_ALREADY_EXISTS"

    def __init__(self, resource: str, id_: str) -> None:
        self.resource = resource
        self.id = id_
        super().__init__(f"{resource} {id_!r} already exists")


class FailedPrecondition(CollectorError):
    reason = "ERROR_REASON_INVALID_STATE"


class IndexingUnavailable(CollectorError):
    """Elasticsearch could not take a batch (unreachable, overloaded): retry the batch later, do not commit it."""

    reason = "ERROR_REASON_DEPENDENCY_UNAVAILABLE"
