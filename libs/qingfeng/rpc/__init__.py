"""gRPC plumbing every process shares: the aio server with health, reflection and tracing, its lifecycle, and the
verified identity of callers (signed short-lived credentials, one server interceptor).

The names below load on first use (PEP 562): importing one submodule, as `qingfeng import` does for its credentials
and TLS channel, must not pull in the server, health, reflection and OpenTelemetry's gRPC instrumentation, which
took ~0.2 s of a short-lived client's start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qingfeng.rpc.auth import CredentialInterceptor
    from qingfeng.rpc.caller import Caller, NoVerifiedCaller, current_caller
    from qingfeng.rpc.credentials import (
        CREDENTIAL_HEADER,
        CredentialError,
        CredentialSigner,
        TrustConfigError,
        TrustFile,
        TrustStore,
        load_signer,
    )
    from qingfeng.rpc.identity_setup import credential_interceptor, signer_from_settings
    from qingfeng.rpc.lifecycle import ReadinessCheck, run_until_stopped
    from qingfeng.rpc.server import LIVENESS, GrpcServer, build_server
    from qingfeng.rpc.tls import TlsConfigError, aio_channel, sync_channel

# Each exported name and the submodule that defines it.
_HOMES: dict[str, str] = {
    "CredentialInterceptor": "auth",
    "Caller": "caller",
    "NoVerifiedCaller": "caller",
    "current_caller": "caller",
    "CREDENTIAL_HEADER": "credentials",
    "CredentialError": "credentials",
    "CredentialSigner": "credentials",
    "TrustConfigError": "credentials",
    "TrustFile": "credentials",
    "TrustStore": "credentials",
    "load_signer": "credentials",
    "credential_interceptor": "identity_setup",
    "signer_from_settings": "identity_setup",
    "ReadinessCheck": "lifecycle",
    "run_until_stopped": "lifecycle",
    "LIVENESS": "server",
    "GrpcServer": "server",
    "build_server": "server",
    "TlsConfigError": "tls",
    "aio_channel": "tls",
    "sync_channel": "tls",
}

__all__ = [
    "CREDENTIAL_HEADER",
    "LIVENESS",
    "Caller",
    "CredentialError",
    "CredentialInterceptor",
    "CredentialSigner",
    "GrpcServer",
    "NoVerifiedCaller",
    "ReadinessCheck",
    "TlsConfigError",
    "TrustConfigError",
    "TrustFile",
    "TrustStore",
    "aio_channel",
    "build_server",
    "credential_interceptor",
    "current_caller",
    "load_signer",
    "run_until_stopped",
    "signer_from_settings",
    "sync_channel",
]


# Hidden from type checkers, which see the imports above instead: a misspelt name stays an error for mypy rather
# than an Any from a module-level __getattr__.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOMES.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        # Later lookups find the name in the module's dict and skip this function.
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
