"""`qingfeng stack`: pure helpers (config rendering, settings, argv) and, with the stack up, `stack status`."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qingfeng.cli import es_server, kafka_server
from qingfeng.cli._console import CliError
from qingfeng.cli.maven import _progress_line
from qingfeng.cli.stack import ServerStatus, format_status
from qingfeng.cli.stack_config import (
    StackConfig,
    default_home,
    load_stack_config,
    read_pom_versions,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
DEPLOY = REPO_ROOT / "deploy" / "stack"


def _config(env: dict[str, str] | None = None, *, euid: int = 1000) -> StackConfig:
    base = {"QF_STACK_HOME": "/tmp/qf-stack-test-home", "PATH": os.environ.get("PATH", "")}
    return load_stack_config({**base, **(env or {})}, euid=euid)


def test_pom_is_the_single_source_of_versions() -> None:
    assert read_pom_versions(DEPLOY / "pom.xml") == ("4.1.1", "8.19.7")


def test_defaults_and_port_overrides() -> None:
    config = _config()
    assert (config.kafka_port, config.kafka_controller_port, config.es_port, config.es_transport_port) == (
        19092,
        19093,
        19200,
        19300,
    )
    moved = _config({"QF_STACK_KAFKA_PORT": "29092", "QF_STACK_ES_PORT": "29200"})
    assert (moved.kafka_port, moved.kafka_controller_port, moved.es_port, moved.es_transport_port) == (
        29092,
        29093,
        29200,
        29300,
    )
    assert moved.bootstrap_servers == "127.0.0.1:29092"
    assert moved.es_url == "http://127.0.0.1:29200"


@pytest.mark.parametrize("value", ["abc", "0", "70000"])
def test_a_bad_port_names_the_variable(value: str) -> None:
    with pytest.raises(CliError, match="QF_STACK_ES_PORT"):
        _config({"QF_STACK_ES_PORT": value})


def test_root_runs_elasticsearch_as_a_system_user_from_a_traversable_home() -> None:
    assert default_home(euid=0) == Path("/var/lib/qingfeng-stack")
    assert _config(euid=0).es_user == "qingfeng-es"
    assert _config(euid=1000).es_user is None


def test_server_properties_render_every_placeholder() -> None:
    config = _config({"QF_STACK_KAFKA_PORT": "29092"})
    rendered = kafka_server.render_server_properties((DEPLOY / "server.properties").read_text(), config)
    assert "${" not in rendered
    properties = dict(line.split("=", 1) for line in rendered.splitlines() if line.strip() and not line.startswith("#"))
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:29093"
    assert properties["log.dirs"] == "/tmp/qf-stack-test-home/kafka/data"
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["group.initial.rebalance.delay.ms"] == "0"


def test_an_unknown_placeholder_is_an_error() -> None:
    with pytest.raises(CliError, match="placeholder"):
        kafka_server.render_server_properties("port=${no_such_value}\n", _config())


def test_cluster_id_is_16_bytes_of_urlsafe_base64() -> None:
    cluster_id = kafka_server.new_cluster_id()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert cluster_id != kafka_server.new_cluster_id()


def test_no_cluster_id_looks_like_an_option() -> None:
    # `kafka-storage format -t -abc…` refuses to format; one random id in 64 starts with "-" (CI met one).
    assert not any(kafka_server.new_cluster_id().startswith("-") for _ in range(3000))


def test_kafka_jvm_uses_the_stack_log4j2_config_and_heap() -> None:
    argv = kafka_server.java_argv(_config(), "kafka.Kafka", "server.properties")
    assert "-Xmx512m" in argv
    assert "-Dlog4j2.configurationFile=/tmp/qf-stack-test-home/kafka/config/log4j2.xml" in argv
    assert argv[-2:] == ["kafka.Kafka", "server.properties"]


def test_elasticsearch_is_single_node_on_loopback_without_security() -> None:
    argv = es_server.argv(_config({"QF_STACK_ES_PORT": "29200"}))
    settings = dict(value.split("=", 1) for flag, value in zip(argv[1::2], argv[2::2], strict=True) if flag == "-E")
    assert settings["discovery.type"] == "single-node"
    assert settings["network.host"] == "127.0.0.1"
    assert settings["http.port"] == "29200"
    assert settings["transport.port"] == "29300"
    assert settings["path.data"] == "/tmp/qf-stack-test-home/elasticsearch/data"
    assert settings["xpack.security.enabled"] == "false"


def test_maven_progress_shows_only_artifact_downloads() -> None:
    url = "https://repo.example/maven2/org/apache/kafka/kafka_2.13/4.1.1/kafka_2.13-4.1.1.jar"
    assert _progress_line(f"[INFO] Downloaded from central: {url} (6.6 MB at 5 MB/s)") == (
        "downloaded kafka_2.13-4.1.1.jar (6.6 MB)"
    )
    assert _progress_line(f"[INFO] Downloaded from central: {url.replace('.jar', '.pom')} (2 kB at 5 kB/s)") is None
    small = url.replace("kafka_2.13-4.1.1", "asm-9.7")
    assert _progress_line(f"[INFO] Downloaded from central: {small} (125 kB at 1 MB/s)") is None
    assert _progress_line("[INFO] BUILD SUCCESS") is None


def test_status_table_shows_why_a_server_is_down() -> None:
    table = format_status(
        [
            ServerStatus("kafka", True, "4.1.1", "127.0.0.1:19092", 42, None),
            ServerStatus("elasticsearch", False, None, "http://127.0.0.1:19200", None, "connection refused"),
        ]
    )
    first, second = table.splitlines()
    assert first.split()[:3] == ["kafka", "healthy", "4.1.1"]
    assert second.split()[:3] == ["elasticsearch", "down", "-"]
    assert second.endswith("(connection refused)")


@pytest.mark.integration
def test_stack_status_reports_both_servers_healthy_with_versions() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "qingfeng.cli.main", "stack", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    statuses = {entry["name"]: entry for entry in json.loads(result.stdout)}
    if result.returncode != 0:
        message = f"the local stack is not healthy: {statuses}; start it with `.venv/bin/qingfeng stack up`"
        if os.environ.get("CI"):
            pytest.fail(f"CI: {message}", pytrace=False)
        pytest.skip(message)
    assert statuses["kafka"]["healthy"] is True
    assert statuses["kafka"]["version"] == "4.1.1"
    assert statuses["elasticsearch"]["healthy"] is True
    assert statuses["elasticsearch"]["version"] == "8.19.7"
