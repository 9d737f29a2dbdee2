"""Who is calling: the identity the gateway forwards as ``x-qingfeng-*`` metadata.

The gateway authenticates partners and adds ``x-qingfeng-principal``, ``x-qingfeng-agency`` and ``x-qingfeng-roles``
(comma-separated) to every call it forwards; the collector is reachable from the gateway alone (network policy in
``deploy/``), which is why it may trust them. A call without them (an operator on the collector's port) is audited
as ``unknown`` with no roles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["SEE_SUBMITTER", "Caller", "caller_from_metadata"]

# The role that may read who submitted a tip.
SEE_SUBMITTER: Final = "see_submitter"

_PRINCIPAL: Final = "x-qingfeng-principal"
_AGENCY: Final = "x-qingfeng-agency"
_ROLES: Final = "x-qingfeng-roles"


@dataclass(frozen=True)
class Caller:
    principal: str = "unknown"
    agency: str | None = None
    roles: frozenset[str] = frozenset()

    def has_role(self, role: str) -> bool:
        return role in self.roles


def caller_from_metadata(metadata: Iterable[tuple[str, Any]] | None) -> Caller:
    """The caller described by gRPC invocation metadata (keys are lower case in gRPC)."""
    values: dict[str, str] = {}
    for key, value in metadata or ():
        if key in (_PRINCIPAL, _AGENCY, _ROLES) and isinstance(value, str):
            values[key] = value.strip()
    roles = frozenset(r.strip() for r in values.get(_ROLES, "").split(",") if r.strip())
    return Caller(
        principal=values.get(_PRINCIPAL) or "unknown",
        agency=values.get(_AGENCY) or None,
        roles=roles,
    )
