"""The local Jaeger (opt-in: `qingfeng stack up --with-jaeger`): build it once with Go, start it, probe it.

Jaeger's `cmd/jaeger` (v2, an OpenTelemetry collector with Jaeger's storage and query) is not in Debian and ships no
binary through a registry, so it is built from the Go module proxy: `go mod download` fetches the module (its go.mod
has replace directives, so `go install module@version` refuses it) and `go build ./cmd/jaeger` runs in the
downloaded tree. The binary is cached in the stack home like the Kafka classpath and the Elasticsearch zip; the
first build takes minutes (about 300 modules), later `stack up`s start it at once.

It keeps traces in memory, takes OTLP over gRPC on 127.0.0.1:4317 (set the services' ``QF_<SERVICE>_TELEMETRY__
OTLP_ENDPOINT=http://127.0.0.1:4317``) and serves its HTTP API on http://127.0.0.1:16686 (``/api/traces?service=…``;
the module carries no UI assets, so the page there is Jaeger's placeholder). Every listener is bound to 127.0.0.1;
its own metrics endpoint is off.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path
from string import Template
from typing import Final

from qingfeng.cli._console import CliError, say
from qingfeng.cli._process import read_pid, spawn_detached
from qingfeng.cli.stack_config import StackConfig

__all__ = [
    "MODULE",
    "VERSION",
    "binary",
    "build",
    "installed",
    "log_files",
    "probe",
    "render_config",
    "running_pid",
    "start",
    "version_of",
]

MODULE: Final = "github.com/jaegertracing/jaeger"
VERSION: Final = "1.76.0"
_BUILD_TIMEOUT_S: Final = 1800.0

# Jaeger v2's own configuration (OpenTelemetry collector format): memory storage, OTLP gRPC in, query/UI out.
_CONFIG: Final = Template("""\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    resource:
      service.name: jaeger
    metrics:
      level: none
    logs:
      level: warn

extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${ui_port}
    grpc:
      endpoint: 127.0.0.1:${query_grpc_port}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: ${max_traces}

receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${otlp_port}

processors:
  batch:

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
""")


def binary(config: StackConfig) -> Path:
    return config.home / f"jaeger-{VERSION}" / "jaeger"


def installed(config: StackConfig) -> bool:
    return binary(config).is_file()


def log_files(config: StackConfig) -> list[Path]:
    return [config.logs_dir / "jaeger.out"]


def _pid_file(config: StackConfig) -> Path:
    return config.run_dir / "jaeger.pid"


def _config_file(config: StackConfig) -> Path:
    return config.home / "jaeger" / "config.yaml"


def render_config(config: StackConfig, *, max_traces: int = 100_000) -> str:
    return _CONFIG.substitute(
        ui_port=config.jaeger_ui_port,
        query_grpc_port=config.jaeger_ui_port - 1,
        otlp_port=config.jaeger_otlp_port,
        max_traces=max_traces,
    )


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise CliError("the Go toolchain (go) is not installed: Jaeger is built from the Go module proxy")
    return go


def build(config: StackConfig) -> Path:
    """Download the module and build `cmd/jaeger` into the stack home (no-op when it is there)."""
    target = binary(config)
    if target.is_file():
        return target
    go = _go()
    say("jaeger", f"building {MODULE}/cmd/jaeger@v{VERSION} with Go (first time only; takes minutes)")
    download = subprocess.run(
        [go, "mod", "download", "-json", f"{MODULE}@v{VERSION}"],
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
        check=False,
    )
    if download.returncode != 0:
        raise CliError(f"go mod download {MODULE}@v{VERSION} failed:\n{download.stdout}{download.stderr}")
    source = Path(json.loads(download.stdout)["Dir"])
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    # The module cache is read-only; building reads it and writes only the output and Go's build cache.
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(partial), "./cmd/jaeger"],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=_BUILD_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise CliError(f"building Jaeger failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"[-4000:])
    partial.rename(target)  # only a complete binary counts as installed
    return target


def running_pid(config: StackConfig) -> int | None:
    return read_pid(_pid_file(config), marker=str(binary(config)))


def start(config: StackConfig) -> int:
    """Write the configuration and start Jaeger detached; it must be built."""
    path = _config_file(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_config(config))
    return spawn_detached(
        [str(binary(config)), "--config", str(path)],
        log_file=log_files(config)[0],
        pid_file=_pid_file(config),
        cwd=config.home,
        env=dict(os.environ),
    )


def ui_url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.jaeger_ui_port}"


def probe(config: StackConfig, *, timeout_s: float = 2.0) -> str | None:
    """None when the query API answers, else why Jaeger is not healthy."""
    try:
        with urllib.request.urlopen(f"{ui_url(config)}/api/services", timeout=timeout_s) as response:
            json.loads(response.read())
    except Exception as exc:  # any failure means "not healthy yet"; the reason is shown to the user
        return f"{type(exc).__name__}: {exc}"
    return None


def version_of(config: StackConfig) -> str | None:
    return VERSION if installed(config) else None
