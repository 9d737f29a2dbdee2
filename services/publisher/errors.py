"""The publisher's exception tree. Built on the shared tree of ``qingfeng.rpc.errors``;
``server.py`` turns each into a gRPC status with ``google.rpc`` details through ``qingfeng.rpc.errors.abort``.

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

from qingfeng.errors import (
    ConcurrentModification,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvalidPageToken,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from qingfeng.errors import ServiceError as PublisherError

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


class Refused(FailedPrecondition):
    """The step is not allowed now; the message says why in words an operator understands."""

    precondition = "PUBLISHER"


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
