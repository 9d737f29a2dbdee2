"""Static checks of deploy/docker-compose.yml and the Kafka broker configuration it mounts (no Docker here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.deploy.manifests import DEPLOY, PROCESSES, SERVICES, compose, resolves, settings_class

COMPOSE = compose()
SERVICES_ = COMPOSE["services"]
USES_ES = ("collector", "grader", "gateway")
USES_DB = SERVICES


def _kafka_properties() -> dict[str, str]:
    mounts = [v for v in SERVICES_["kafka"]["volumes"] if v.startswith("./kafka/")]
    assert len(mounts) == 1, "the broker must run with the properties file in deploy/kafka/"
    host, container, *_ = mounts[0].split(":")
    command = "\n".join(SERVICES_["kafka"]["command"])
    assert command.count(container) == 2, "the broker must be formatted and started with the mounted file"
    props = {}
    for line in (DEPLOY / host).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            props[key.strip()] = value.strip()
    return props


def _secret_targets(service: str) -> set[str]:
    targets = set()
    for entry in SERVICES_[service].get("secrets", []):
        if isinstance(entry, str):
            targets.add(entry)
        else:
            targets.add(entry.get("target", entry["source"]))
    return targets


def test_kafka_serves_clients_only_over_sasl_ssl_with_scram() -> None:
    props = _kafka_properties()
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    for listener in props["listeners"].split(","):
        name, _, address = listener.partition("://")
        if not address.startswith("127.0.0.1:"):
            assert protocols[name] == "SASL_SSL", f"{listener}: reachable from other containers without SASL_SSL"
    assert "SASL_SSL://kafka:9093" in props["advertised.listeners"].split(",")
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["ssl.keystore.location"].removeprefix("/run/secrets/") in _secret_targets("kafka")
    assert "ports" not in SERVICES_["kafka"], "the broker is not published on the host"


def test_every_process_gets_a_scram_user_created_at_format() -> None:
    command = "\n".join(SERVICES_["kafka"]["command"])
    assert "kafka-storage.sh format" in command and "--add-scram" in command
    users = re.search(r"for p in ([a-z ]+); do", command)
    assert users is not None
    assert set(users.group(1).split()) == set(PROCESSES)
    assert "SCRAM-SHA-512=[name=qingfeng-$$p,password=$$(cat /run/secrets/kafka_$${p}_password)]" in command
    assert {f"kafka_{p}_password" for p in PROCESSES} <= _secret_targets("kafka")


@pytest.mark.parametrize("process", list(PROCESSES))
def test_processes_connect_to_kafka_with_sasl_ssl(process: str) -> None:
    env = SERVICES_[process]["environment"]
    prefix = PROCESSES[process][1]
    props = _kafka_properties()
    assert env[f"{prefix}KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9093"
    assert env[f"{prefix}KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env[f"{prefix}KAFKA__SASL_MECHANISM"] in props["sasl.enabled.mechanisms"].split(",")
    assert env[f"{prefix}KAFKA__SSL_CAFILE"].removeprefix("/run/secrets/") in _secret_targets(process)
    assert f"qf_{process}_kafka" in _secret_targets(process)


def test_elasticsearch_has_security_and_https_on() -> None:
    es = SERVICES_["elasticsearch"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    assert es["xpack.security.http.ssl.enabled"] == "true"
    assert not [k for k in es if k.startswith("ELASTIC_PASSWORD")], "the password comes from the secret file"
    command = "\n".join(SERVICES_["elasticsearch"]["command"])
    assert 'ELASTIC_PASSWORD="$$(cat /run/secrets/es_elastic_password)"' in command
    assert command.endswith("exec /usr/local/bin/docker-entrypoint.sh eswrapper")
    assert "es_elastic_password" in _secret_targets("elasticsearch")
    assert "ports" not in SERVICES_["elasticsearch"]
    setup = SERVICES_["elasticsearch-setup"]
    assert setup["depends_on"]["elasticsearch"]["condition"] == "service_healthy"
    users = re.search(r"for p in ([a-z ]+); do", "\n".join(setup["command"]))
    assert users is not None and set(users.group(1).split()) == set(USES_ES)
    for process in USES_ES:
        assert f"es_{process}_password" in _secret_targets("elasticsearch-setup")


@pytest.mark.parametrize("process", USES_ES)
def test_search_users_connect_over_https_with_their_own_user(process: str) -> None:
    env = SERVICES_[process]["environment"]
    prefix = PROCESSES[process][1]
    assert env[f"{prefix}ELASTICSEARCH__URL"].startswith("https://elasticsearch:")
    assert env[f"{prefix}ELASTICSEARCH__CA_FILE"].removeprefix("/run/secrets/") in _secret_targets(process)
    assert f"qf_{process}_elasticsearch" in _secret_targets(process)
    assert "es_elastic_password" not in _secret_targets(process), "no process holds the superuser password"


def test_postgres_password_comes_from_a_file() -> None:
    pg = SERVICES_["postgres"]
    assert "POSTGRES_PASSWORD" not in pg["environment"]
    assert pg["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db_password"
    for process in USES_DB:
        assert f"qf_{process}_database" in _secret_targets(process)


@pytest.mark.parametrize("service", list(SERVICES_))
def test_no_secret_value_in_the_environment(service: str) -> None:
    for name, value in (SERVICES_[service].get("environment") or {}).items():
        if re.search(r"PASSWORD|SECRET|TOKEN|(^|_)KEY($|_)", name) and not name.endswith(("_FILE", "_CAFILE", "_DIR")):
            pytest.fail(f"{service}: {name}={value!r} puts a secret in the environment")


@pytest.mark.parametrize("process", list(PROCESSES))
def test_every_variable_names_a_setting_of_that_process(process: str) -> None:
    prefix = PROCESSES[process][1]
    model = settings_class(process)
    for name in SERVICES_[process]["environment"]:
        if name == "QF_SECRETS_DIR":
            continue
        assert name.startswith(prefix), f"{name}: another process's prefix"
        assert resolves(model, name.removeprefix(prefix).lower().split("__")), f"{name}: no such setting"


@pytest.mark.parametrize("process", list(PROCESSES))
def test_settings_secret_files_are_top_level_groups(process: str) -> None:
    prefix = PROCESSES[process][1].lower()
    for target in _secret_targets(process):
        if target.startswith("qf_"):
            assert target.startswith(prefix) and "__" not in target, target
            assert target.removeprefix(prefix) in settings_class(process).model_fields, target


@pytest.mark.parametrize("process", list(PROCESSES))
def test_file_settings_point_at_mounted_secrets(process: str) -> None:
    for name, value in SERVICES_[process]["environment"].items():
        if name.endswith(("_FILE", "_CAFILE", "ACCESS_POLICY")):
            assert value.removeprefix("/run/secrets/") in _secret_targets(process), f"{name}={value}"


def test_network_layout_keeps_services_behind_the_gateway() -> None:
    networks = COMPOSE["networks"]
    assert networks["data"]["internal"] is True and networks["rpc"]["internal"] is True
    for name, service in SERVICES_.items():
        attached = set(service.get("networks", []))
        assert attached, f"{name}: on the default network"
        if name != "gateway":
            assert "ports" not in service, f"{name}: published on the host"
            assert "edge" not in attached
        if name != "collector":
            assert "egress" not in attached, f"{name}: may reach the internet"
    assert all(p.startswith("127.0.0.1:") for p in SERVICES_["gateway"]["ports"])
    for service in SERVICES:
        assert "rpc" in SERVICES_[service]["networks"]


@pytest.mark.parametrize("service", SERVICES)
def test_services_require_the_gateways_client_certificate(service: str) -> None:
    env = SERVICES_[service]["environment"]
    prefix = PROCESSES[service][1]
    assert env[f"{prefix}GRPC__TLS_CLIENT_AUTH"] == "require"
    assert env[f"{prefix}IDENTITY__TRUST_FILE"].removeprefix("/run/secrets/") in _secret_targets(service)


def test_secret_files_come_from_the_generated_git_ignored_folders() -> None:
    for name, secret in COMPOSE["secrets"].items():
        path = Path(secret["file"])  # relative to deploy/; Path drops the leading "./"
        assert path.parts[0] in ("secrets", "certs"), f"{name}: {path}"
        if path.parts[0] == "certs":
            assert path.parts[1] == "out", f"{name}: certificates live in certs/out/"


@pytest.mark.parametrize("process", list(PROCESSES))
def test_health_checks_ask_readiness_over_tls(process: str) -> None:
    """The same script as the Kubernetes probes (tests/deploy/test_probe.py), with the Compose secrets folder."""
    test = SERVICES_[process]["healthcheck"]["test"]
    mode = "none" if process == "gateway" else "mutual"
    service = "" if process == "gateway" else f"qingfeng.v1.{process.capitalize()}Service"
    assert test[:3] == ["CMD", "python", "-c"]
    assert test[4:] == ["/run/secrets", str(PROCESSES[process][2]), process, service, mode]
    assert {"ca.crt", "tls.crt", "tls.key"} <= _secret_targets(process)
    if process != "gateway":
        assert SERVICES_["gateway"]["depends_on"][process]["condition"] == "service_healthy"
