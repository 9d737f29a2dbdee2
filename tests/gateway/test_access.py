"""The access policy: exact grants, expiry, unique names, client certificates, and live reload of the file."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pytest

from gateway.access import (
    AccessDenied,
    AccessPolicyError,
    NotAuthenticated,
    PolicyFile,
    authenticate,
    authorize,
    hash_token,
    parse_access_policy,
)
from gateway.ratelimit import RateLimiter

LIST_TASKS = "/qingfeng.v1.CoordinatorService/ListTasks"
CERT = "ab" * 32

POLICY = f"""
version: "1"
identities:
  - name: police-1
    agency: police_cyber
    token_sha256: {hash_token("secret-police")}
    grants: ["{LIST_TASKS}", "/qingfeng.v1.CoordinatorService/CompleteTask"]
  - name: office
    agency: opinion_office
    roles: [analyst, see_tips]
    token_sha256: {hash_token("secret-office")}
    grants: ["/qingfeng.v1.GraderService/OverrideLevel", "{LIST_TASKS}"]
    search: {{region_codes: ["330000"], source_ids: [weibo-zj]}}
  - name: temp
    agency: petitions
    token_sha256: {hash_token("secret-temp")}
    expires_at: 2026-06-01T00:00:00Z
    grants: ["{LIST_TASKS}"]
  - name: mtls
    agency: case_management
    client_cert_sha256: "{CERT}"
    grants: ["{LIST_TASKS}"]
