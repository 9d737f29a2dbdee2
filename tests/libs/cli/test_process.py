"""Detached processes: a stopped group leaves nothing behind, children included."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from qingfeng.cli._process import group_members, read_pid, spawn_detached, stop_group


def test_stop_group_stops_the_leader_and_its_children(tmp_path: Path) -> None:
    # A leader with a child of its own, like Elasticsearch's launcher and server JVM: both must go.
    script = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    pid = spawn_detached(
        [sys.executable, "-c", script],
        log_file=tmp_path / "logs" / "p.log",
        pid_file=tmp_path / "run" / "p.pid",
        cwd=tmp_path,
        env=dict(os.environ),
    )
    assert read_pid(tmp_path / "run" / "p.pid", marker="subprocess.Popen") == pid
    deadline = time.monotonic() + 10
    while len(group_members(pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(group_members(pid)) == 2
    assert stop_group(pid, timeout_s=10) is False
    assert group_members(pid) == []
    assert read_pid(tmp_path / "run" / "p.pid", marker="subprocess.Popen") is None


def test_a_stale_pid_file_is_not_a_running_process(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")
    assert read_pid(pid_file, marker="no-such-marker-in-pytest-cmdline") is None
    pid_file.write_text("not a pid\n")
    assert read_pid(pid_file, marker="python") is None
    assert read_pid(tmp_path / "missing.pid", marker="python") is None
