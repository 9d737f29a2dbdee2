"""`qingfeng up` provisions gateway tokens: files the gateway's access policy accepts, with narrow grants."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from qingfeng.cli.tokens import DEFAULT_IDENTITIES, REFLECTION_METHODS, provision
from qingfeng.v1 import event_pb2

from gateway.access import AccessDenied, authenticate, authorize, hash_token, load_access_policy


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_provision_writes_private_tokens_and_a_policy_of_hashes(tmp_path: Path) -> None:
    policy_path = provision(tmp_path)
    assert policy_path == tmp_path / "access.yaml"
    assert _mode(policy_path) == 0o600 and _mode(tmp_path / "tokens") == 0o700
    policy = load_access_policy(policy_path)
    text = policy_path.read_text(encoding="utf-8")
    for identity in DEFAULT_IDENTITIES:
        token_file = tmp_path / "tokens" / identity.name
        assert _mode(token_file) == 0o600
        token = token_file.read_text(encoding="utf-8").strip()
        assert len(token) >= 40 and token not in text, "the policy holds hashes only"
        found = authenticate(policy, token)
        assert (found.name, found.agency) == (identity.name, identity.agency)
    assert not list(tmp_path.glob("**/.*.tmp"))


def test_provision_is_idempotent(tmp_path: Path) -> None:
    provision(tmp_path)
    before = {p.name: p.read_text() for p in (tmp_path / "tokens").iterdir()}
    policy_before = (tmp_path / "access.yaml").read_text()
    provision(tmp_path)
    assert {p.name: p.read_text() for p in (tmp_path / "tokens").iterdir()} == before
    assert (tmp_path / "access.yaml").read_text() == policy_before


@pytest.mark.parametrize(
    ("name", "allowed", "denied"),
    [
        (
            "analyst",
            [
                "/qingfeng.v1.GraderService/OverrideLevel",
                "/qingfeng.v1.CollectorService/GetTip",
                "/qingfeng.v1.SearchService/SearchPosts",
                *REFLECTION_METHODS,
            ],
            # Exact grants: a method that does not exist today is granted to nobody, even the analyst.
            ["/qingfeng.v1.GraderService/DeleteEverything", "/qingfeng.v1.AdminService/Anything"],
        ),
        ("lead_handler", ["/qingfeng.v1.CollectorService/GetTip"], [*REFLECTION_METHODS]),
        (
            "police_cyber",
            ["/qingfeng.v1.CoordinatorService/ListTasks", "/qingfeng.v1.CoordinatorService/CompleteTask"],
            ["/qingfeng.v1.CoordinatorService/GetCase", "/qingfeng.v1.SearchService/SearchPosts"],
        ),
        (
            "propaganda",
            ["/qingfeng.v1.PublisherService/CreateDraft", "/qingfeng.v1.PublisherService/SignOff"],
            ["/qingfeng.v1.PublisherService/PublishDraft", "/qingfeng.v1.CoordinatorService/ListCases"],
        ),
        ("petitions", ["/qingfeng.v1.CoordinatorService/ListTasks"], ["/qingfeng.v1.CoordinatorService/UpdateTask"]),
        (
            "daily_newspaper",
            ["/qingfeng.v1.PublisherService/GetPublication"],
            ["/qingfeng.v1.PublisherService/ListDrafts"],
        ),
        ("telecom_regulator", ["/qingfeng.v1.CoordinatorService/CompleteTask"], ["/qingfeng.v1.CollectorService/*"]),
        (
            "case_management",
            ["/qingfeng.v1.CoordinatorService/GetCase", "/qingfeng.v1.CoordinatorService/ListCases"],
            ["/qingfeng.v1.CoordinatorService/SetDisposition", "/grpc.reflection.v1.ServerReflection/X"],
        ),
    ],
)
def test_grants_are_narrow(tmp_path: Path, name: str, allowed: list[str], denied: list[str]) -> None:
    policy = load_access_policy(provision(tmp_path))
    identity = authenticate(policy, (tmp_path / "tokens" / name).read_text().strip())
    for method in allowed:
        authorize(identity, method)
    for method in denied:
        with pytest.raises(AccessDenied):
            authorize(identity, method)


def test_every_grant_is_an_existing_method(tmp_path: Path) -> None:
    """Provisioned grants are exact paths of methods the descriptors define, every one of them for the analyst."""
    from qingfeng.v1 import case_pb2, publication_pb2, search_pb2, source_pb2

    existing = {
        f"/{service.full_name}/{method.name}"
        for module in (source_pb2, event_pb2, case_pb2, publication_pb2, search_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    policy = yaml.safe_load(provision(tmp_path).read_text(encoding="utf-8"))
    for entry in policy["identities"]:
        for grant in entry["grants"]:
            assert grant in existing or grant in REFLECTION_METHODS, f"{entry['name']}: {grant}"
    analyst = next(e for e in policy["identities"] if e["name"] == "analyst")
    assert existing <= set(analyst["grants"])
    grader = event_pb2.DESCRIPTOR.services_by_name["GraderService"]
    assert len(grader.methods) > 1 and all(f"/{grader.full_name}/{m.name}" in analyst["grants"] for m in grader.methods)


def test_a_policy_with_patterns_is_upgraded_keeping_tokens(tmp_path: Path) -> None:
    old = {
        "version": "local-1",
        "identities": [
            {
                "name": "analyst",
                "agency": "opinion_office",
                "roles": ["analyst"],
                "token_sha256": hash_token("kept-token"),
                "grants": ["/qingfeng.v1.*", "/grpc.reflection.*"],
            }
        ],
    }
    (tmp_path / "access.yaml").write_text(yaml.safe_dump(old), encoding="utf-8")
    policy = load_access_policy(provision(tmp_path))
    analyst = authenticate(policy, "kept-token")
    authorize(analyst, "/qingfeng.v1.GraderService/OverrideLevel")
    assert "see_tips" in analyst.roles
    with pytest.raises(AccessDenied):
        authorize(analyst, "/qingfeng.v1.GraderService/NotAMethod")


def test_an_existing_policy_gains_new_default_identities_and_keeps_the_operators(tmp_path: Path) -> None:
    operator_entry = {
        "name": "auditor",
        "agency": "case_management",
        "roles": [],
        "token_sha256": hash_token("operator-token"),
        "grants": ["/qingfeng.v1.CoordinatorService/ListCases"],
    }
    old = {"version": "local-1", "identities": [operator_entry]}
    (tmp_path / "access.yaml").write_text(yaml.safe_dump(old), encoding="utf-8")
    policy = load_access_policy(provision(tmp_path))
    auditor = authenticate(policy, "operator-token")
    assert set(auditor.grants) == {"/qingfeng.v1.CoordinatorService/ListCases"}
    signer = authenticate(policy, (tmp_path / "tokens" / "deputy_standing_member").read_text().strip())
    assert "分管常委" in signer.roles
    authorize(signer, "/qingfeng.v1.PublisherService/SignOff")
    with pytest.raises(AccessDenied):
        authorize(signer, "/qingfeng.v1.PublisherService/CreateDraft")
    names = {identity.name for identity in DEFAULT_IDENTITIES}
    assert names <= {identity.name for _, identity in policy.identities} | {"auditor"}
