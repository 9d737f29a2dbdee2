"""The local Kafka broker: render its configuration, format its storage once, start it, probe it.

KRaft single node (broker and controller in one JVM) on the classpath that Maven resolved from
deploy/stack/pom.xml; no Kafka distribution or shell scripts are involved.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path
from string import Template

from qingfeng.cli._console import CliError
from qingfeng.cli._process import read_pid, spawn_detached
from qingfeng.cli.stack_config import HEAP_MB, StackConfig

__all__ = [
    "JVM_MAIN",
    "format_storage",
    "java_argv",
    "log_files",
    "new_cluster_id",
    "probe",
    "render_server_properties",
    "running_pid",
    "start",
    "version_of",
]

JVM_MAIN = "kafka.Kafka"


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (what `random-uuid` prints).

    Never one starting with "-": `kafka-storage format -t <id>` would read it as an option and refuse to format
    (one id in 64); Kafka's own random ids skip those too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def render_server_properties(template: str, config: StackConfig) -> str:
    """Fill the server.properties template; a placeholder without a value is an error, not an empty string."""
    try:
        return Template(template).substitute(
            kafka_port=config.kafka_port,
            controller_port=config.kafka_controller_port,
            data_dir=config.kafka_data,
        )
    except (KeyError, ValueError) as exc:
        raise CliError(f"bad placeholder in {config.deploy_dir / 'server.properties'}: {exc}") from exc


def _pid_file(config: StackConfig) -> Path:
    return config.run_dir / "kafka.pid"


def log_files(config: StackConfig) -> list[Path]:
    """Where to look when the broker misbehaves: its stdout (JVM errors) and log4j2's server.log."""
    return [config.logs_dir / "kafka.out", config.logs_dir / "kafka" / "server.log"]


def java_argv(config: StackConfig, main_class: str, *args: str) -> list[str]:
    """A JVM command line on the Maven-resolved classpath with the stack's log4j2 configuration."""
    return [
        str(config.java_home / "bin" / "java"),
        f"-Xms{HEAP_MB}m",
        f"-Xmx{HEAP_MB}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={config.kafka_config_dir / 'log4j2.xml'}",
        f"-Dkafka.logs.dir={config.logs_dir / 'kafka'}",
        "-cp",
        f"{config.kafka_libs}/*",
        main_class,
        *args,
    ]


def _write_config(config: StackConfig) -> Path:
    config.kafka_config_dir.mkdir(parents=True, exist_ok=True)
    template = (config.deploy_dir / "server.properties").read_text()
    properties = config.kafka_config_dir / "server.properties"
    properties.write_text(render_server_properties(template, config))
    shutil.copyfile(config.deploy_dir / "log4j2.xml", config.kafka_config_dir / "log4j2.xml")
    return properties


def format_storage(config: StackConfig) -> bool:
    """Write the configuration and format the log directory unless it already is; True if it formatted."""
    properties = _write_config(config)
    if (config.kafka_data / "meta.properties").is_file():
        return False
    config.kafka_data.mkdir(parents=True, exist_ok=True)
    argv = java_argv(
        config, "kafka.tools.StorageTool", "format", "--standalone", "-t", new_cluster_id(), "-c", str(properties)
    )
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise CliError(f"formatting Kafka storage failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return True


def running_pid(config: StackConfig) -> int | None:
    """The pid of the broker this stack home started, if it is still alive."""
    return read_pid(_pid_file(config), marker=JVM_MAIN)


def start(config: StackConfig) -> int:
    """Start the broker detached (its own session); the storage must be formatted."""
    properties = config.kafka_config_dir / "server.properties"
    env = {**os.environ, "JAVA_HOME": str(config.java_home)}
    return spawn_detached(
        java_argv(config, JVM_MAIN, str(properties)),
        log_file=log_files(config)[0],
        pid_file=_pid_file(config),
        cwd=config.home,
        env=env,
        nice=config.kafka_nice,
    )


def version_of(config: StackConfig) -> str:
    """The broker's version, read from the kafka_2.13 jar on the classpath the stack runs."""
    jars = sorted(config.kafka_libs.glob("kafka_2.13-*.jar"))
    if not jars:
        return config.kafka_version
    return jars[-1].name.removeprefix("kafka_2.13-").removesuffix(".jar")


def port_open(port: int, *, timeout_s: float = 1.0) -> bool:
    """True if something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


async def _list_topics(bootstrap: str, timeout_s: float) -> None:
    # Imported here: nothing connects or loads the client at import time, and `--help` stays fast.
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.list_topics(), timeout_s)
    finally:
        await admin.close()


def probe(config: StackConfig, *, timeout_s: float = 5.0) -> str | None:
    """None when the broker answers a metadata request (list topics), else why it is not healthy."""
    if not port_open(config.kafka_port):
        return f"nothing listens on {config.bootstrap_servers}"
    try:
        asyncio.run(_list_topics(config.bootstrap_servers, timeout_s))
    except Exception as exc:  # any client failure means "not healthy yet"; the reason is shown to the user
        return f"{type(exc).__name__}: {exc}"
    return None
