"""The collector's exception tree. The gRPC-facing ones are the shared tree of ``qingfeng.rpc.errors``;
``server.py`` turns them into a status with ``google.rpc`` details through ``qingfeng.rpc.errors.abort``.

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

from qingfeng.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from qingfeng.errors import InvalidPageToken as _InvalidPageToken
from qingfeng.errors import ServiceError as CollectorError
from qingfeng.errors import Unavailable as _Unavailable

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


class InvalidPageToken(_InvalidPageToken):
    def __init__(self) -> None:
        super().__init__([FieldViolation("page_token", "not a token this server issued for this query")])


class IndexingUnavailable(_Unavailable):
    """Elasticsearch could not take a batch (unreachable, overloaded): retry the batch later, do not commit it."""
