"""`qingfeng up|down|status`: the whole suite (four services and the gateway) as background processes.

Each process runs `python -m <module>` from the repository root, in its own session, with its log and
pid file under the state directory (QF_STATE_DIR, default ./.qingfeng): logs/<name>.log, run/<name>.pid.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from qingfeng.cli import pki, tokens
from qingfeng.cli._console import say, tail
from qingfeng.cli._process import child_returncode, group_members, read_pid, spawn_detached, stop_group
from qingfeng.cli.paths import repo_root, state_dir

__all__ = ["PROCESSES", "SuiteProcess", "suite_down", "suite_status", "suite_up"]

# How long fresh processes are watched before `up` calls them started: long enough to catch import errors, bad
# settings and a refused first connection to Kafka, Elasticsearch or the database.
_SETTLE_S = 6.0


@dataclass(frozen=True)
class SuiteProcess:
    """One long-running process of the suite."""

    name: str
    module: str


PROCESSES = (
    SuiteProcess("collector", "services.collector"),
    SuiteProcess("grader", "services.grader"),
    SuiteProcess("coordinator", "services.coordinator"),
    SuiteProcess("publisher", "services.publisher"),
    SuiteProcess("gateway", "gateway"),
)


def _pid_file(state: Path, process: SuiteProcess) -> Path:
    return state / "run" / f"{process.name}.pid"


def _log_file(state: Path, process: SuiteProcess) -> Path:
    return state / "logs" / f"{process.name}.log"


def _running_pid(state: Path, process: SuiteProcess) -> int | None:
    return read_pid(_pid_file(state, process), marker=process.module)


def _environment(state: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The gateway has no default identity: provision random per-agency tokens into the state dir (once) and point
    # the gateway at their hashes, unless an operator configured a policy of their own.
    if "QF_GATEWAY_ACCESS_POLICY" not in env:
        env["QF_GATEWAY_ACCESS_POLICY"] = str(tokens.provision(state))
    # Tips are refused without an encryption key; a local suite gets its own, kept in the state dir.
    # Services believe only signed credentials (the gateway's key, every service's trust file), over TLS.
    env.update(pki.security_environment(state, env))
    # Partners identified by a client certificate of the local CA call this second listener (it requires one).
    env.setdefault("QF_GATEWAY_GRPC__MTLS_PORT", str(pki.GATEWAY_MTLS_PORT))
    # /metrics (consumer lag, the collector's produce budget) on fixed loopback ports.
    env.setdefault("QF_COLLECTOR_METRICS_PORT", "9461")
    env.setdefault("QF_COORDINATOR_METRICS_PORT", "9463")
    env.setdefault("QF_PUBLISHER_METRICS_PORT", "9464")
    if "QF_COLLECTOR_TIP_KEY" not in env and "QF_COLLECTOR_TIP_KEY_FILE" not in env:
        env["QF_COLLECTOR_TIP_KEY_FILE"] = str(tokens.provision_tip_key(state))
    return env


def _settle(fresh: dict[str, int]) -> set[str]:
    """Watch fresh processes for `_SETTLE_S`; the names of those that exited meanwhile."""
    deadline = time.monotonic() + _SETTLE_S
    exited: set[str] = set()
    while time.monotonic() < deadline and len(exited) < len(fresh):
        exited |= {name for name, pid in fresh.items() if not group_members(pid)}
        time.sleep(0.25)
    return exited


def suite_up() -> int:
    """Start every process not already running; fail (exit 1) if one exits within its first seconds."""
    state, root = state_dir(), repo_root()
    env = _environment(state)
    fresh: dict[str, int] = {}
    for process in PROCESSES:
        pid = _running_pid(state, process)
        if pid is not None:
            say(process.name, f"already running (pid {pid})")
            continue
        fresh[process.name] = spawn_detached(
            [sys.executable, "-m", process.module],
            log_file=_log_file(state, process),
            pid_file=_pid_file(state, process),
            cwd=root,
            env=env,
        )
        say(process.name, f"started (pid {fresh[process.name]}), log {_log_file(state, process)}")
    exited = _settle(fresh) if fresh else set()
    for process in PROCESSES:
        if process.name in exited:
            code = child_returncode(fresh[process.name])
            say(process.name, f"exited at once (exit {code}):\n{tail(_log_file(state, process), lines=20)}")
    return 1 if exited else 0


def suite_status() -> int:
    """Print each process alive or not; exit 0 only if all are alive."""
    state = state_dir()
    alive = 0
    for process in PROCESSES:
        pid = _running_pid(state, process)
        alive += pid is not None
        print(f"{process.name:<12} {'alive' if pid else 'down':<6} {f'pid {pid}' if pid else '-'}")
    return 0 if alive == len(PROCESSES) else 1


def suite_down(*, timeout_s: float = 20.0) -> int:
    """SIGTERM every running process (its whole group), wait for it, SIGKILL after `timeout_s`."""
    state = state_dir()
    # In reverse: the gateway stops taking requests before the services behind it go away.
    for process in reversed(PROCESSES):
        pid = _running_pid(state, process)
        if pid is None:
            say(process.name, "not running")
        else:
            killed = stop_group(pid, timeout_s=timeout_s)
            say(process.name, "killed after timeout" if killed else "stopped")
        _pid_file(state, process).unlink(missing_ok=True)
    return 0
