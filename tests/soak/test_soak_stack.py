"""The soak stack's restart (bench/_soak_stack.py): a server that exits while starting is reported and started again.

The servers are stand-ins (a shell that fails, or one that sleeps): this tests the harness's retry and log keeping on
its own, never Kafka or Elasticsearch.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import _soak_stack  # noqa: E402
from _soak_stack import ServerExited, SoakStack, soak_stack  # noqa: E402
from qingfeng.cli import es_server  # noqa: E402
from qingfeng.cli._process import spawn_detached, stop_group  # noqa: E402
from qingfeng.cli.stack_config import StackConfig  # noqa: E402

SERVES = "echo started >&2; exec sleep 60"  # after exec the command line is "sleep 60": the stand-in "serves"


def _stand_in(scripts: list[str]) -> Callable[[StackConfig], int]:
    """An `es_server.start` that runs the next shell script detached, logging where the real one logs."""

    def start(config: StackConfig) -> int:
        return spawn_detached(
            ["sh", "-c", scripts.pop(0)],
            log_file=es_server.log_files(config)[0],
            pid_file=config.run_dir / "elasticsearch.pid",
            cwd=config.home,
            env={"PATH": "/usr/bin:/bin"},
        )

    return start


def _probe_of(stack: SoakStack) -> Callable[..., str | None]:
    """Healthy once the current stand-in has become `sleep` (a failing script never does)."""

    def probe(config: StackConfig, timeout_s: float) -> str | None:
        try:
            cmdline = Path(f"/proc/{stack.es_pid}/cmdline").read_bytes()
        except OSError:
            return "no process"
        return None if cmdline.startswith(b"sleep\0") else "starting"

    return probe


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    made = soak_stack(tmp_path / "home")
    made.config.home.mkdir(parents=True)
    monkeypatch.setattr(es_server, "probe", _probe_of(made))
    monkeypatch.setattr(_soak_stack, "RETRY_PAUSE_S", 0.0)
    yield made
    if made.es_pid is not None:
        stop_group(made.es_pid, timeout_s=5.0)


def test_a_restart_that_exits_is_reported_and_tried_again(
    stack: SoakStack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    scripts = [SERVES, "echo lock held by another node >&2; exit 3", SERVES]
    monkeypatch.setattr(es_server, "start", _stand_in(scripts))
    stack.es_pid = es_server.start(stack.config)
    stack.wait_healthy("elasticsearch", timeout_s=10.0)
    stack.restart_es()
    printed = capsys.readouterr().out
    assert "attempt 1 of 3" in printed and "status 3" in printed and "lock held by another node" in printed
    assert not scripts, "the failed start was tried again"
    logs = sorted(p.name for p in es_server.log_files(stack.config)[0].parent.iterdir())
    assert logs == ["elasticsearch.out", "elasticsearch.out.1", "elasticsearch.out.2"]  # no log overwritten


def test_a_server_that_keeps_exiting_fails_the_restart_with_its_log(
    stack: SoakStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(es_server, "start", _stand_in(["echo no space left on device >&2; exit 1"] * 3))
    with pytest.raises(ServerExited, match="no space left on device"):
        stack.restart_es()


def test_a_failed_run_keeps_the_logs_outside_the_home(stack: SoakStack, tmp_path: Path) -> None:
    log = es_server.log_files(stack.config)[0]
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("why it stopped\n")
    kept = stack.keep_logs(tmp_path / "kept")
    assert [p.read_text() for p in kept.rglob("elasticsearch.out")] == ["why it stopped\n"]
