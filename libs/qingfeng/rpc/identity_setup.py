"""Build the identity parts of a process from its ``IdentitySettings``, failing fast with the variable's name."""

from __future__ import annotations

from qingfeng.rpc.auth import CredentialInterceptor
from qingfeng.rpc.credentials import CredentialSigner, TrustConfigError, TrustFile, load_signer
from qingfeng.settings import IdentitySettings

__all__ = ["credential_interceptor", "signer_from_settings"]


def credential_interceptor(settings: IdentitySettings, *, env_prefix: str) -> CredentialInterceptor:
    """The interceptor over the trust file; ``TrustConfigError`` naming ``<prefix>IDENTITY__TRUST_FILE`` if unset."""
    if settings.trust_file is None:
        raise TrustConfigError(
            f"{env_prefix}IDENTITY__TRUST_FILE is required: a service believes only callers it can verify "
            "(`qingfeng up` provisions one under .qingfeng/pki/)"
        )
    try:
        return CredentialInterceptor(TrustFile(settings.trust_file))
    except TrustConfigError as exc:
        raise TrustConfigError(f"{env_prefix}IDENTITY__TRUST_FILE: {exc}") from exc


def signer_from_settings(settings: IdentitySettings, *, env_prefix: str) -> CredentialSigner:
    """The process's own signer; ``TrustConfigError`` naming the variable that is missing or bad."""
    if not settings.issuer or settings.signing_key_file is None:
        raise TrustConfigError(
            f"{env_prefix}IDENTITY__ISSUER and {env_prefix}IDENTITY__SIGNING_KEY_FILE are required to call services"
        )
    try:
        return load_signer(settings.issuer, settings.signing_key_file, ttl_s=settings.credential_ttl_s)
    except TrustConfigError as exc:
        raise TrustConfigError(f"{env_prefix}IDENTITY__SIGNING_KEY_FILE: {exc}") from exc
