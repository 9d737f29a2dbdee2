"""Who may call what: the gateway's access policy, loaded from validated YAML.

Each caller is an agency identity holding a bearer token. The policy stores only the SHA-256 of each token, so a
leaked policy file grants nothing. Methods are granted per identity with patterns on the full gRPC method name
(``/qingfeng.v1.GraderService/GetEvent``, shell-style ``*`` and ``?``). Anything not granted is denied.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "AccessDenied",
    "AccessPolicy",
    "AccessPolicyError",
    "Identity",
    "NotAuthenticated",
    "authenticate",
    "authorize",
    "hash_token",
    "load_access_policy",
    "parse_access_policy",
]

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


class AccessPolicyError(ValueError):
    """The policy file is missing, not YAML, or does not validate; the message names the file and the field."""


class NotAuthenticated(Exception):
    """No token, or a token that matches no identity."""


class AccessDenied(Exception):
    """A known identity called a method it is not granted."""


@dataclass(frozen=True)
class Identity:
    """The authenticated caller: a named principal of one agency with its roles."""

    name: str
    agency: str
    roles: tuple[str, ...]
    grants: tuple[str, ...]


class _IdentityModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    agency: str
    roles: tuple[str, ...] = ()
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    grants: tuple[str, ...] = Field(min_length=1)

    @field_validator("agency")
    @classmethod
    def _known_agency(cls, value: str) -> str:
        if value not in AGENCIES:
            raise ValueError(f"unknown agency {value!r}; known: {', '.join(sorted(AGENCIES))}")
        return value

    @field_validator("grants")
    @classmethod
    def _method_patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            if not pattern.startswith("/"):
                raise ValueError(f"grant {pattern!r} must be a full method path like /qingfeng.v1.GraderService/*")
        return value


class _PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1)
    identities: tuple[_IdentityModel, ...] = Field(min_length=1)


@dataclass(frozen=True)
class AccessPolicy:
    version: str
    identities: tuple[tuple[str, Identity], ...]  # (token hash, identity)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_access_policy(text: str, *, source: str = "<string>") -> AccessPolicy:
    """Validate policy YAML; errors name ``source`` and the failing field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AccessPolicyError(f"{source}: not valid YAML: {exc}") from exc
    try:
        model = _PolicyModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise AccessPolicyError(f"{source}: {where}: {first['msg']}") from exc
    hashes = [i.token_sha256 for i in model.identities]
    if len(set(hashes)) != len(hashes):
        raise AccessPolicyError(f"{source}: identities: two identities share one token")
    return AccessPolicy(
        version=model.version,
        identities=tuple(
            (i.token_sha256, Identity(name=i.name, agency=i.agency, roles=i.roles, grants=i.grants))
            for i in model.identities
        ),
    )


def load_access_policy(path: Path) -> AccessPolicy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AccessPolicyError(f"{path}: cannot read access policy: {exc.strerror}") from exc
    return parse_access_policy(text, source=str(path))


def authenticate(policy: AccessPolicy, token: str | None) -> Identity:
    """The identity holding ``token``; compares hashes in constant time so timing reveals nothing."""
    if not token:
        raise NotAuthenticated("missing bearer token (metadata 'authorization: Bearer <token>')")
    digest = hash_token(token)
    found: Identity | None = None
    for token_hash, identity in policy.identities:
        if hmac.compare_digest(token_hash, digest):
            found = identity
    if found is None:
        raise NotAuthenticated("unknown token")
    return found


def authorize(identity: Identity, method: str) -> None:
    """Raise ``AccessDenied`` unless one of the identity's grants matches the full method name."""
    for pattern in identity.grants:
        if fnmatch.fnmatchcase(method, pattern):
            return
    raise AccessDenied(f"{identity.agency}/{identity.name} may not call {method}")
