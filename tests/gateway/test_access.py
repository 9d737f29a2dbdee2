from __future__ import annotations

import pytest

from gateway.access import (
    AccessDenied,
    AccessPolicyError,
    NotAuthenticated,
    authenticate,
    authorize,
    hash_token,
    parse_access_policy,
)
from gateway.ratelimit import RateLimiter

POLICY = f"""
version: "1"
identities:
  - name: police-1
    agency: police_cyber
    token_sha256: {hash_token("secret-police")}
    grants: ["/qingfeng.v1.CoordinatorService/ListTasks", "/qingfeng.v1.CoordinatorService/CompleteTask"]
  - name: office
    agency: opinion_office
    token_sha256: {hash_token("secret-office")}
    grants: ["/qingfeng.v1.*"]
"""


def test_known_token_authenticates_to_its_identity() -> None:
    policy = parse_access_policy(POLICY)
    assert authenticate(policy, "secret-police").agency == "police_cyber"


@pytest.mark.parametrize("token", [None, "", "secret-polic", "forged-token"])
def test_missing_or_forged_token_is_refused(token: str | None) -> None:
    with pytest.raises(NotAuthenticated):
        authenticate(parse_access_policy(POLICY), token)


def test_agency_sees_only_granted_methods() -> None:
    police = authenticate(parse_access_policy(POLICY), "secret-police")
    authorize(police, "/qingfeng.v1.CoordinatorService/ListTasks")
    with pytest.raises(AccessDenied, match="police_cyber/police-1 may not call"):
        authorize(police, "/qingfeng.v1.CoordinatorService/GetCase")
    office = authenticate(parse_access_policy(POLICY), "secret-office")
    authorize(office, "/qingfeng.v1.GraderService/OverrideLevel")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: '1'\nidentities: []", "identities"),
        (POLICY.replace("police_cyber", "secret_police"), "unknown agency 'secret_police'"),
        (POLICY.replace('["/qingfeng.v1.*"]', '["qingfeng.v1.*"]'), "must be a full method path"),
        ("version: [", "not valid YAML"),
        (POLICY.replace(hash_token("secret-office"), hash_token("secret-police")), "share one token"),
    ],
)
def test_invalid_policy_is_rejected_with_the_field(text: str, message: str) -> None:
    with pytest.raises(AccessPolicyError, match=message) as err:
        parse_access_policy(text, source="access.yaml")
    assert str(err.value).startswith("access.yaml: ")


def test_rate_limiter_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=2.0, burst=2, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b"), "buckets are per key"
    now[0] = 0.5
    assert limiter.allow("a")
    assert not limiter.allow("a")
