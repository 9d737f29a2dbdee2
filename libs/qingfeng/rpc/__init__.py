"""gRPC plumbing every process shares: the aio server with health, reflection and tracing, its lifecycle, and the
verified identity of callers (signed short-lived credentials, one server interceptor)."""

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
