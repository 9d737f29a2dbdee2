"""The local stack's settings: ports, versions, the JDK and where everything lives. Read once per command.

Environment variables (all optional):

| variable                          | default                                                     |
|-----------------------------------|-------------------------------------------------------------|
| QF_STACK_HOME                     | /var/lib/qingfeng-stack as root, else ~/.cache/qingfeng/stack |
| QF_STACK_KAFKA_PORT               | 19092                                                       |
| QF_STACK_KAFKA_CONTROLLER_PORT    | Kafka port + 1 (19093)                                      |
| QF_STACK_ES_PORT                  | 19200                                                       |
| QF_STACK_ES_TRANSPORT_PORT        | ES port + 100 (19300)                                       |
| QF_STACK_JAVA_HOME                | the JDK 17 (/usr/lib/jvm/java-17-openjdk-amd64, else `java` on PATH) |
| QF_STACK_TIMEOUT_S                | 300 (how long `stack up` waits for each server to be healthy) |
| QF_STACK_JAEGER_OTLP_PORT         | 4317 (Jaeger's OTLP gRPC receiver, with `stack up --with-jaeger`) |
| QF_STACK_JAEGER_UI_PORT           | 16686 (Jaeger's UI and HTTP API; its query gRPC port is one below) |
| QF_STACK_KAFKA_NICE               | 0 (the broker's CPU priority, 0..19; see qingfeng.cli.priority) |
| QF_STACK_ES_NICE                  | 0 (Elasticsearch's; the grader waits for its writes there)   |
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from qingfeng.cli._console import CliError
from qingfeng.cli.paths import repo_root
from qingfeng.cli.priority import DEFAULT_NICE, parse_nice

__all__ = ["ES_USER", "StackConfig", "find_java_home", "load_stack_config", "read_pom_versions"]

# Elasticsearch refuses to run as root; as root the stack runs it as this system user.
ES_USER = "qingfeng-es"
HEAP_MB = 512
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_DEBIAN_JDK17 = Path("/usr/lib/jvm/java-17-openjdk-amd64")


@dataclass(frozen=True)
class StackConfig:
    """Everything `stack up|down|status` needs, with the on-disk layout as properties."""

    home: Path
    deploy_dir: Path
    kafka_version: str
    es_version: str
    kafka_port: int
    kafka_controller_port: int
    es_port: int
    es_transport_port: int
    java_home: Path
    timeout_s: float
    es_user: str | None
    jaeger_otlp_port: int = 4317
    jaeger_ui_port: int = 16686
    # CPU priority (nice, 0..19): on shared cores search indexing may lag, alerts may not (qingfeng.cli.priority).
    kafka_nice: int = 0
    es_nice: int = DEFAULT_NICE["elasticsearch"]

    @property
    def pom(self) -> Path:
        return self.deploy_dir / "pom.xml"

    @property
    def kafka_libs(self) -> Path:
        # Must match <outputDirectory> of copy-dependencies in deploy/stack/pom.xml.
        return self.home / f"kafka-{self.kafka_version}" / "libs"

    @property
    def es_zip(self) -> Path:
        return self.home / "downloads" / f"elasticsearch-{self.es_version}.zip"

    @property
    def es_install(self) -> Path:
        return self.home / f"elasticsearch-{self.es_version}"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def kafka_config_dir(self) -> Path:
        return self.home / "kafka" / "config"

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def es_runtime(self) -> Path:
        """Data, logs and temp files of Elasticsearch: owned by the ES user when running as root."""
        return self.home / "elasticsearch"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def es_url(self) -> str:
        return f"http://127.0.0.1:{self.es_port}"


def default_home(*, euid: int) -> Path:
    """Root uses /var/lib (traversable by the ES user, unlike /root); others a per-user cache directory."""
    if euid == 0:
        return Path("/var/lib/qingfeng-stack")
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "qingfeng" / "stack"


def read_pom_versions(pom: Path) -> tuple[str, str]:
    """(Kafka version, Elasticsearch version) from the stack POM, their single source of truth."""
    try:
        root = ET.parse(pom).getroot()
    except (OSError, ET.ParseError) as exc:
        raise CliError(f"cannot read the stack POM {pom}: {exc}") from exc
    versions = []
    for name in ("kafka.version", "elasticsearch.version"):
        node = root.find(f"m:properties/m:{name}", _POM_NS)
        if node is None or not (node.text or "").strip():
            raise CliError(f"{pom} has no <{name}> property")
        versions.append((node.text or "").strip())
    return versions[0], versions[1]


def find_java_home(env: Mapping[str, str]) -> Path:
    """The JDK both servers run on: QF_STACK_JAVA_HOME, Debian's JDK 17, else the JDK of `java` on PATH."""
    override = env.get("QF_STACK_JAVA_HOME")
    candidates = [Path(override)] if override else [_DEBIAN_JDK17]
    if not override:
        java = shutil.which("java", path=env.get("PATH"))
        if java:
            candidates.append(Path(java).resolve().parent.parent)
    for home in candidates:
        if (home / "bin" / "java").is_file():
            return home
    tried = ", ".join(str(home) for home in candidates)
    raise CliError(f"no JDK found (tried {tried}); install openjdk-17-jdk-headless or set QF_STACK_JAVA_HOME")


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CliError(f"{name}={raw!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise CliError(f"{name}={value} is outside 1..65535")
    return value


def load_stack_config(env: Mapping[str, str] | None = None, *, euid: int | None = None) -> StackConfig:
    """Build the stack's settings from the environment (default: os.environ)."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    deploy_dir = repo_root() / "deploy" / "stack"
    kafka_version, es_version = read_pom_versions(deploy_dir / "pom.xml")
    kafka_port = _port(env, "QF_STACK_KAFKA_PORT", 19092)
    es_port = _port(env, "QF_STACK_ES_PORT", 19200)
    raw_timeout = env.get("QF_STACK_TIMEOUT_S", "300")
    try:
        timeout_s = float(raw_timeout)
    except ValueError:
        raise CliError(f"QF_STACK_TIMEOUT_S={raw_timeout!r} is not a number of seconds") from None
    home = Path(env["QF_STACK_HOME"]) if env.get("QF_STACK_HOME") else default_home(euid=euid)
    return StackConfig(
        home=home.absolute(),
        deploy_dir=deploy_dir,
        kafka_version=kafka_version,
        es_version=es_version,
        kafka_port=kafka_port,
        kafka_controller_port=_port(env, "QF_STACK_KAFKA_CONTROLLER_PORT", kafka_port + 1),
        es_port=es_port,
        es_transport_port=_port(env, "QF_STACK_ES_TRANSPORT_PORT", es_port + 100),
        java_home=find_java_home(env),
        timeout_s=timeout_s,
        es_user=ES_USER if euid == 0 else None,
        jaeger_otlp_port=_port(env, "QF_STACK_JAEGER_OTLP_PORT", 4317),
        jaeger_ui_port=_port(env, "QF_STACK_JAEGER_UI_PORT", 16686),
        kafka_nice=parse_nice("QF_STACK_KAFKA_NICE", env.get("QF_STACK_KAFKA_NICE"), 0),
        es_nice=parse_nice("QF_STACK_ES_NICE", env.get("QF_STACK_ES_NICE"), DEFAULT_NICE["elasticsearch"]),
    )
