"""`qingfeng up` provisions gateway tokens: files the gateway's access policy accepts, with narrow grants."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from qingfeng.cli.tokens import DEFAULT_IDENTITIES, provision

from gateway.access import AccessDenied, authenticate, authorize, load_access_policy


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
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ],
            [],
        ),
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
