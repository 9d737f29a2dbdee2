"""Signed caller credentials: what a service believes and what it refuses."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from qingfeng.rpc.credentials import (
    CredentialError,
    CredentialSigner,
    TrustConfigError,
    TrustFile,
    generate_key,
    parse_trust,
    public_pem,
    trust_yaml,
)

GET_EVENT = "/qingfeng.v1.GraderService/GetEvent"
OVERRIDE = "/qingfeng.v1.GraderService/OverrideLevel"
GET_TIP = "/qingfeng.v1.CollectorService/GetTip"
IMPORT = "/qingfeng.v1.CollectorService/ImportPosts"

GATEWAY_KEY, IMPORT_KEY, OTHER_KEY = generate_key(), generate_key(), generate_key()
GATEWAY = CredentialSigner("gateway", GATEWAY_KEY)
IMPORTER = CredentialSigner("ops-import", IMPORT_KEY)
TRUST = parse_trust(
    trust_yaml(
        [("gateway", public_pem(GATEWAY_KEY), True, ()), ("ops-import", public_pem(IMPORT_KEY), False, [IMPORT])]
    )
)


def test_a_gateway_credential_names_the_partner() -> None:
    token = GATEWAY.mint(GET_TIP, principal="lead", agency="opinion_office", roles=("see_submitter", "analyst"))
    caller = TRUST.verify(token, GET_TIP)
    assert (caller.principal, caller.agency, caller.issuer) == ("lead", "opinion_office", "gateway")
    assert caller.roles == frozenset({"see_submitter", "analyst"})


@pytest.mark.parametrize(
    ("minted_for", "called", "message"),
    [
        (GET_EVENT, OVERRIDE, "another method"),
        (GET_EVENT, GET_TIP, "another service"),
    ],
)
def test_a_credential_is_bound_to_one_service_and_method(minted_for: str, called: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        TRUST.verify(GATEWAY.mint(minted_for, principal="p"), called)


def test_a_credential_expires_in_seconds() -> None:
    now = time.time()
    token = GATEWAY.mint(GET_EVENT, principal="p", now=now)
    assert TRUST.verify(token, GET_EVENT, now=now + 29).principal == "p"
    with pytest.raises(CredentialError, match="expired"):
        TRUST.verify(token, GET_EVENT, now=now + 60)


def test_a_long_lived_or_future_credential_is_refused() -> None:
    long_lived = CredentialSigner("gateway", GATEWAY_KEY, ttl_s=10_000)  # the signer clamps to the maximum
    now = time.time()
    assert TRUST.verify(long_lived.mint(GET_EVENT, now=now), GET_EVENT, now=now + 200)
    forged = jwt.encode(
        {"iss": "gateway", "sub": "p", "aud": "qingfeng.v1.GraderService", "mth": GET_EVENT, "iat": int(now),
         "exp": int(now) + 86_400},
        GATEWAY_KEY,
        algorithm="EdDSA",
        headers={"kid": "gateway"},  # well formed in every way but its lifetime
    )  # fmt: skip
    with pytest.raises(CredentialError, match="lifetime"):
        TRUST.verify(forged, GET_EVENT, now=now)
    future = GATEWAY.mint(GET_EVENT, now=now + 3600)
    with pytest.raises(CredentialError, match="lifetime"):
        TRUST.verify(future, GET_EVENT, now=now)


def test_a_wrongly_signed_credential_is_refused() -> None:
    impostor = CredentialSigner("gateway", OTHER_KEY)
    with pytest.raises(CredentialError, match="invalid credential"):
        TRUST.verify(impostor.mint(GET_TIP, principal="lead", roles=("see_submitter",)), GET_TIP)


def test_unsigned_and_foreign_credentials_are_refused() -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=").decode()
    claims = {"iss": "gateway", "sub": "p", "aud": "qingfeng.v1.CollectorService", "mth": GET_TIP, "iat": 0, "exp": 9e9}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(CredentialError, match="EdDSA"):
        TRUST.verify(f"{header}.{body}.", GET_TIP)
    hs256 = jwt.encode(
        {**claims, "exp": int(time.time()) + 10}, "secret-guess-that-is-long-enough-32b", algorithm="HS256"
    )
    with pytest.raises(CredentialError, match="EdDSA"):
        TRUST.verify(hs256, GET_TIP)
    stranger = CredentialSigner("stranger", OTHER_KEY)
    with pytest.raises(CredentialError, match="untrusted issuer"):
        TRUST.verify(stranger.mint(GET_TIP), GET_TIP)
    for junk in (None, "", "not.a.jwt", "x" * 10_000):
        with pytest.raises(CredentialError):
            TRUST.verify(junk, GET_TIP)


def test_an_internal_identity_signs_only_for_itself_and_only_its_grants() -> None:
    assert TRUST.verify(IMPORTER.mint(IMPORT), IMPORT).principal == "ops-import"
    with pytest.raises(CredentialError, match="only for itself"):
        TRUST.verify(IMPORTER.mint(IMPORT, principal="lead", roles=("see_submitter",)), IMPORT)
    with pytest.raises(CredentialError, match="not granted"):
        TRUST.verify(IMPORTER.mint(GET_TIP), GET_TIP)


def test_trust_file_validation_names_the_field() -> None:
    with pytest.raises(TrustConfigError, match="grants are exact method paths"):
        parse_trust(trust_yaml([("ops", public_pem(IMPORT_KEY), False, ["/qingfeng.v1.CollectorService/*"])]))
    with pytest.raises(TrustConfigError, match="identity-asserting issuer takes no grants"):
        parse_trust(trust_yaml([("gateway", public_pem(GATEWAY_KEY), True, [IMPORT])]))
    with pytest.raises(TrustConfigError, match="share one name"):
        parse_trust(trust_yaml([("a", public_pem(GATEWAY_KEY), True, ()), ("a", public_pem(IMPORT_KEY), True, ())]))
    with pytest.raises(TrustConfigError, match="public_key"):
        parse_trust("version: 1\nissuers:\n  - {name: gateway, public_key: nope, asserts_identities: true}\n")


def test_removing_an_issuer_from_the_trust_file_revokes_it_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "trust.yaml"
    path.write_text(
        trust_yaml(
            [("gateway", public_pem(GATEWAY_KEY), True, ()), ("ops-import", public_pem(IMPORT_KEY), False, [IMPORT])]
        )
    )
    trust = TrustFile(path, check_interval_s=0.0)
    assert trust.current().verify(IMPORTER.mint(IMPORT), IMPORT).principal == "ops-import"
    path.write_text(trust_yaml([("gateway", public_pem(GATEWAY_KEY), True, ())]))
    with pytest.raises(CredentialError, match="untrusted issuer"):
        trust.current().verify(IMPORTER.mint(IMPORT), IMPORT)
    path.write_text("version: [broken")  # a broken edit keeps the last good trust and says why
    assert trust.current().verify(GATEWAY.mint(IMPORT, principal="p"), IMPORT).principal == "p"
    assert trust.last_error is not None


def test_the_header_issuer_must_be_the_signed_issuer() -> None:
    """An internal key cannot pose as the gateway: its token names itself in the header but gateway in the claims."""
    now = time.time()
    claims = {"iss": "gateway", "sub": "lead", "aud": "qingfeng.v1.CollectorService", "mth": GET_TIP,
              "iat": int(now), "exp": int(now) + 30, "rol": ["see_submitter"]}  # fmt: skip
    posing = jwt.encode(claims, IMPORT_KEY, algorithm="EdDSA", headers={"kid": "ops-import"})
    with pytest.raises(CredentialError, match="invalid credential"):
        TRUST.verify(posing, GET_TIP)
    unlabelled = jwt.encode(claims, GATEWAY_KEY, algorithm="EdDSA")
    with pytest.raises(CredentialError, match="untrusted issuer"):
        TRUST.verify(unlabelled, GET_TIP)
