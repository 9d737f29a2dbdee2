from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml
from qingfeng.cli.pki import GATEWAY_ISSUER, ca_file, key_file, security_environment
from qingfeng.cli.tokens import REFLECTION_METHODS, every_method
from qingfeng.rpc import CredentialSigner, load_signer
from qingfeng.v1 import case_pb2, event_pb2, publication_pb2, search_pb2, source_pb2

from gateway.access import hash_token

# Grants are exact method paths: the office gets every method of every service the gateway serves.
_ALL_METHODS = tuple(
    grant
    for module, service in (
        (source_pb2, "CollectorService"),
        (event_pb2, "GraderService"),
        (case_pb2, "CoordinatorService"),
        (publication_pb2, "PublisherService"),
        (search_pb2, "SearchService"),
    )
    for grant in every_method(module, service)
)


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
                "token_sha256": hash_token(gateway_tokens["office"]),
                "roles": ["analyst", "see_submitter", "see_tips"],
                "grants": [*_ALL_METHODS, *REFLECTION_METHODS],
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
                "grants": list(every_method(publication_pb2, "PublisherService")),
            },
        ],
    }
    path = tmp_path_factory.mktemp("gateway") / "access.yaml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def suite_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory provisioned as `qingfeng up` does it: identity keys, trust file, local CA and certificates."""
    return tmp_path_factory.mktemp("suite-state")


@pytest.fixture(scope="session")
def identity_env(suite_state: Path) -> dict[str, str]:
    """The variables `qingfeng up` gives the processes: TLS everywhere, signed credentials, the trust file."""
    env = security_environment(suite_state, {})
    env["QF_E2E_CA_FILE"] = str(ca_file(suite_state))
    return env


@pytest.fixture(scope="session")
def gateway_signer(suite_state: Path, identity_env: dict[str, str]) -> CredentialSigner:
    """The provisioned gateway key, to call a service directly as the gateway would."""
    return load_signer(GATEWAY_ISSUER, key_file(suite_state, GATEWAY_ISSUER))
