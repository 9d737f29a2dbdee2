"""`qingfeng.rpc` exports its names lazily: each resolves to its submodule's object, and importing one submodule
does not load the server stack."""

from __future__ import annotations

import subprocess
import sys

import pytest
import qingfeng.rpc as rpc


@pytest.mark.parametrize("name", rpc.__all__)
def test_every_exported_name_is_the_submodules_object(name: str) -> None:
    home = rpc._HOMES[name]
    module = __import__(f"qingfeng.rpc.{home}", fromlist=[name])
    assert getattr(rpc, name) is getattr(module, name)


def test_the_export_table_and_all_agree() -> None:
    assert sorted(rpc._HOMES) == sorted(rpc.__all__)
    assert set(rpc.__all__) <= set(dir(rpc))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = rpc.no_such_thing  # type: ignore[attr-defined]


def test_a_client_import_does_not_load_the_server() -> None:
    code = (
        "import sys\n"
        "import qingfeng.rpc.credentials, qingfeng.rpc.tls\n"
        "heavy = [m for m in ('qingfeng.rpc.server', 'qingfeng.rpc.lifecycle', 'grpc_health.v1.health',"
        " 'opentelemetry.instrumentation.grpc') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
