"""The services run without protobuf's periodic ``malloc_trim(0)`` (qingfeng.malloc_trim, native/no_malloc_trim.c):
the stub is built by ``make install``, an entry point restarts itself with it preloaded, and with it freed heap pages
are not handed back to the kernel and faulted in again."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from qingfeng.malloc_trim import SHIM_NAME, SWITCH, preload_env, shim_path, wanted

from tests.libs.entry_points import SERVICE_MAINS

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = [ROOT / Path(*module.split(".")).with_suffix(".py") for module in SERVICE_MAINS]


def _built() -> Path:
    shim = shim_path()
    if shim is None:
        pytest.skip(f"{SHIM_NAME} is not built under {sys.prefix}/lib: `make install` builds it (needs a C compiler)")
    return shim


def test_the_shim_goes_first_in_ld_preload_once(tmp_path: Path) -> None:
    shim = tmp_path / SHIM_NAME
    assert preload_env({}, shim) == {"LD_PRELOAD": str(shim)}
    env = preload_env({"LD_PRELOAD": "/opt/a.so:/opt/b.so", "X": "1"}, shim)
    assert env == {"LD_PRELOAD": f"{shim} /opt/a.so /opt/b.so", "X": "1"}
    assert preload_env({"LD_PRELOAD": f"/opt/a.so {shim}"}, shim) is None


def test_the_switch_keeps_protobufs_trims_when_turned_off() -> None:
    assert wanted({})
    assert wanted({SWITCH: "1"})
    for off in ("0", "false", "OFF", " no "):
        assert not wanted({SWITCH: off})


def test_a_prefix_without_the_built_shim_has_none(tmp_path: Path) -> None:
    assert shim_path(str(tmp_path)) is None
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / SHIM_NAME).write_bytes(b"")
    assert shim_path(str(tmp_path)) == tmp_path / "lib" / SHIM_NAME


@pytest.mark.parametrize("main", ENTRY_POINTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_entry_point_restarts_before_its_imports(main: Path) -> None:
    """The call comes before any import but its own: what runs before the restart runs twice."""
    body = ast.parse(main.read_text(encoding="utf-8")).body
    statements = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    first, second = statements[0], statements[1]
    assert isinstance(first, ast.ImportFrom) and first.module == "qingfeng.malloc_trim"
    assert isinstance(second, ast.Expr) and isinstance(second.value, ast.Call)
    assert ast.unparse(second.value) == "exec_without_malloc_trim()"


_RESTART = """
import os, sys
from qingfeng.malloc_trim import exec_without_malloc_trim
exec_without_malloc_trim()
import ctypes
print(os.environ.get("LD_PRELOAD", ""), sys.argv[1:], ctypes.CDLL(None).malloc_trim(0), sep="|", flush=True)
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", SWITCH, "QF_NO_MALLOC_TRIM_RESTARTED")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "libs")])
    env.update(extra)
    return env


def test_a_process_restarts_itself_with_the_shim_and_its_arguments() -> None:
    shim = _built()
    done = subprocess.run(
        [sys.executable, "-c", _RESTART, "--flag", "value"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    preload, argv, trimmed = done.stdout.strip().split("|")
    assert preload.split()[0] == str(shim), done.stdout
    assert argv == "['--flag', 'value']"
    assert trimmed == "0"  # the stub's answer: nothing released


def test_turned_off_the_process_keeps_glibcs_trim() -> None:
    _built()
    done = subprocess.run(
        [sys.executable, "-c", _RESTART], env=_env(**{SWITCH: "0"}), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert SHIM_NAME not in done.stdout


# Frees 40,000 protobuf messages (four of upb's trims) while a 4 MB working set is freed and allocated again between
# them, as a batch's documents are (below live objects, as in a service's heap); prints the page faults of the loop.
_CHURN = """
import resource
from qingfeng.v1 import post_pb2
blob = post_pb2.Post(id="x" * 40, text="转发微博" * 20, keywords=["a", "b"]).SerializeToString()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pins = []
before = faults()
for _ in range(40):
    work = [bytes(1500) for _ in range(2800)]
    pins.append(bytes(1500))  # allocated after the batch: what is freed is not the heap's top, which free() trims
    del work
    for _ in range(1000):
        post_pb2.Post.FromString(blob)
print(faults() - before, flush=True)
"""


def test_without_the_trims_freed_memory_is_not_faulted_in_again() -> None:
    shim = _built()

    def churn(env: dict[str, str]) -> int:
        done = subprocess.run([sys.executable, "-c", _CHURN], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        return int(done.stdout.strip())

    with_trims = churn(_env())
    without = churn(_env(LD_PRELOAD=str(shim)))
    # With the trims each of the four gives the 4 MB back and the next batch faults ~1,000 pages in again.
    assert with_trims > 2_000, with_trims
    assert without < with_trims / 4, (without, with_trims)
