"""The grader's exception tree. They are the shared tree of ``qingfeng.rpc.errors``;
``server.py`` turns them into a status with ``google.rpc`` details through ``qingfeng.rpc.errors.abort``.

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

from qingfeng.errors import (
    ConcurrentModification,
    FieldViolation,
    InvalidArgument,
    InvalidPageToken,
    NotFound,
    Unavailable,
)
from qingfeng.errors import ServiceError as GraderError

__all__ = [
    "ConcurrentModification",
    "FieldViolation",
    "GraderError",
    "InvalidArgument",
    "InvalidPageToken",
    "NotFound",
    "Unavailable",
]
