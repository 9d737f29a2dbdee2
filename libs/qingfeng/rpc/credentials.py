"""Short-lived signed credentials: how a service knows who is calling without trusting the network.

The gateway authenticates a partner (bearer token or client certificate) and, for each upstream call, mints a JWT
signed with its Ed25519 key (``EdDSA``) that names the caller and is bound to exactly one service (``aud``) and one
method (``mth``) and expires in seconds. Internal callers that are not the gateway (the CLI's import, one service
calling another) hold keys of their own and sign for themselves only (``sub`` = ``iss``), limited to the exact
methods their trust entry grants. A service checks every call against its trust file::

    version: 1
    issuers:
      - name: gateway            # may assert any partner identity it authenticated
        asserts_identities: true
        public_key: |
          -----BEGIN PUBLIC KEY-----
          ...
      - name: ops-import         # signs for itself, for these exact methods only
        public_key: |
          ...
        grants: [/qingfeng.v1.CollectorService/ImportPosts]

Removing an issuer from the file (or rotating its key) takes effect without a restart: the trust file is re-read
when it changes.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qingfeng.rpc.caller import Caller
from qingfeng.safe_yaml import SafeYamlError, load_yaml

__all__ = [
    "CREDENTIAL_HEADER",
    "CredentialError",
    "CredentialSigner",
    "Issuer",
    "TrustConfigError",
    "TrustFile",
    "TrustStore",
    "generate_key",
    "load_signer",
    "parse_trust",
    "public_pem",
    "service_of",
    "trust_yaml",
]

# The metadata key that carries the credential; distinct from ``authorization`` (the partner's own token).
CREDENTIAL_HEADER: Final = "x-qingfeng-credential"
_ALGORITHM: Final = "EdDSA"
# Clock skew tolerated between the signer and the service (seconds).
_LEEWAY_S: Final = 2.0
# A credential may live at most this long, whatever the signer asks for.
MAX_TTL_S: Final = 300.0
_MAX_TOKEN_CHARS: Final = 8192
_MAX_TRUST_BYTES: Final = 256 * 1024


class CredentialError(Exception):
    """A credential that is missing, malformed, wrongly signed, expired, or bound to another service or method."""


class TrustConfigError(ValueError):
    """The trust file is unreadable or invalid; the message names the file and the field."""


def service_of(method: str) -> str:
    """``/qingfeng.v1.GraderService/GetEvent`` → ``qingfeng.v1.GraderService`` (the credential's audience)."""
    parts = method.split("/")
    if len(parts) != 3 or parts[0] or not parts[1] or not parts[2]:
        raise CredentialError(f"not a full gRPC method path: {method!r}")
    return parts[1]


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_pem(key: Ed25519PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@dataclass(frozen=True)
class CredentialSigner:
    """Mints credentials as ``issuer``: the gateway for partners, or an internal identity for itself."""

    issuer: str
    key: Ed25519PrivateKey
    ttl_s: float = 30.0

    def mint(
        self,
        method: str,
        *,
        principal: str | None = None,
        agency: str | None = None,
        roles: Iterable[str] = (),
        now: float | None = None,
    ) -> str:
        """A credential for one call of ``method`` by ``principal`` (default: the issuer itself)."""
        issued = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": principal or self.issuer,
            "aud": service_of(method),
            "mth": method,
            "iat": int(issued),
            "exp": int(issued + min(self.ttl_s, MAX_TTL_S)) + 1,
            "jti": secrets.token_hex(8),
        }
        if agency:
            claims["agy"] = agency
        role_list = sorted(set(roles))
        if role_list:
            claims["rol"] = role_list
        # The issuer also goes in the header (``kid``): a service picks the key from it without decoding the claims
        # twice; the signed ``iss`` claim must then name the same issuer.
        return jwt.encode(claims, self.key, algorithm=_ALGORITHM, headers={"kid": self.issuer})

    def metadata(self, method: str, **caller: Any) -> tuple[tuple[str, str], ...]:
        """Call metadata carrying a fresh credential for ``method``."""
        return ((CREDENTIAL_HEADER, self.mint(method, **caller)),)


def load_signer(issuer: str, key_file: Path, *, ttl_s: float = 30.0) -> CredentialSigner:
    """The signer whose private key (PEM, PKCS#8, unencrypted) is in ``key_file``."""
    try:
        data = key_file.read_bytes()
    except OSError as exc:
        raise TrustConfigError(f"{key_file}: cannot read signing key: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise TrustConfigError(f"{key_file}: not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise TrustConfigError(f"{key_file}: the signing key must be Ed25519")
    return CredentialSigner(issuer=issuer, key=key, ttl_s=ttl_s)


@dataclass(frozen=True)
class Issuer:
    name: str
    key: Ed25519PublicKey
    asserts_identities: bool
    grants: frozenset[str]


class _IssuerModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    public_key: str = Field(min_length=1, max_length=4096)
    asserts_identities: bool = False
    grants: tuple[str, ...] = ()

    @field_validator("grants")
    @classmethod
    def _exact_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for grant in value:
            if any(c in grant for c in "*?[]"):
                raise ValueError(f"grant {grant!r}: grants are exact method paths, no patterns")
            service_of(grant)
        return value


class _TrustModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    issuers: tuple[_IssuerModel, ...] = Field(min_length=1)


def parse_trust(text: str, *, source: str = "<string>") -> TrustStore:
    """Validate a trust file's text; errors name ``source`` and the failing field."""
    if len(text.encode("utf-8", "surrogatepass")) > _MAX_TRUST_BYTES:  # a lone surrogate is refused by the parser
        raise TrustConfigError(f"{source}: larger than {_MAX_TRUST_BYTES} bytes")
    try:
        raw = load_yaml(text, source=source, max_bytes=_MAX_TRUST_BYTES)
    except SafeYamlError as exc:
        raise TrustConfigError(str(exc)) from exc
    try:
        model = _TrustModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise TrustConfigError(f"{source}: {where}: {first['msg']}") from exc
    names = [i.name for i in model.issuers]
    if len(set(names)) != len(names):
        raise TrustConfigError(f"{source}: issuers: two issuers share one name")
    issuers: list[Issuer] = []
    for index, item in enumerate(model.issuers):
        try:
            key = serialization.load_pem_public_key(item.public_key.encode())
        except ValueError as exc:
            raise TrustConfigError(f"{source}: issuers.{index}.public_key: not a PEM public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise TrustConfigError(f"{source}: issuers.{index}.public_key: must be Ed25519")
        if item.asserts_identities and item.grants:
            raise TrustConfigError(f"{source}: issuers.{index}: an identity-asserting issuer takes no grants")
        issuers.append(Issuer(item.name, key, item.asserts_identities, frozenset(item.grants)))
    return TrustStore(tuple(issuers))


@dataclass(frozen=True)
class TrustStore:
    """The issuers a service believes, and the check every call goes through."""

    issuers: tuple[Issuer, ...]

    def verify(self, token: str | None, method: str, *, now: float | None = None) -> Caller:
        """The caller named by ``token`` if it is valid for exactly ``method`` now; else ``CredentialError``."""
        if not token:
            raise CredentialError(f"missing credential (metadata {CREDENTIAL_HEADER!r})")
        if len(token) > _MAX_TOKEN_CHARS:
            raise CredentialError("credential too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise CredentialError(f"malformed credential: {exc}") from exc
        if header.get("alg") != _ALGORITHM:
            raise CredentialError("credential not signed with EdDSA")
        issuer = next((i for i in self.issuers if i.name == header.get("kid")), None)
        if issuer is None:
            raise CredentialError(f"credential from an untrusted issuer {header.get('kid')!r}")
        try:
            claims = jwt.decode(
                token,
                issuer.key,
                algorithms=[_ALGORITHM],
                audience=service_of(method),
                issuer=issuer.name,
                leeway=_LEEWAY_S,
                # Expiry is checked below against ``now`` so tests can drive the clock.
                options={"require": ["exp", "iat", "aud", "iss", "sub"], "verify_iat": False, "verify_exp": False},
            )
        except jwt.InvalidAudienceError as exc:
            raise CredentialError(f"credential is for another service, not {service_of(method)}") from exc
        except jwt.PyJWTError as exc:
            raise CredentialError(f"invalid credential: {exc}") from exc
        current = time.time() if now is None else now
        if claims["exp"] - claims["iat"] > MAX_TTL_S + 1 or claims["iat"] > current + _LEEWAY_S:
            raise CredentialError("credential lifetime out of bounds")
        if claims["exp"] + _LEEWAY_S < current:
            raise CredentialError("credential expired")
        if claims.get("mth") != method:
            raise CredentialError(f"credential is for another method, not {method}")
        subject = str(claims["sub"])
        if not issuer.asserts_identities:
            if subject != issuer.name:
                raise CredentialError(f"issuer {issuer.name!r} may sign only for itself")
            if method not in issuer.grants:
                raise CredentialError(f"identity {issuer.name!r} is not granted {method}")
        roles = claims.get("rol") or []
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise CredentialError("credential roles must be a list of strings")
        agency = claims.get("agy")
        return Caller(
            principal=subject,
            agency=agency if isinstance(agency, str) else None,
            roles=frozenset(roles),
            issuer=issuer.name,
        )


class TrustFile:
    """A trust file re-read when it changes (checked at most every ``check_interval_s``), so revocation is live.

    A file that becomes invalid keeps the last good trust and logs nothing here; ``current()`` raises only if no good
    version was ever loaded.
    """

    def __init__(self, path: Path, *, check_interval_s: float = 1.0) -> None:
        self._path = path
        self._interval = check_interval_s
        self._checked = 0.0
        self._stamp: tuple[int, int] | None = None
        self._store: TrustStore | None = None
        self.last_error: str | None = None
        self.current()

    def _read(self) -> None:
        try:
            stat = os.stat(self._path)
        except OSError as exc:
            if self._store is None:
                raise TrustConfigError(f"{self._path}: cannot read trust file: {exc.strerror}") from exc
            self.last_error = f"{self._path}: {exc.strerror}"
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            store = parse_trust(self._path.read_text(encoding="utf-8"), source=str(self._path))
        except (TrustConfigError, OSError, UnicodeDecodeError) as exc:
            if self._store is None:
                raise TrustConfigError(str(exc)) from exc
            self.last_error = str(exc)
            return
        self._store, self._stamp, self.last_error = store, stamp, None

    def current(self) -> TrustStore:
        now = time.monotonic()
        if self._store is None or now - self._checked >= self._interval:
            self._checked = now
            self._read()
        assert self._store is not None
        return self._store


def trust_yaml(entries: Sequence[tuple[str, str, bool, Sequence[str]]]) -> str:
    """A trust file's text for ``(name, public_pem, asserts_identities, grants)`` entries (used by provisioning)."""
    issuers = []
    for name, pem, asserts, grants in entries:
        item: dict[str, Any] = {"name": name, "public_key": pem}
        if asserts:
            item["asserts_identities"] = True
        if grants:
            item["grants"] = list(grants)
        issuers.append(item)
    return yaml.safe_dump({"version": 1, "issuers": issuers}, sort_keys=False, allow_unicode=True)
