"""Gateway tokens for a local suite: one random bearer token per default identity, and the access policy.

``provision(state_dir)`` runs from `qingfeng up` before the gateway starts. On the first run it writes
``<state>/tokens/<name>`` (the token, mode 0600) for every identity below and ``<state>/access.yaml`` (only SHA-256
hashes of the tokens, mode 0600), the file the gateway reads through ``QF_GATEWAY_ACCESS_POLICY``. Later runs keep
the tokens, so tokens handed out stay valid; delete ``access.yaml`` to rotate every token. A policy written before
grants became exact (one with ``*`` patterns) is upgraded in place: the default identities get today's exact grants
and roles, their token hashes stay.

The grants follow DESIGN §1: the opinion office's analyst may call every method of every service (and use
reflection); each partner agency gets only the methods its part of the disposition needs (不泄露案情). Grants are
exact method paths taken from the generated descriptors: a service's methods are listed one by one, so a method
added later is granted to nobody until someone adds it here, and a renamed RPC breaks provisioning instead of
silently granting nothing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qingfeng.cli.paths import state_dir
from qingfeng.safe_yaml import SafeYamlError, load_yaml
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2, search_pb2, source_pb2

__all__ = [
    "DEFAULT_IDENTITIES",
    "REFLECTION_METHODS",
    "GatewayIdentity",
    "add_arguments",
    "every_method",
    "provision",
    "provision_tip_key",
    "run",
]

POLICY_FILE = "access.yaml"
TOKENS_DIR = "tokens"
POLICY_VERSION = "local-1"


@dataclass(frozen=True)
class GatewayIdentity:
    """One caller of the gateway: token file name, agency (see gateway/access.py AGENCIES), roles and grants."""

    name: str
    agency: str
    roles: tuple[str, ...]
    grants: tuple[str, ...]


# The gateway serves both reflection versions (grpcurl and ghz use v1, older tools v1alpha).
REFLECTION_METHODS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
# Every service a partner reaches through the gateway: (generated module, service name).
_GATEWAY_SERVICES: tuple[tuple[Any, str], ...] = (
    (source_pb2, "CollectorService"),
    (event_pb2, "GraderService"),
    (case_pb2, "CoordinatorService"),
    (publication_pb2, "PublisherService"),
    (search_pb2, "SearchService"),
)


def _methods(module: Any, service: str, *names: str) -> tuple[str, ...]:
    descriptor = module.DESCRIPTOR.services_by_name[service]
    return tuple(f"/{descriptor.full_name}/{descriptor.methods_by_name[name].name}" for name in names)


def every_method(module: Any, service: str) -> tuple[str, ...]:
    """Each method of one service as an exact grant, read from its descriptor today."""
    descriptor = module.DESCRIPTOR.services_by_name[service]
    return tuple(f"/{descriptor.full_name}/{method.name}" for method in descriptor.methods)


def _all_services() -> tuple[str, ...]:
    return tuple(grant for module, service in _GATEWAY_SERVICES for grant in every_method(module, service))


def _identities() -> tuple[GatewayIdentity, ...]:
    coordinator, publisher = "CoordinatorService", "PublisherService"
    return (
        # see_tips: tips (manual submissions) show up in their searches; nobody else finds them.
        GatewayIdentity("analyst", "opinion_office", ("analyst", "see_tips"), (*_all_services(), *REFLECTION_METHODS)),
        # The office's lead handler is the one identity that may read who submitted a tip (SubmitTip's submitter).
        GatewayIdentity("lead_handler", "opinion_office", ("analyst", "see_submitter", "see_tips"), _all_services()),
        GatewayIdentity(
            "police_cyber", "police_cyber", (), (*_task_work(), *_methods(case_pb2, coordinator, "UpdateTask"))
        ),
        GatewayIdentity(
            "propaganda",
            "propaganda",
            (),
            _methods(
                publication_pb2,
                publisher,
                "CreateDraft",
                "GetDraft",
                "ListDrafts",
                "UpdateDraft",
                "SubmitForReview",
                "SignOff",
                "ListPublications",
                "GetPublication",
                "ListChannels",
                "ListTemplates",
            ),
        ),
        GatewayIdentity("petitions", "petitions", (), _task_work()),
        GatewayIdentity(
            "daily_newspaper",
            "daily_newspaper",
            (),
            _methods(publication_pb2, publisher, "ListPublications", "GetPublication"),
        ),
        GatewayIdentity("telecom_regulator", "telecom_regulator", (), _task_work()),
        GatewayIdentity(
            "case_management",
            "case_management",
            (),
            (*_task_work(), *_methods(case_pb2, coordinator, "GetCase", "ListCases")),
        ),
        # The sign-off chain (报送审签, services/publisher/policies/signoff.yaml): each leader holds the role of one
        # step, reads the cases routed up to them, acknowledges them, and signs releases. Four-eyes is the
        # publisher's rule: nobody signs a revision they wrote.
        *(_leader(name, agency, role) for name, agency, role in _SIGNERS),
    )


# (identity name, agency, sign-off role) of the leaders on the reporting ladder (DESIGN §3); 市委's liaison sits with
# the commission in this local suite.
_SIGNERS = (
    ("office_director", "opinion_office", "舆情信息办公室主任"),
    ("deputy_standing_member", "discipline_commission", "分管常委"),
    ("commission_secretary", "discipline_commission", "纪委书记"),
    ("municipal_committee", "discipline_commission", "市委"),
)


def _task_work() -> tuple[str, ...]:
    """What a partner agency does with the tasks assigned to it (it sees only its own)."""
    names = ("ListTasks", "CompleteTask", "ReportTaskProgress", "GetTaskAttachment")
    return _methods(case_pb2, "CoordinatorService", *names)


def _leader(name: str, agency: str, role: str) -> GatewayIdentity:
    # EscalateCase: the coordinator's routing policy (escalation.manual_roles) decides which of these roles may.
    cases = _methods(
        case_pb2, "CoordinatorService", "GetCase", "ListCases", "AcknowledgeCase", "EscalateCase", "GetRapidReport"
    )
    releases = _methods(publication_pb2, "PublisherService", "GetDraft", "ListDrafts", "SignOff", "ListPublications")
    return GatewayIdentity(name, agency, (role,), (*cases, *releases))


DEFAULT_IDENTITIES: tuple[GatewayIdentity, ...] = _identities()


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` with mode 0600 from the first byte, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _entry(identity: GatewayIdentity, token: str) -> dict[str, Any]:
    return {
        "name": identity.name,
        "agency": identity.agency,
        "roles": list(identity.roles),
        "token_sha256": hashlib.sha256(token.encode("utf-8")).hexdigest(),
        "grants": list(identity.grants),
    }


def _sync(policy_path: Path, tokens_dir: Path, identities: tuple[GatewayIdentity, ...]) -> None:
    """Bring the default identities of a policy written by `qingfeng up` to today's grants and roles (exact methods
    added since, pattern grants of older versions), keeping every token hash; mint tokens for new default identities.
    Identities an operator added are left as they are."""
    try:
        data = load_yaml(policy_path.read_bytes(), source=str(policy_path))
    except (OSError, SafeYamlError):
        return  # not ours to repair: the gateway names the problem when it loads the file
    entries = data.get("identities") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return
    changed = False
    by_name = {str(e.get("name")): e for e in entries if isinstance(e, dict)}
    for identity in identities:
        entry = by_name.get(identity.name)
        if entry is None:
            token = secrets.token_urlsafe(32)
            _write_private(tokens_dir / identity.name, token + "\n")
            entries.append(_entry(identity, token))
            changed = True
        elif (entry.get("grants"), entry.get("roles")) != (list(identity.grants), list(identity.roles)):
            entry["grants"], entry["roles"] = list(identity.grants), list(identity.roles)
            changed = True
    if changed:
        body = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
        _write_private(policy_path, "# Kept in step with the default identities by `qingfeng up`.\n" + body)


def provision(state_dir: Path, identities: tuple[GatewayIdentity, ...] = DEFAULT_IDENTITIES) -> Path:
    """Create tokens and the access policy under ``state_dir``, or keep an existing one in step with the default
    identities (``_sync``); return the policy path."""
    policy_path = state_dir / POLICY_FILE
    tokens_dir = state_dir / TOKENS_DIR
    tokens_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(tokens_dir, 0o700)
    if policy_path.exists():
        _sync(policy_path, tokens_dir, identities)
        return policy_path
    entries = []
    for identity in identities:
        token = secrets.token_urlsafe(32)
        _write_private(tokens_dir / identity.name, token + "\n")
        entries.append(_entry(identity, token))
    header = (
        "# Gateway access policy written by `qingfeng up` (qingfeng.cli.tokens). Only token hashes are stored;\n"
        f"# the tokens are in {tokens_dir}/<name>. Delete this file to rotate every token.\n"
    )
    body = yaml.safe_dump({"version": POLICY_VERSION, "identities": entries}, allow_unicode=True, sort_keys=False)
    # The policy is written last: its presence means every token file it hashes exists.
    _write_private(policy_path, header + body)
    return policy_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `qingfeng tokens`."""
    parser.add_argument("--state-dir", type=Path, default=None, help="state directory (default: QF_STATE_DIR)")


def run(args: argparse.Namespace) -> int:
    """`qingfeng tokens`: provision if needed, then list each identity with its token file (never the token)."""
    state = args.state_dir or state_dir()
    policy = provision(state)
    print(f"access policy: {policy}")
    for identity in DEFAULT_IDENTITIES:
        token_file = state / TOKENS_DIR / identity.name
        shown = token_file if token_file.exists() else "(missing: delete the policy to re-provision)"
        print(f"{identity.name:<18} {identity.agency:<18} {shown}")
    return 0


def provision_tip_key(state_dir: Path) -> Path:
    """Create the collector's tip-encryption key (a Fernet key: 32 random bytes, url-safe base64) once; its path.

    Losing this file makes stored tip submitters unreadable, which is the point of encrypting them: back it up with
    the database, never beside it.
    """
    key_path = state_dir / "secrets" / "collector_tip_key"
    if key_path.exists():
        return key_path
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _write_private(key_path, base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii") + "\n")
    return key_path