"""
BEFORE = dt.datetime(2026, 5, 31, 23, 59, tzinfo=dt.UTC)
AFTER = dt.datetime(2026, 6, 1, 0, 0, tzinfo=dt.UTC)


def test_known_token_authenticates_to_its_identity() -> None:
    policy = parse_access_policy(POLICY)
    assert authenticate(policy, "secret-police").agency == "police_cyber"


@pytest.mark.parametrize("token", [None, "", "secret-polic", "forged-token"])
def test_missing_or_forged_token_is_refused(token: str | None) -> None:
    with pytest.raises(NotAuthenticated):
        authenticate(parse_access_policy(POLICY), token)


def test_grants_are_exact_method_paths() -> None:
    policy = parse_access_policy(POLICY)
    police = authenticate(policy, "secret-police")
    authorize(police, LIST_TASKS)
    for method in ("/qingfeng.v1.CoordinatorService/GetCase", LIST_TASKS + "X", LIST_TASKS.lower()):
        with pytest.raises(AccessDenied, match="police_cyber/police-1 may not call"):
            authorize(police, method)
    office = authenticate(policy, "secret-office")
    authorize(office, "/qingfeng.v1.GraderService/OverrideLevel")
    with pytest.raises(AccessDenied):
        authorize(office, "/qingfeng.v1.GraderService/UpdatePolicy")


def test_expired_identity_is_unauthenticated_with_a_clear_message() -> None:
    policy = parse_access_policy(POLICY)
    assert authenticate(policy, "secret-temp", now=BEFORE).name == "temp"
    with pytest.raises(NotAuthenticated, match=r"petitions/temp expired at 2026-06-01T00:00:00Z"):
        authenticate(policy, "secret-temp", now=AFTER)
    assert authenticate(policy, "secret-police", now=AFTER).name == "police-1", "no expiry: no end"


def test_client_certificate_authenticates_when_no_token_is_sent() -> None:
    policy = parse_access_policy(POLICY)
    assert authenticate(policy, None, cert_sha256=CERT).name == "mtls"
    with pytest.raises(NotAuthenticated, match="unknown client certificate"):
        authenticate(policy, None, cert_sha256="cd" * 32)
    # A token, when sent, decides: a certificate does not rescue a forged token.
    with pytest.raises(NotAuthenticated, match="unknown token"):
        authenticate(policy, "forged", cert_sha256=CERT)
    with pytest.raises(NotAuthenticated, match="missing bearer token"):
        authenticate(policy, None, cert_sha256=None)


def test_search_scope_comes_from_roles_and_the_search_field() -> None:
    policy = parse_access_policy(POLICY)
    office = authenticate(policy, "secret-office").search_scope
    assert (office.see_tips, office.region_codes, office.source_ids) == (True, ("330000",), ("weibo-zj",))
    police = authenticate(policy, "secret-police").search_scope
    assert (police.see_tips, police.region_codes, police.source_ids) == (False, (), ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: '1'\nidentities: []", "identities"),
        (POLICY.replace("agency: police_cyber", "agency: secret_police"), "unknown agency 'secret_police'"),
        (POLICY.replace(f'"{LIST_TASKS}", "/qingfeng', '"/qingfeng.v1.*", "/qingfeng'), "exact method path"),
        (POLICY.replace(f'"{LIST_TASKS}", "/qingfeng', '"/qingfeng.v1.C*Service/List?asks", "/q'), "exact method"),
        (POLICY.replace(f'["{LIST_TASKS}", "/qingfeng', '["qingfeng.v1.CoordinatorService/ListTasks", "/q'), "exact"),
        (POLICY.replace("/qingfeng.v1.GraderService/OverrideLevel", "/grpc.reflection.*"), "exact method path"),
        ("version: [", "not valid YAML"),
        ("a: &x [1]\nb: *x", "anchors are not allowed"),
        (POLICY.replace(hash_token("secret-office"), hash_token("secret-police")), "share one token"),
        (POLICY.replace("name: office", "name: police-1"), "the name 'police-1' is used by two identities"),
        (POLICY.replace("expires_at: 2026-06-01T00:00:00Z", "expires_at: 2026-06-01T00:00:00"), "time zone"),
        (POLICY.replace(f'client_cert_sha256: "{CERT}"', ""), "needs token_sha256, client_cert_sha256"),
        (POLICY.replace('region_codes: ["330000"]', 'region_codes: ["33"]'), "six-digit"),
    ],
)
def test_invalid_policy_is_rejected_with_the_field(text: str, message: str) -> None:
    with pytest.raises(AccessPolicyError, match=message) as err:
        parse_access_policy(text, source="access.yaml")
    assert str(err.value).startswith("access.yaml: ")


def _write(path: Path, text: str, *, mtime_ns: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(mtime_ns, mtime_ns))  # a distinct stamp even on coarse file-system clocks


def test_policy_file_revokes_without_restart(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "access.yaml"
    _write(path, POLICY, mtime_ns=1_000_000_000)
    now = [0.0]
    source = PolicyFile(path, check_interval_s=1.0, clock=lambda: now[0])
    assert authenticate(source.current(), "secret-police").name == "police-1"
    revoked = POLICY.replace(hash_token("secret-police"), hash_token("new-police"))
    _write(path, revoked, mtime_ns=2_000_000_000)
    now[0] = 0.5
    assert authenticate(source.current(), "secret-police").name == "police-1", "stat at most once a second"
    now[0] = 1.0
    with pytest.raises(NotAuthenticated):
        authenticate(source.current(), "secret-police")
    assert authenticate(source.current(), "new-police").name == "police-1"
    # A broken new version keeps the last good policy and says so in the log.
    with caplog.at_level(logging.ERROR, logger="gateway.access"):
        _write(path, revoked.replace("police_cyber", "nobody"), mtime_ns=3_000_000_000)
        now[0] = 2.5
        assert authenticate(source.current(), "new-police").name == "police-1"
    assert "unknown agency 'nobody'" in (source.last_error or "")
    assert any("not reloaded" in r.getMessage() for r in caplog.records)
    path.unlink()
    now[0] = 4.0
    assert authenticate(source.current(), "new-police").name == "police-1"


def test_policy_file_reload_reads_at_once(tmp_path: Path) -> None:
    path = tmp_path / "access.yaml"
    _write(path, POLICY, mtime_ns=1_000_000_000)
    source = PolicyFile(path, check_interval_s=3600.0)
    # Same size and mtime as before: only an explicit reload (SIGHUP) can notice; it re-reads anyway.
    _write(path, POLICY.replace(hash_token("secret-police"), hash_token("other-police")), mtime_ns=1_000_000_000)
    assert authenticate(source.current(), "secret-police").name == "police-1"
    assert authenticate(source.reload(), "other-police").name == "police-1"
    with pytest.raises(NotAuthenticated):
        authenticate(source.current(), "secret-police")


def test_policy_file_must_load_at_start(tmp_path: Path) -> None:
    with pytest.raises(AccessPolicyError, match="cannot read access policy"):
        PolicyFile(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("version: '1'\nidentities: []\n")
    with pytest.raises(AccessPolicyError, match="identities"):
        PolicyFile(tmp_path / "bad.yaml")


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b"), "buckets are per key"
    now[0] = 0.5
    assert limiter.allow("a")
    assert not limiter.allow("a")


def test_grants_of_methods_nobody_serves_are_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "access.yaml"
    typo = POLICY.replace(
        '"/qingfeng.v1.CoordinatorService/CompleteTask"', '"/qingfeng.v1.CoordinatorService/CompleteTsk"'
    )
    _write(path, typo, mtime_ns=1_000_000_000)
    served = frozenset(
        {LIST_TASKS, "/qingfeng.v1.CoordinatorService/CompleteTask", "/qingfeng.v1.GraderService/OverrideLevel"}
    )
    with caplog.at_level(logging.WARNING, logger="gateway.access"):
        source = PolicyFile(path, served=served)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "access policy grants police-1 methods the gateway does not serve: /qingfeng.v1.CoordinatorService/CompleteTsk"
    ]
    assert authenticate(source.current(), "secret-police").name == "police-1", "a warning, not a refusal"


def test_the_gateway_serves_every_method_tokens_provision(tmp_path: Path) -> None:
    from qingfeng.cli.tokens import provision

    from gateway.access import load_access_policy, unknown_grants
    from gateway.app import served_methods
    from gateway.settings import GatewaySettings

    served = served_methods(GatewaySettings(access_policy=tmp_path / "unused.yaml"))
    assert "/qingfeng.v1.SearchService/SearchPosts" in served
    assert "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo" in served
    assert unknown_grants(load_access_policy(provision(tmp_path)), served) == {}
