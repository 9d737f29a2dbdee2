"""The coordinator's exception tree. All but ``RenderFailed`` are the shared tree of
``qingfeng.rpc.errors``; ``server.py`` turns them into a status with ``google.rpc`` details (``abort``).

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

from qingfeng.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    InvalidPageToken,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from qingfeng.errors import ServiceError as CoordinatorError

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


class RenderFailed(CoordinatorError):
    """A report could not be rendered (INTERNAL): fonts or the renderer failed, not the caller's request."""
