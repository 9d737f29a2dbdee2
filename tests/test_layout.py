"""The architecture rules that code review alone would let slip: a core does no I/O (it imports without gRPC, Kafka,
Elasticsearch or SQL), and no service imports another service."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("collector", "grader", "coordinator", "publisher")
_GUARD = """
import builtins, importlib, sys
real = builtins.__import__
def guard(name, *args, **kwargs):
    if name.split(".")[0] in {"grpc", "grpc_status", "aiokafka", "elasticsearch", "sqlalchemy", "httpx"}:
        raise ImportError("the core imported " + name)
    return real(name, *args, **kwargs)
builtins.__import__ = guard
importlib.import_module(sys.argv[1])
"""


@pytest.mark.parametrize("service", SERVICES)
def test_a_core_imports_without_io_libraries(service: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _GUARD, f"services.{service}.core"], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("service", SERVICES)
def test_no_service_imports_another(service: str) -> None:
    others = {f"services.{name}" for name in SERVICES if name != service} | {"gateway"}
    for path in (ROOT / "services" / service).rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not any(name == o or name.startswith(o + ".") for o in others), f"{path} imports {name}"


def test_libs_import_no_service() -> None:
    for path in (ROOT / "libs" / "qingfeng").rglob("*.py"):
        if "cli" in path.parts or "v1" in path.parts:
            continue  # the CLI wires processes together (it validates each service's policies); generated code
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("services", "gateway")), f"{path} imports {node.module}"
