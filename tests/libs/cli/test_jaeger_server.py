"""The opt-in local Jaeger: its configuration binds every listener to loopback on the configured ports, and a
stack without it stays healthy."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from qingfeng.cli import jaeger_server
from qingfeng.cli.main import build_parser
from qingfeng.cli.stack_config import StackConfig, load_stack_config


def _config(env: dict[str, str] | None = None) -> StackConfig:
    return load_stack_config({"QF_STACK_HOME": "/tmp/qf-stack-test", "PATH": "/usr/bin:/bin", **(env or {})}, euid=1000)


def test_default_ports_are_jaegers_own() -> None:
    config = _config()
    assert (config.jaeger_otlp_port, config.jaeger_ui_port) == (4317, 16686)
    assert jaeger_server.ui_url(config) == "http://127.0.0.1:16686"
    assert jaeger_server.binary(config) == Path("/tmp/qf-stack-test") / "jaeger-1.76.0" / "jaeger"


def test_every_listener_is_on_loopback_at_the_configured_ports() -> None:
    config = _config({"QF_STACK_JAEGER_OTLP_PORT": "24317", "QF_STACK_JAEGER_UI_PORT": "26686"})
    rendered = jaeger_server.render_config(config)
    parsed = yaml.safe_load(rendered)
    assert parsed["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "127.0.0.1:24317"
    assert parsed["extensions"]["jaeger_query"]["http"]["endpoint"] == "127.0.0.1:26686"
    assert parsed["service"]["telemetry"]["metrics"]["level"] == "none"  # no metrics listener on 0.0.0.0:8888
    endpoints = re.findall(r"endpoint: (\S+)", rendered)
    assert len(endpoints) == 3 and all(e.startswith("127.0.0.1:") for e in endpoints)


def test_jaeger_is_opt_in_on_stack_up() -> None:
    parser = build_parser()
    assert parser.parse_args(["stack", "up"]).with_jaeger is False
    assert parser.parse_args(["stack", "up", "--with-jaeger"]).with_jaeger is True
