"""The Compose broker configuration, run for real: deploy/kafka/server.properties with the dev keystore and a SCRAM
user created at format time, and the suite's own Kafka clients (qingfeng.kafka.security) talking to it.

A throwaway broker on loopback ports, on the Kafka classpath `qingfeng stack up` installed (no Docker here). Only the
addresses and paths of the properties file are rewritten; each rewrite must match exactly once, so a changed file
fails here instead of being tested in some other shape.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import SecretStr
from qingfeng.cli.kafka_server import new_cluster_id
from qingfeng.cli.stack_config import load_stack_config
from qingfeng.kafka import OutgoingRecord, Producer, TopicSpec, ensure_topics
from qingfeng.kafka.security import client_kwargs
from qingfeng.readiness import kafka_ready
from qingfeng.settings import KafkaSettings
from qingfeng.v1 import post_pb2

from tests.deploy.manifests import DEPLOY

pytestmark = pytest.mark.integration

USER = "qingfeng-grader"
PASSWORD = uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rewrite(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/kafka/server.properties: expected {old!r} exactly once"
    return text.replace(old, new)


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    ca_file: Path


@pytest.fixture(scope="module")
def broker(certs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    stack = load_stack_config()
    if not stack.kafka_libs.is_dir():
        message = f"Kafka classpath {stack.kafka_libs} missing; run `.venv/bin/qingfeng stack up` once"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("kafka")
    internal, client, controller = _free_port(), _free_port(), _free_port()
    text = (DEPLOY / "kafka" / "server.properties").read_text()
    text = _rewrite(text, "voters=1@127.0.0.1:9094", f"voters=1@127.0.0.1:{controller}")
    text = _rewrite(
        text,
        "listeners=INTERNAL://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093,CONTROLLER://127.0.0.1:9094",
        f"listeners=INTERNAL://127.0.0.1:{internal},SASL_SSL://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}",
    )
    text = _rewrite(
        text,
        "advertised.listeners=INTERNAL://127.0.0.1:9092,SASL_SSL://kafka:9093",
        f"advertised.listeners=INTERNAL://127.0.0.1:{internal},SASL_SSL://127.0.0.1:{client}",
    )
    text = _rewrite(text, "/run/secrets/kafka-keystore.pem", str(certs / "kafka-keystore.pem"))
    text = _rewrite(text, "log.dirs=/var/lib/kafka/data", f"log.dirs={home / 'data'}")
    properties = home / "server.properties"
    properties.write_text(text)

    def java(main: str, *args: str) -> list[str]:
        return [
            str(stack.java_home / "bin" / "java"),
            "-Xms256m",
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={stack.kafka_config_dir / 'log4j2.xml'}",
            f"-Dkafka.logs.dir={home / 'logs'}",
            "-cp",
            f"{stack.kafka_libs}/*",
            main,
            *args,
        ]

    scram = f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]"
    fmt = java("kafka.tools.StorageTool", "format", "-t", new_cluster_id(), "-c", str(properties), "--add-scram", scram)
    formatted = subprocess.run(fmt, capture_output=True, text=True, timeout=120, check=False)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = (home / "broker.log").open("wb")
    process = subprocess.Popen(java("kafka.Kafka", str(properties)), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield Broker(bootstrap=f"127.0.0.1:{client}", ca_file=certs / "ca.crt")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _settings(broker: Broker, **overrides: object) -> KafkaSettings:
    values: dict[str, object] = {
        "bootstrap_servers": broker.bootstrap,
        "client_id": "qf-deploy-test",
        "partitions": 1,
        "request_timeout_s": 10,
        "security_protocol": "SASL_SSL",
        "sasl_username": USER,
        "sasl_password": SecretStr(PASSWORD),
        "ssl_cafile": broker.ca_file,
    }
    values.update(overrides)
    return KafkaSettings.model_validate(values)


@pytest.fixture(scope="module")
async def ready(broker: Broker) -> AsyncIterator[Broker]:
    """The broker once the suite's readiness probe passes over SASL_SSL (that probe is what pods report)."""
    probe = kafka_ready(_settings(broker))
    deadline = asyncio.get_running_loop().time() + 90
    while True:
        try:
            await probe.probe()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(1)
    yield broker


async def test_scram_over_tls_carries_a_record_through_the_suites_clients(ready: Broker) -> None:
    settings = _settings(ready)
    topic = f"qingfeng.deploy-test.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [TopicSpec(name=topic, partitions=1)], timeout_s=30)
    post = post_pb2.Post(id="deploy-test-1")
    record = OutgoingRecord(topic=topic, key="k", message=post, event_type="test", event_id="deploy-test-1")
    async with Producer(settings) as producer:
        await producer.send_many([record])
    consumer = AIOKafkaConsumer(topic, **client_kwargs(settings), auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert post_pb2.Post.FromString(message.value).id == "deploy-test-1"


async def test_a_wrong_password_is_refused(ready: Broker) -> None:
    probe = kafka_ready(_settings(ready, sasl_password=SecretStr("not-the-password")))
    with pytest.raises(KafkaError):
        await asyncio.wait_for(probe.probe(), 60)


async def test_a_plaintext_client_gets_nothing_from_the_sasl_ssl_listener(ready: Broker) -> None:
    probe = kafka_ready(_settings(ready, security_protocol="PLAINTEXT", sasl_username=None, sasl_password=None))
    with pytest.raises((KafkaError, asyncio.TimeoutError)):
        await asyncio.wait_for(probe.probe(), 30)
