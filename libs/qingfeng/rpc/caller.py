"""Who is calling a service: the identity that ``CredentialInterceptor`` verified, for the handler to read.

The one place where a service learns its caller. Nothing here parses ``x-qingfeng-*`` metadata: a service believes
only a signed credential (``credentials.py``), never a header that anyone on the network could set.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

__all__ = ["Caller", "NoVerifiedCaller", "current_caller", "reset_caller", "use_caller"]


class NoVerifiedCaller(RuntimeError):
    """A handler asked for its caller outside a call that ``CredentialInterceptor`` verified (a wiring bug)."""


@dataclass(frozen=True)
class Caller:
    """A verified caller: the principal, its agency and roles, and which issuer vouched for it.

    ``issuer`` is ``gateway`` for partners (the gateway authenticated them by token or client certificate) or the
    name of an internal service identity (``ops-import`` …) that signed for itself.
    """

    principal: str
    agency: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    issuer: str = ""

    def has_role(self, role: str) -> bool:
        return role in self.roles


_CURRENT: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("qingfeng_caller", default=None)


def current_caller() -> Caller:
    """The verified caller of the RPC being handled; raises ``NoVerifiedCaller`` outside one."""
    caller = _CURRENT.get()
    if caller is None:
        raise NoVerifiedCaller("no verified caller: is CredentialInterceptor installed on this server?")
    return caller


def use_caller(caller: Caller | None) -> contextvars.Token[Caller | None]:
    """Set the caller for the current context (the interceptor does this; tests of a core may too)."""
    return _CURRENT.set(caller)


def reset_caller(token: contextvars.Token[Caller | None]) -> None:
    _CURRENT.reset(token)
