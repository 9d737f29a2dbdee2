"""client_kwargs: the Kafka security settings reach aiokafka as the arguments it expects (no broker needed)."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import ClassVar

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from qingfeng.kafka.security import client_kwargs
from qingfeng.settings import KafkaSettings, ServiceSettings, service_settings_config

from tests.libs.ca_files import CA_COMMON_NAME, write_ca_pem


def test_plaintext_is_the_local_default_and_carries_no_credentials() -> None:
    kwargs = client_kwargs(KafkaSettings(bootstrap_servers="127.0.0.1:19092"))
    assert kwargs == {"bootstrap_servers": "127.0.0.1:19092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_passes_scram_credentials_and_a_verifying_context(tmp_path: Path) -> None:
    settings = KafkaSettings(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_username="qingfeng-grader",
        sasl_password=SecretStr("placeholder-password"),
        ssl_cafile=write_ca_pem(tmp_path / "ca.pem"),
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "qingfeng-grader"
    assert kwargs["sasl_plain_password"] == "placeholder-password"
    context = kwargs["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
    # The CA file was loaded: exactly our one test CA is in the context's store.
    assert [dict(x[0] for x in c["subject"])["commonName"] for c in context.get_ca_certs()] == [CA_COMMON_NAME]


def test_ssl_without_sasl_sends_no_password(tmp_path: Path) -> None:
    kwargs = client_kwargs(KafkaSettings(security_protocol="SSL", ssl_cafile=write_ca_pem(tmp_path / "ca.pem")))
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert not {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"} & kwargs.keys()


def test_sasl_ssl_without_a_password_is_refused_at_start() -> None:
    settings = KafkaSettings(security_protocol="SASL_SSL", sasl_username="qingfeng-grader")
    with pytest.raises(ValueError, match="KAFKA__SASL_PASSWORD"):
        client_kwargs(settings)


async def test_aiokafka_clients_accept_the_arguments(tmp_path: Path) -> None:
    """Constructing (not starting) each client runs aiokafka's own checks of protocol, mechanism and context."""
    kwargs = client_kwargs(
        KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-256",
            sasl_username="u",
            sasl_password=SecretStr("p"),
            ssl_cafile=write_ca_pem(tmp_path / "ca.pem"),
        )
    )
    producer = AIOKafkaProducer(**kwargs)
    consumer = AIOKafkaConsumer(**kwargs)
    admin = AIOKafkaAdminClient(**kwargs)
    assert producer.client._sasl_mechanism == "SCRAM-SHA-256"
    assert consumer._client._security_protocol == "SASL_SSL"
    assert admin._client._ssl_context is kwargs["ssl_context"]
    await consumer.stop()
    await producer.stop()
    await admin.close()


def test_secrets_dir_file_is_the_group_variable_holding_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The naming deploy/ relies on: one file per group, ``<prefix><group>`` lower case, JSON, merged with env."""
    (tmp_path / "qf_testsvc_kafka").write_text(json.dumps({"sasl_username": "svc", "sasl_password": "from-file"}))
    # A per-field file name is NOT read by the current settings config (no secrets_nested_delimiter).
    (tmp_path / "qf_testsvc_elasticsearch__password").write_text("ignored")
    monkeypatch.setenv("QF_TESTSVC_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("QF_SECRETS_DIR", str(tmp_path))

    class Fresh(ServiceSettings):  # the config reads QF_SECRETS_DIR when it is built
        model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_TESTSVC_")

    settings = Fresh()
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_username == "svc"
    assert settings.kafka.sasl_password is not None
    assert settings.kafka.sasl_password.get_secret_value() == "from-file"
    assert settings.elasticsearch.password is None
