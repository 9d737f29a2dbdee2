from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from gateway.access import hash_token
from tests.identity import signer_key_file, trust_file


@pytest.fixture(scope="session")
def gateway_tokens() -> dict[str, str]:
    """A fresh token per test identity: nothing shared with the demo or a deployment."""
    return {name: secrets.token_urlsafe(24) for name in ("office", "police", "propaganda")}


@pytest.fixture(scope="session")
def access_policy_file(tmp_path_factory: pytest.TempPathFactory, gateway_tokens: dict[str, str]) -> Path:
    policy = {
        "version": "test-1",
        "identities": [
            {
                "name": "office",
                "agency": "opinion_office",
                "roles": ["analyst", "see_submitter"],
                "token_sha256": hash_token(gateway_tokens["office"]),
                "grants": ["/qingfeng.v1.*", "/grpc.reflection.*"],
            },
            {
                "name": "police",
                "agency": "police_cyber",
                "token_sha256": hash_token(gateway_tokens["police"]),
                "grants": ["/qingfeng.v1.CoordinatorService/ListTasks", "/qingfeng.v1.CoordinatorService/CompleteTask"],
            },
            {
                "name": "propaganda",
                "agency": "propaganda",
                "token_sha256": hash_token(gateway_tokens["propaganda"]),
                "grants": ["/qingfeng.v1.PublisherService/*"],
            },
        ],
    }
    path = tmp_path_factory.mktemp("gateway") / "access.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def identity_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Variables giving every service the trust file and the gateway its signing key (tests/identity.py's key)."""
    directory = tmp_path_factory.mktemp("identity")
    trust, key = trust_file(directory), signer_key_file(directory)
    env = {
        f"QF_{name}_IDENTITY__TRUST_FILE": str(trust) for name in ("COLLECTOR", "GRADER", "COORDINATOR", "PUBLISHER")
    }
    env["QF_GATEWAY_IDENTITY__ISSUER"] = "gateway"
    env["QF_GATEWAY_IDENTITY__SIGNING_KEY_FILE"] = str(key)
    return env
