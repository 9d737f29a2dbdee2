"""`qingfeng up|status|down` on stand-in modules: start in the background, report early exits, stop everything."""

from __future__ import annotations

from pathlib import Path

import pytest
from qingfeng.cli import suite
from qingfeng.cli._process import group_members, read_pid
from qingfeng.cli.priority import suite_nice


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


def test_indexers_run_the_index_role_beside_the_fetching_collector() -> None:
    assert suite.plan(0) == suite.PROCESSES
    processes = {p.name: dict(p.env) for p in suite.plan(2)}
    assert list(processes) == [
        "collector", "indexer-1", "indexer-2", "grader", "grader-index", "coordinator", "publisher", "gateway"
    ]  # fmt: skip
    assert processes["collector"] == {"QF_COLLECTOR_ROLE": "fetch"}
    assert processes["indexer-1"]["QF_COLLECTOR_ROLE"] == processes["indexer-2"]["QF_COLLECTOR_ROLE"] == "index"
    assert processes["indexer-1"]["QF_COLLECTOR_GRPC__PORT"] == "0"
    ports = {processes[n]["QF_COLLECTOR_METRICS_PORT"] for n in ("indexer-1", "indexer-2")}
    assert len(ports) == 2 and "9461" not in ports  # the fetching collector's /metrics keeps 9461


def test_the_grader_runs_its_grade_and_index_roles_as_two_processes() -> None:
    processes = {p.name: p for p in suite.plan(1)}
    assert dict(processes["grader"].env) == {"QF_GRADER_ROLE": "grade"}
    index = dict(processes["grader-index"].env)
    assert index["QF_GRADER_ROLE"] == "index" and index["QF_GRADER_GRPC__PORT"] == "0"  # health only
    assert processes["grader-index"].module == processes["grader"].module == "services.grader"
    # Search indexing yields the CPU to the alert path: the indexers' priority (QF_SUITE_NICE_INDEXER, 10).
    assert processes["grader-index"].nice_role == "indexer" and suite_nice("indexer", {}) == 10
    assert processes["grader"].nice_role == "grader" and suite_nice("grader", {}) == 0
    metrics = {v for p in suite.plan(2) for k, v in p.env if k.endswith("METRICS_PORT")}
    assert index["QF_GRADER_METRICS_PORT"] in metrics and len(metrics) == 3, "every /metrics port its own"


@pytest.mark.parametrize(("raw", "message"), [("two", "whole number"), ("-1", "between 0 and 32"), ("99", "between")])
def test_a_bad_indexer_count_is_refused_with_the_reason(
    raw: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QF_SUITE_INDEXERS", raw)
    with pytest.raises(suite.CliError, match=message):
        suite.default_indexers()


def test_status_and_down_find_the_indexers_that_were_started(tmp_path: Path) -> None:
    assert suite._known(tmp_path) == suite.PROCESSES
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "indexer-3.pid").write_text("1\n")
    assert [p.name for p in suite._known(tmp_path)].count("indexer-3") == 1
    assert len(suite._known(tmp_path)) == len(suite.PROCESSES) + 3
