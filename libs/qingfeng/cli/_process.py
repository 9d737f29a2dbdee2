"""Background processes: start detached in their own session, find them by pid file, stop their whole group.

Every process started here leads a new session (pgid == pid), so stopping the group also stops children
such as Elasticsearch's server JVM under its launcher. Liveness is read from /proc so that zombies and
recycled pids are not mistaken for a running server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from qingfeng.cli.priority import niced

# Children started by this process, kept so they can be reaped (no zombies, no ResourceWarning on exit).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

__all__ = [
    "ProcessInfo",
    "child_returncode",
    "group_members",
    "processes_mentioning",
    "read_pid",
    "spawn_detached",
    "stop_group",
]


@dataclass(frozen=True)
class ProcessInfo:
    """What /proc says about one live process."""

    pid: int
    pgid: int
    state: str
    cmdline: tuple[str, ...]


def _read_proc(pid: int) -> ProcessInfo | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw_cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name in field 2 may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    state, pgid = fields[0], int(fields[2])
    if state in ("Z", "X"):
        return None
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0") if part)
    return ProcessInfo(pid=pid, pgid=pgid, state=state, cmdline=cmdline)


def group_members(pgid: int) -> list[ProcessInfo]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    for child in _CHILDREN.values():
        child.poll()  # reaps an exited child (it would linger as a zombie) and keeps its exit status
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _read_proc(int(entry.name))
            if info is not None and info.pgid == pgid:
                members.append(info)
    return members


def read_pid(pid_file: Path, *, marker: str) -> int | None:
    """The pid in `pid_file` if that process is alive and its command line contains `marker`.

    The marker guards against a stale pid file whose number now belongs to an unrelated process.
    """
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    info = _read_proc(pid)
    if info is None or not any(marker in part for part in info.cmdline):
        return None
    return pid


def spawn_detached(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    cwd: Path,
    env: Mapping[str, str],
    user: str | None = None,
    nice: int = 0,
) -> int:
    """Start `argv` in a new session with stdout and stderr in `log_file` (truncated); write and return its pid.

    `nice` (0..19) is the CPU priority it runs at, every thread and child included (see qingfeng.cli.priority).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("wb") as log, open(os.devnull, "rb") as devnull:
        process = subprocess.Popen(
            niced(argv, nice),
            cwd=cwd,
            env=dict(env),
            stdin=devnull,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=user,
            group=user,
            extra_groups=[] if user is not None else None,
            close_fds=True,
        )
    _CHILDREN[process.pid] = process
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop_group(pgid: int, *, timeout_s: float = 30.0) -> bool:
    """SIGTERM the whole process group, wait up to `timeout_s`, then SIGKILL what is left.

    Returns True if it had to use SIGKILL.
    """
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        if not group_members(pgid):
            return sig == signal.SIGKILL
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return sig == signal.SIGKILL
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not group_members(pgid):
                return sig == signal.SIGKILL
            time.sleep(0.2)
    left = ", ".join(str(info.pid) for info in group_members(pgid))
    raise RuntimeError(f"process group {pgid} survived SIGKILL: {left}")


def child_returncode(pid: int) -> int | None:
    """Exit status of a child started by this process that has already exited, else None."""
    child = _CHILDREN.get(pid)
    return None if child is None else child.poll()


def processes_mentioning(text: str) -> list[ProcessInfo]:
    """Live processes with `text` in an argument (e.g. a stack home path), this process's group excluded."""
    own_group = os.getpgid(0)
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _read_proc(int(entry.name))
            if info is not None and info.pgid != own_group and any(text in part for part in info.cmdline):
                found.append(info)
    return found
