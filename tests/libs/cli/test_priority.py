"""CPU priority by role (qingfeng.cli.priority): validated settings, and a started process really runs at its nice."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from qingfeng.cli import suite
from qingfeng.cli._console import CliError
from qingfeng.cli._process import read_pid, spawn_detached, stop_group
from qingfeng.cli.priority import DEFAULT_NICE, niced, parse_nice, suite_nice
from qingfeng.cli.stack import ServerStatus, format_status
from qingfeng.cli.stack_config import load_stack_config


def _nice_in_stat(pid: int, tid: int | None = None) -> int:
    """Field 19 of /proc/<pid>/stat (or of one thread's stat): the nice value the kernel schedules it at."""
    path = Path(f"/proc/{pid}/stat") if tid is None else Path(f"/proc/{pid}/task/{tid}/stat")
    text = path.read_text()
    return int(text[text.rfind(")") + 2 :].split()[16])  # fields from the 3rd on: field 19 is the 17th


@pytest.mark.parametrize("raw", ["abc", "1.5", "-1", "20", "99"])
def test_a_nice_outside_0_to_19_or_not_a_number_is_refused_naming_the_variable(raw: str) -> None:
    with pytest.raises(CliError, match="QF_SUITE_NICE_GRADER"):
        parse_nice("QF_SUITE_NICE_GRADER", raw, 0)


def test_unset_or_empty_is_the_default_and_the_bounds_are_accepted() -> None:
    assert parse_nice("X", None, 10) == 10
    assert parse_nice("X", " ", 10) == 10
    assert parse_nice("X", "0", 10) == 0
    assert parse_nice("X", "19", 0) == 19


def test_indexing_yields_and_the_alert_path_runs_at_normal_priority_by_default() -> None:
    assert {role: suite_nice(role, {}) for role in ("indexer", "collector", "grader", "gateway")} == {
        "indexer": 10, "collector": 0, "grader": 0, "gateway": 0,
    }  # fmt: skip
    assert suite_nice("indexer", {"QF_SUITE_NICE_INDEXER": "15"}) == 15
    with pytest.raises(CliError, match="QF_SUITE_NICE_GRADER=-5"):
        suite_nice("grader", {"QF_SUITE_NICE_GRADER": "-5"})
    # Every indexer process of `qingfeng up --indexers N` takes the indexer's setting, the fetch collector its own.
    roles = {process.name: process.nice_role for process in suite.plan(2)}
    assert roles["indexer-1"] == roles["indexer-2"] == "indexer"
    assert roles["collector"] == "collector"


def test_stack_settings_keep_both_servers_on_the_alert_path_by_default_and_validate_them() -> None:
    base = {"QF_STACK_HOME": "/tmp/qf-stack-test-home", "PATH": os.environ.get("PATH", "")}
    config = load_stack_config(base, euid=1000)
    # The console's searches read Elasticsearch: it stays at the normal priority unless an operator lowers it.
    assert (config.kafka_nice, config.es_nice) == (0, DEFAULT_NICE["elasticsearch"]) == (0, 0)
    assert load_stack_config({**base, "QF_STACK_ES_NICE": "10"}, euid=1000).es_nice == 10
    with pytest.raises(CliError, match="QF_STACK_KAFKA_NICE"):
        load_stack_config({**base, "QF_STACK_KAFKA_NICE": "20"}, euid=1000)


def test_the_increment_counts_from_this_process_own_nice() -> None:
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert niced(["x"], own) == ["x"]  # already there: nothing to add
    if own < 19:
        assert niced(["x", "y"], own + 1)[1:] == ["-n", "1", "x", "y"]
    with pytest.raises(CliError):
        niced(["x"], 20)


def test_a_detached_process_its_threads_and_its_children_run_at_the_configured_nice(tmp_path: Path) -> None:
    # A thread started at once and a child process: a nice set after the start would race them; this must not.
    script = (
        "import subprocess, threading, time\n"
        "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
        "subprocess.Popen(['sleep', '60'])\n"
        "time.sleep(60)\n"
    )
    own = os.getpriority(os.PRIO_PROCESS, 0)
    target = min(19, own + 7)
    pid = spawn_detached(
        [sys.executable, "-c", script, "qf-priority-test"],
        log_file=tmp_path / "p.log",
        pid_file=tmp_path / "p.pid",
        cwd=tmp_path,
        env=dict(os.environ),
        nice=target,
    )
    try:
        deadline = time.monotonic() + 10
        tasks: list[str] = []
        children: list[str] = []
        while time.monotonic() < deadline and (len(tasks) < 2 or not children):
            tasks = os.listdir(f"/proc/{pid}/task")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            time.sleep(0.05)
        # The pid is the program's own (nice exec()s it), so pid files and markers keep working.
        assert read_pid(tmp_path / "p.pid", marker="qf-priority-test") == pid
        assert len(tasks) >= 2 and children
        assert {_nice_in_stat(pid, int(tid)) for tid in tasks} == {target}
        assert _nice_in_stat(int(children[0])) == target
        assert os.getpriority(os.PRIO_PROCESS, pid) == target
    finally:
        stop_group(pid, timeout_s=10)


def test_up_starts_each_role_at_its_nice_and_status_shows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "qf_sleeper.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setenv("QF_REPO_ROOT", str(tmp_path))
    monkeypatch.setenv("QF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QF_SUITE_NICE_INDEXER", "12")
    monkeypatch.delenv("QF_SUITE_NICE_GRADER", raising=False)
    processes = (
        suite.SuiteProcess("indexer-1", "qf_sleeper", role="indexer"),
        suite.SuiteProcess("grader", "qf_sleeper"),
    )
    monkeypatch.setattr(suite, "PROCESSES", processes)
    monkeypatch.setattr(suite, "_SETTLE_S", 0.5)
    try:
        assert suite.suite_up(indexers=0) == 0
        pids = {p.name: read_pid(tmp_path / "state" / "run" / f"{p.name}.pid", marker="qf_sleeper") for p in processes}
        assert None not in pids.values()
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert _nice_in_stat(pids["indexer-1"] or 0) == max(own, 12)
        assert _nice_in_stat(pids["grader"] or 0) == own
        capsys.readouterr()
        assert suite.suite_status() == 0
        table = capsys.readouterr().out
        assert f"pid {pids['indexer-1']}, nice {max(own, 12)}" in table
        assert f"pid {pids['grader']}, nice {own}" in table
    finally:
        suite.suite_down(timeout_s=5)


def test_a_bad_setting_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "qf_sleeper.py").write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setenv("QF_REPO_ROOT", str(tmp_path))
    monkeypatch.setenv("QF_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("QF_SUITE_NICE_GRADER", "twenty")
    monkeypatch.setattr(suite, "PROCESSES", (suite.SuiteProcess("grader", "qf_sleeper"),))
    with pytest.raises(CliError, match="QF_SUITE_NICE_GRADER='twenty'"):
        suite.suite_up(indexers=0)
    assert not (tmp_path / "state" / "run" / "grader.pid").exists()


def test_stack_status_shows_a_running_server_nice() -> None:
    table = format_status([ServerStatus("elasticsearch", True, "8.19.7", "http://127.0.0.1:19200", 42, None, nice=10)])
    assert table.endswith("pid 42, nice 10")
