"""`qingfeng up|status|down` on stand-in modules: start in the background, report early exits, stop everything."""

from __future__ import annotations

from pathlib import Path

import pytest
from qingfeng.cli import suite
from qingfeng.cli._process import group_members, read_pid


@pytest.fixture
def stand_ins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake repo root with one module that keeps running and one that fails at start."""
    (tmp_path / "qf_sleeper.py").write_text("import time\ntime.sleep(60)\n")
    (tmp_path / "qf_crasher.py").write_text("import sys\nprint('bad settings')\nsys.exit(3)\n")
    monkeypatch.setenv("QF_REPO_ROOT", str(tmp_path))
    monkeypatch.setenv("QF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(
        suite, "PROCESSES", (suite.SuiteProcess("sleeper", "qf_sleeper"), suite.SuiteProcess("crasher", "qf_crasher"))
    )
    monkeypatch.setattr(suite, "_SETTLE_S", 1.5)
    return tmp_path


def test_up_reports_a_process_that_exits_and_down_stops_the_rest(
    stand_ins: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert suite.suite_up() == 1
    err = capsys.readouterr().err
    assert "[crasher] exited at once (exit 3)" in err
    assert "bad settings" in err

    sleeper_pid = read_pid(stand_ins / "state" / "run" / "sleeper.pid", marker="qf_sleeper")
    assert sleeper_pid is not None
    assert suite.suite_status() == 1
    table = capsys.readouterr().out
    assert f"sleeper      alive  pid {sleeper_pid}" in table
    assert "crasher      down" in table

    assert suite.suite_down(timeout_s=5) == 0
    assert group_members(sleeper_pid) == []
    assert not (stand_ins / "state" / "run" / "sleeper.pid").exists()


def test_the_gateway_gets_the_state_dirs_access_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QF_GATEWAY_ACCESS_POLICY", raising=False)
    # No policy yet: tokens are provisioned into the state dir and the gateway gets their hashes.
    assert suite._environment(tmp_path)["QF_GATEWAY_ACCESS_POLICY"] == str(tmp_path / "access.yaml")
    assert (tmp_path / "access.yaml").is_file()
    assert any((tmp_path / "tokens").iterdir())
    monkeypatch.setenv("QF_GATEWAY_ACCESS_POLICY", "/etc/qingfeng/access.yaml")
    assert suite._environment(tmp_path)["QF_GATEWAY_ACCESS_POLICY"] == "/etc/qingfeng/access.yaml"
