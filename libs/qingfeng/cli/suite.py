"""`qingfeng up|down|status`: the whole suite (four services and the gateway) as background processes.

Each process runs `python -m <module>` from the repository root, in its own session, with its log and
pid file under the state directory (QF_STATE_DIR, default ./.qingfeng): logs/<name>.log, run/<name>.pid.

With N indexers (`qingfeng up --indexers N`, or QF_SUITE_INDEXERS; default 1) the collector runs its fetch role
(ImportPosts, sources, enrichment, produce) and N more collector processes run the index role as one Kafka consumer
group, so fetching and indexing use different cores. 0 keeps one collector process doing both.

The grader runs as two processes the same way: `grader` (QF_GRADER_ROLE=grade: posts -> events and alerts, Kafka
and SQL only) and `grader-index` (QF_GRADER_ROLE=index: the events index and the posts' event ids written into
Elasticsearch from the topics the grader publishes), so search indexing never holds an alert back.

Each process runs at the CPU priority of its role (QF_SUITE_NICE_<ROLE>, 0..19: the indexers and grader-index 10
through QF_SUITE_NICE_INDEXER, the rest 0; see qingfeng.cli.priority): on shared cores search indexing yields the
CPU to the alert path.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from qingfeng.cli import pki, tokens
from qingfeng.cli._console import CliError, say, tail
from qingfeng.cli._process import child_returncode, group_members, read_pid, spawn_detached, stop_group
from qingfeng.cli.paths import repo_root, state_dir
from qingfeng.cli.priority import current_nice, suite_nice

__all__ = ["PROCESSES", "SuiteProcess", "default_indexers", "plan", "suite_down", "suite_status", "suite_up"]

# How long fresh processes are watched before `up` calls them started: long enough to catch import errors, bad
# settings and a refused first connection to Kafka, Elasticsearch or the database.
_SETTLE_S = 6.0


@dataclass(frozen=True)
class SuiteProcess:
    """One long-running process of the suite."""

    name: str
    module: str
    env: tuple[tuple[str, str], ...] = ()  # added to the suite's environment for this process only
    role: str = ""  # its CPU priority's role (QF_SUITE_NICE_<ROLE>); "" means its name

    @property
    def nice_role(self) -> str:
        return self.role or self.name


# The grader's index role: health on a port the kernel picks, its consumer lag on /metrics at 9462.
_GRADER_INDEX_ENV = (
    ("QF_GRADER_ROLE", "index"),
    ("QF_GRADER_GRPC__PORT", "0"),
    ("QF_GRADER_METRICS_PORT", "9462"),
)

PROCESSES = (
    SuiteProcess("collector", "services.collector"),
    SuiteProcess("grader", "services.grader", (("QF_GRADER_ROLE", "grade"),)),
    SuiteProcess("grader-index", "services.grader", _GRADER_INDEX_ENV, role="indexer"),
    SuiteProcess("coordinator", "services.coordinator"),
    SuiteProcess("publisher", "services.publisher"),
    SuiteProcess("gateway", "gateway"),
)


# Each indexer's /metrics (its consumer lag) on a port of its own: 9471, 9472, ...
_INDEXER_METRICS_BASE = 9470
_COLLECTOR = "services.collector"


def default_indexers() -> int:
    """QF_SUITE_INDEXERS, else 1: on two cores, fetch and index in separate processes beat one process doing both."""
    raw = os.environ.get("QF_SUITE_INDEXERS", "1")
    try:
        value = int(raw)
    except ValueError:
        raise CliError(f"QF_SUITE_INDEXERS must be a whole number, not {raw!r}") from None
    if not 0 <= value <= 32:
        raise CliError(f"QF_SUITE_INDEXERS must be between 0 and 32, not {value}")
    return value


def plan(indexers: int) -> tuple[SuiteProcess, ...]:
    """The processes of a suite with `indexers` separate indexer processes (0: the collector indexes itself)."""
    if indexers <= 0:
        return PROCESSES
    out: list[SuiteProcess] = []
    for process in PROCESSES:
        if process.module != _COLLECTOR:
            out.append(process)
            continue
        out.append(replace(process, env=(*process.env, ("QF_COLLECTOR_ROLE", "fetch"))))
        for i in range(1, indexers + 1):
            role = (
                ("QF_COLLECTOR_ROLE", "index"),
                ("QF_COLLECTOR_GRPC__PORT", "0"),  # health only; the kernel picks a free port
                ("QF_COLLECTOR_METRICS_PORT", str(_INDEXER_METRICS_BASE + i)),
            )
            out.append(SuiteProcess(f"indexer-{i}", _COLLECTOR, role, role="indexer"))
    return tuple(out)


def _known(state: Path) -> tuple[SuiteProcess, ...]:
    """The processes `status` and `down` look after: the base suite and every indexer that has a pid file."""
    run = state / "run"
    started = [int(m) for p in run.glob("indexer-*.pid") if (m := p.stem.removeprefix("indexer-")).isdigit()]
    return plan(max(started, default=0)) if started else PROCESSES


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


def suite_up(indexers: int | None = None) -> int:
    """Start every process not already running; fail (exit 1) if one exits within its first seconds."""
    state, root = state_dir(), repo_root()
    env = _environment(state)
    processes = plan(default_indexers() if indexers is None else indexers)
    # Read (and validated) before anything starts: a bad value starts nothing.
    nices = {process.name: suite_nice(process.nice_role) for process in processes}
    fresh: dict[str, int] = {}
    for process in processes:
        pid = _running_pid(state, process)
        if pid is not None:
            say(process.name, f"already running (pid {pid})")
            continue
        fresh[process.name] = spawn_detached(
            [sys.executable, "-m", process.module],
            log_file=_log_file(state, process),
            pid_file=_pid_file(state, process),
            cwd=root,
            env={**env, **dict(process.env)},
            nice=nices[process.name],
        )
        say(
            process.name,
            f"started (pid {fresh[process.name]}, nice {nices[process.name]}), log {_log_file(state, process)}",
        )
    exited = _settle(fresh) if fresh else set()
    for process in processes:
        if process.name in exited:
            code = child_returncode(fresh[process.name])
            say(process.name, f"exited at once (exit {code}):\n{tail(_log_file(state, process), lines=20)}")
    return 1 if exited else 0


def suite_status() -> int:
    """Print each process alive or not; exit 0 only if all are alive."""
    state = state_dir()
    alive = 0
    processes = _known(state)
    for process in processes:
        pid = _running_pid(state, process)
        alive += pid is not None
        shown = f"pid {pid}, nice {current_nice(pid)}" if pid else "-"
        print(f"{process.name:<12} {'alive' if pid else 'down':<6} {shown}")
    return 0 if alive == len(processes) else 1


def suite_down(*, timeout_s: float = 20.0) -> int:
    """SIGTERM every running process (its whole group), wait for it, SIGKILL after `timeout_s`."""
    state = state_dir()
    # In reverse: the gateway stops taking requests before the services behind it go away.
    for process in reversed(_known(state)):
        pid = _running_pid(state, process)
        if pid is None:
            say(process.name, "not running")
        else:
            killed = stop_group(pid, timeout_s=timeout_s)
            say(process.name, "killed after timeout" if killed else "stopped")
        _pid_file(state, process).unlink(missing_ok=True)
    return 0
