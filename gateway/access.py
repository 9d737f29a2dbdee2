"""Who may call what: the gateway's access policy, loaded from validated YAML and re-read when it changes.

Each caller is an agency identity holding a bearer token, a client certificate (mutual TLS), or both. The policy
stores only the SHA-256 of each token and of each certificate (DER), so a leaked policy file grants nothing.

- **Grants are exact**: every entry is a full method path (``/qingfeng.v1.GraderService/GetEvent``); patterns are
  refused, because ``/qingfeng.v1.*`` would silently cover the admin method added next month. Reflection is granted
  by its method paths (``/grpc.reflection.v1.ServerReflection/ServerReflectionInfo`` and the ``v1alpha`` one).
- **Expiry**: ``expires_at`` (RFC 3339 with a zone) ends an identity; its token then answers UNAUTHENTICATED.
- **Revocation without restart**: ``PolicyFile`` re-reads the file when it changes (a stat at most every second)
  and on ``reload()`` (the gateway calls it on SIGHUP). A broken new file keeps the last good policy and logs an
  error, so a typo does not lock every partner out.
- **Need-to-know**: roles travel to the services; ``search`` scopes the identity's searches (``SearchScope``).
- Identity names, tokens and certificates are unique across the file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import re
import signal
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from qingfeng.safe_yaml import SafeYamlError, load_yaml

from gateway.search_query import SearchScope

__all__ = [
    "AGENCIES",
    "REFLECTION_METHODS",
    "SEE_TIPS_ROLE",
    "AccessDenied",
    "AccessPolicy",
    "AccessPolicyError",
    "Identity",
    "NotAuthenticated",
    "PolicyFile",
    "PolicySource",
    "authenticate",
    "authorize",
    "certificate_sha256",
    "current_policy",
    "hash_token",
    "load_access_policy",
    "parse_access_policy",
    "reload_on_sighup",
    "unknown_grants",
]

log = logging.getLogger("gateway.access")

# Agencies of the joint meeting (DESIGN §1); a caller must be one of them.
AGENCIES = frozenset(
    {
        "opinion_office",
        "discipline_commission",
        "propaganda",
        "police_cyber",
        "petitions",
        "daily_newspaper",
        "telecom_regulator",
        "case_management",
        "channel_operator",
        "analyst",
    }
)

# The role that may find tips (manual submissions) in search; without it they are filtered out.
SEE_TIPS_ROLE: Final = "see_tips"
# The reflection services the gateway serves; grant these paths to let an identity list the API.
REFLECTION_METHODS: Final = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
# A policy is a few kilobytes; refuse anything that could only be an accident or an attack.
MAX_POLICY_BYTES: Final = 1024 * 1024
_EXACT_METHOD = re.compile(r"^/[A-Za-z_]\w*(\.[A-Za-z_]\w*)+/[A-Za-z_]\w*$")
_SHA256 = r"^[0-9a-f]{64}$"


class AccessPolicyError(ValueError):
    """The policy file is missing, not YAML, or does not validate; the message names the file and the field."""


class NotAuthenticated(Exception):
    """No token or certificate, one that matches no identity, or an expired identity."""


class AccessDenied(Exception):
    """A known identity called a method it is not granted."""


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: a named principal of one agency with its roles, exact grants and search scope."""

    name: str
    agency: str
    roles: tuple[str, ...]
    grants: frozenset[str]
    expires_at: dt.datetime | None = None
    search_scope: SearchScope = field(default_factory=SearchScope)

    def expired(self, now: dt.datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


class _SearchModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region_codes: tuple[str, ...] = ()
    source_ids: tuple[str, ...] = ()

    @field_validator("region_codes")
    @classmethod
    def _six_digits(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not re.fullmatch(r"\d{6}", code):
                raise ValueError(f"region code {code!r} must be a six-digit GB/T 2260 code")
        return value


class _IdentityModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    agency: str
    roles: tuple[str, ...] = ()
    token_sha256: str | None = Field(default=None, pattern=_SHA256)
    client_cert_sha256: str | None = Field(default=None, pattern=_SHA256)
    expires_at: dt.datetime | None = None
    grants: tuple[str, ...] = Field(min_length=1)
    search: _SearchModel = _SearchModel()

    @field_validator("agency")
    @classmethod
    def _known_agency(cls, value: str) -> str:
        if value not in AGENCIES:
            raise ValueError(f"unknown agency {value!r}; known: {', '.join(sorted(AGENCIES))}")
        return value

    @field_validator("grants")
    @classmethod
    def _exact_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for grant in value:
            if not _EXACT_METHOD.match(grant):
                raise ValueError(
                    f"grant {grant!r} must be one exact method path like /qingfeng.v1.GraderService/GetEvent "
                    "(patterns are not allowed: list every method)"
                )
        return value

    @field_validator("expires_at")
    @classmethod
    def _with_zone(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("expires_at needs a time zone, like 2026-12-31T00:00:00Z")
        return value

    @model_validator(mode="after")
    def _some_credential(self) -> _IdentityModel:
        if self.token_sha256 is None and self.client_cert_sha256 is None:
            raise ValueError("needs token_sha256, client_cert_sha256 or both")
        return self


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    identities: tuple[_IdentityModel, ...] = Field(min_length=1)


@dataclass(frozen=True)
class AccessPolicy:
    version: str
    # (token hash, identity) and (certificate hash, identity); identities without one are not listed there.
    identities: tuple[tuple[str, Identity], ...]
    certificates: tuple[tuple[str, Identity], ...] = ()


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def certificate_sha256(pem: bytes | str) -> str:
    """SHA-256 (hex) of a PEM certificate's DER bytes, the value ``client_cert_sha256`` holds."""
    text = pem.decode("ascii") if isinstance(pem, bytes) else pem
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(text)).hexdigest()


def _first_duplicate(values: list[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def parse_access_policy(text: str | bytes, *, source: str = "<string>") -> AccessPolicy:
    """Validate policy YAML; errors name ``source`` and the failing field."""
    try:
        raw = load_yaml(text, source=source, max_bytes=MAX_POLICY_BYTES)
    except SafeYamlError as exc:
        raise AccessPolicyError(f"{source}: not valid YAML: {exc.problem} (line {exc.line})") from exc
    try:
        model = _PolicyModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise AccessPolicyError(f"{source}: {where}: {first['msg']}") from exc
    name = _first_duplicate([i.name for i in model.identities])
    if name is not None:
        raise AccessPolicyError(f"{source}: identities: the name {name!r} is used by two identities")
    if _first_duplicate([i.token_sha256 for i in model.identities if i.token_sha256]):
        raise AccessPolicyError(f"{source}: identities: two identities share one token")
    if _first_duplicate([i.client_cert_sha256 for i in model.identities if i.client_cert_sha256]):
        raise AccessPolicyError(f"{source}: identities: two identities share one client certificate")
    built = [
        (
            i,
            Identity(
                name=i.name,
                agency=i.agency,
                roles=i.roles,
                grants=frozenset(i.grants),
                expires_at=i.expires_at,
                search_scope=SearchScope(
                    see_tips=SEE_TIPS_ROLE in i.roles,
                    region_codes=i.search.region_codes,
                    source_ids=i.search.source_ids,
                ),
            ),
        )
        for i in model.identities
    ]
    return AccessPolicy(
        version=model.version,
        identities=tuple((m.token_sha256, ident) for m, ident in built if m.token_sha256),
        certificates=tuple((m.client_cert_sha256, ident) for m, ident in built if m.client_cert_sha256),
    )


def load_access_policy(path: Path) -> AccessPolicy:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AccessPolicyError(f"{path}: cannot read access policy: {exc.strerror}") from exc
    return parse_access_policy(data, source=str(path))


class PolicyFile:
    """The access policy at ``path``, re-read when its stamp changes (checked at most every ``check_interval_s``).

    ``reload()`` re-reads at once (SIGHUP). A file that becomes unreadable or invalid keeps the last good policy and
    logs an error with the reason; only the first load raises.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        served: frozenset[str] | None = None,
    ) -> None:
        self.path = path
        self._served = served
        self._interval = check_interval_s
        self._clock = clock
        self._checked = clock()
        try:
            self._stamp = self._stat()  # before reading: a change made meanwhile is picked up by the next check
        except OSError as exc:
            raise AccessPolicyError(f"{path}: cannot read access policy: {exc.strerror}") from exc
        self.last_error: str | None = None
        self._policy: AccessPolicy = load_access_policy(path)
        self._warn_unknown(self._policy)

    def _warn_unknown(self, policy: AccessPolicy) -> None:
        """Log grants of methods the gateway does not serve: harmless, but usually a typo worth fixing."""
        if self._served is None:
            return
        for name, methods in unknown_grants(policy, self._served).items():
            log.warning("access policy grants %s methods the gateway does not serve: %s", name, ", ".join(methods))

    def _stat(self) -> tuple[int, int, int]:
        stat = os.stat(self.path)
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _load(self) -> AccessPolicy | None:
        """The new policy if the file changed and validates; None when unchanged or broken (error logged)."""
        try:
            stamp = self._stat()
        except OSError as exc:
            self._failed(AccessPolicyError(f"{self.path}: cannot read access policy: {exc.strerror}"))
            return None
        if stamp == self._stamp:
            return None
        try:
            policy = load_access_policy(self.path)
        except AccessPolicyError as exc:
            self._failed(exc)
            return None
        self._stamp, self.last_error = stamp, None
        return policy

    def _failed(self, exc: AccessPolicyError) -> None:
        if str(exc) != self.last_error:  # once per broken version, not once per second
            log.error("access policy not reloaded, keeping version %s: %s", self._policy.version, exc)
        self.last_error = str(exc)

    def reload(self) -> AccessPolicy:
        """Re-read now (also when the stamp looks unchanged); returns the policy in force afterwards."""
        self._stamp = (0, 0, 0)
        self._checked = self._clock()
        return self._swap(self._load())

    def _swap(self, policy: AccessPolicy | None) -> AccessPolicy:
        if policy is not None:
            self._policy = policy
            self._warn_unknown(policy)
            log.info(
                "access policy reloaded",
                extra={"policy_version": policy.version, "identities": _count(policy), "path": str(self.path)},
            )
        return self._policy

    def current(self) -> AccessPolicy:
        now = self._clock()
        if now - self._checked >= self._interval:
            self._checked = now
            return self._swap(self._load())
        return self._policy


def _count(policy: AccessPolicy) -> int:
    return len({identity.name for _, identity in (*policy.identities, *policy.certificates)})


PolicySource = AccessPolicy | PolicyFile


def reload_on_sighup(source: PolicySource) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A background loop (``run_until_stopped``) that re-reads the policy file on SIGHUP until the stop event."""

    async def watch(stop: asyncio.Event) -> None:
        if not isinstance(source, PolicyFile):
            await stop.wait()
            return
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, source.reload)
        try:
            await stop.wait()
        finally:
            loop.remove_signal_handler(signal.SIGHUP)

    return watch


def current_policy(source: PolicySource) -> AccessPolicy:
    return source.current() if isinstance(source, PolicyFile) else source


def unknown_grants(policy: AccessPolicy, served: frozenset[str]) -> dict[str, list[str]]:
    """Grants naming no method the gateway serves (a typo, or a method since renamed), by identity name."""
    unknown: dict[str, list[str]] = {}
    for _, identity in (*policy.identities, *policy.certificates):
        missing = sorted(identity.grants - served)
        if missing:
            unknown[identity.name] = missing
    return unknown


def _match(entries: tuple[tuple[str, Identity], ...], digest: str) -> Identity | None:
    """Compare every hash in constant time so timing reveals nothing about which one was close."""
    found: Identity | None = None
    for stored, identity in entries:
        if hmac.compare_digest(stored, digest):
            found = identity
    return found


def authenticate(
    policy: AccessPolicy,
    token: str | None,
    *,
    cert_sha256: str | None = None,
    now: dt.datetime | None = None,
) -> Identity:
    """The identity holding ``token``, or, when no token was sent, the one holding the client certificate."""
    if token:
        found = _match(policy.identities, hash_token(token))
        if found is None:
            raise NotAuthenticated("unknown token")
    elif cert_sha256:
        found = _match(policy.certificates, cert_sha256)
        if found is None:
            raise NotAuthenticated("unknown client certificate")
    else:
        raise NotAuthenticated("missing bearer token (metadata 'authorization: Bearer <token>') or client certificate")
    when = now or dt.datetime.now(dt.UTC)
    if found.expired(when):
        assert found.expires_at is not None
        raise NotAuthenticated(
            f"the credentials of {found.agency}/{found.name} expired at "
            f"{found.expires_at.astimezone(dt.UTC).isoformat().replace('+00:00', 'Z')}; ask for new ones"
        )
    return found


def authorize(identity: Identity, method: str) -> None:
    """Raise ``AccessDenied`` unless the identity is granted exactly this full method name."""
    if method not in identity.grants:
        raise AccessDenied(f"{identity.agency}/{identity.name} may not call {method}")
