"""`qingfeng stack up|down|status`: the local Kafka and Elasticsearch that tests, the demo and CI share."""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from qingfeng.cli import es_server, jaeger_server, kafka_server
from qingfeng.cli._console import CliError, say, tail
from qingfeng.cli._process import group_members, processes_mentioning, stop_group
from qingfeng.cli.maven import fetch_artifacts
from qingfeng.cli.priority import current_nice
from qingfeng.cli.stack_config import StackConfig, load_stack_config

__all__ = ["ServerStatus", "collect_status", "format_status", "stack_down", "stack_status", "stack_up"]

_PROGRESS_EVERY_S = 10.0


@dataclass(frozen=True)
class _Server:
    name: str
    address: Callable[[StackConfig], str]
    running_pid: Callable[[StackConfig], int | None]
    probe: Callable[[StackConfig], str | None]
    version: Callable[[StackConfig], str | None]
    log_files: Callable[[StackConfig], list[Path]]
    stop_timeout_s: float


_KAFKA = _Server(
    name="kafka",
    address=lambda c: c.bootstrap_servers,
    running_pid=kafka_server.running_pid,
    probe=lambda c: kafka_server.probe(c),
    version=kafka_server.version_of,
    log_files=kafka_server.log_files,
    stop_timeout_s=30.0,
)
_ES = _Server(
    name="elasticsearch",
    address=lambda c: c.es_url,
    running_pid=es_server.running_pid,
    probe=lambda c: es_server.probe(c, timeout_s=2.0),
    version=es_server.version_of,
    log_files=es_server.log_files,
    stop_timeout_s=60.0,
)
_SERVERS = (_KAFKA, _ES)
# Opt-in (`stack up --with-jaeger`): in `status` only while running here, never required for a healthy stack.
_JAEGER = _Server(
    name="jaeger",
    address=lambda c: f"{jaeger_server.ui_url(c)} (OTLP 127.0.0.1:{c.jaeger_otlp_port})",
    running_pid=jaeger_server.running_pid,
    probe=lambda c: jaeger_server.probe(c),
    version=jaeger_server.version_of,
    log_files=jaeger_server.log_files,
    stop_timeout_s=15.0,
)


@dataclass(frozen=True)
class ServerStatus:
    """One line of `stack status`."""

    name: str
    healthy: bool
    version: str | None
    address: str
    pid: int | None
    reason: str | None
    nice: int | None = None  # the running process's CPU priority (QF_STACK_*_NICE)


@contextmanager
def _locked(config: StackConfig) -> Iterator[None]:
    """Serialise up/down on one stack home (tests and a person may both run `stack up`)."""
    config.home.mkdir(parents=True, exist_ok=True)
    with (config.home / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _logs_excerpt(server: _Server, config: StackConfig) -> str:
    return "\n".join(f"  --- tail of {path} ---\n{tail(path)}" for path in server.log_files(config))


def _ensure_port_free(port: int, variable: str) -> None:
    if kafka_server.port_open(port):
        raise CliError(
            f"127.0.0.1:{port} is already taken by a process this stack home did not start: stop it, or set "
            f"{variable} to another port"
        )


def _start_kafka(config: StackConfig) -> int:
    _ensure_port_free(config.kafka_port, "QF_STACK_KAFKA_PORT")
    _ensure_port_free(config.kafka_controller_port, "QF_STACK_KAFKA_CONTROLLER_PORT")
    if kafka_server.format_storage(config):
        say("kafka", f"formatted storage in {config.kafka_data}")
    pid = kafka_server.start(config)
    say("kafka", f"started (pid {pid}), log {kafka_server.log_files(config)[1]}")
    return pid


def _start_es(config: StackConfig) -> int:
    _ensure_port_free(config.es_port, "QF_STACK_ES_PORT")
    _ensure_port_free(config.es_transport_port, "QF_STACK_ES_TRANSPORT_PORT")
    es_server.ensure_unpacked(config)
    es_server.prepare_runtime(config)
    pid = es_server.start(config)
    user = f" as {config.es_user}" if config.es_user else ""
    say("elasticsearch", f"started{user} (pid {pid}), log {es_server.log_files(config)[1]}")
    return pid


def _wait_healthy(config: StackConfig, pids: dict[str, int]) -> None:
    servers = {server.name: server for server in (*_SERVERS, _JAEGER) if server.name in pids}
    started = time.monotonic()
    deadline = started + config.timeout_s
    next_progress = started + _PROGRESS_EVERY_S
    reasons: dict[str, str] = {}
    while servers:
        for name, server in list(servers.items()):
            if not group_members(pids[name]):
                raise CliError(f"{name} exited while starting.\n{_logs_excerpt(server, config)}")
            reason = server.probe(config)
            if reason is None:
                say(name, f"healthy after {time.monotonic() - started:.0f}s")
                del servers[name]
            else:
                reasons[name] = reason
        now = time.monotonic()
        if servers and now >= deadline:
            details = "\n".join(
                f"{name} is not healthy after {config.timeout_s:.0f}s ({reasons[name]}); it is still running "
                f"(pid {pids[name]}), `qingfeng stack down` stops it.\n{_logs_excerpt(server, config)}"
                for name, server in servers.items()
            )
            raise CliError(details)
        if servers and now >= next_progress:
            waiting = ", ".join(f"{name} ({reasons[name]})" for name in servers)
            say("stack", f"waiting {now - started:.0f}s/{config.timeout_s:.0f}s for {waiting}")
            next_progress = now + _PROGRESS_EVERY_S
        if servers:
            time.sleep(1.0)


def collect_status(config: StackConfig) -> list[ServerStatus]:
    """Probe both servers once (and Jaeger when it runs)."""
    statuses = []
    optional = [_JAEGER] if _JAEGER.running_pid(config) is not None else []
    for server in (*_SERVERS, *optional):
        reason = server.probe(config)
        pid = server.running_pid(config)
        statuses.append(
            ServerStatus(
                name=server.name,
                healthy=reason is None,
                version=server.version(config) if reason is None else None,
                address=server.address(config),
                pid=pid,
                reason=reason,
                nice=None if pid is None else current_nice(pid),
            )
        )
    return statuses


def format_status(statuses: list[ServerStatus]) -> str:
    """A small aligned table, one server per line."""
    lines = []
    for status in statuses:
        state = "healthy" if status.healthy else "down"
        pid = f"pid {status.pid}" if status.pid else "not started here"
        if status.pid and status.nice is not None:
            pid += f", nice {status.nice}"
        detail = "" if status.healthy else f"  ({status.reason})"
        lines.append(f"{status.name:<14} {state:<8} {status.version or '-':<8} {status.address:<24} {pid}{detail}")
    return "\n".join(lines)


def stack_up(config: StackConfig | None = None, *, with_jaeger: bool = False) -> int:
    """Start whatever is not running yet, wait until both servers (and Jaeger) are healthy, print the status."""
    config = config or load_stack_config()
    began = time.monotonic()
    with _locked(config):
        pids = {server.name: server.running_pid(config) for server in _SERVERS}
        for name, pid in pids.items():
            if pid is not None:
                say(name, f"already running (pid {pid})")
        fetch_artifacts(config, need_es_zip=pids["elasticsearch"] is None and not es_server.installed(config))
        kafka_pid = pids["kafka"] or _start_kafka(config)
        es_pid = pids["elasticsearch"] or _start_es(config)
        started = {"kafka": kafka_pid, "elasticsearch": es_pid}
        if with_jaeger:
            started["jaeger"] = _jaeger_pid(config)
        _wait_healthy(config, started)
    say("stack", f"up in {time.monotonic() - began:.0f}s (home {config.home})")
    print(format_status(collect_status(config)))
    return 0


def _jaeger_pid(config: StackConfig) -> int:
    pid = jaeger_server.running_pid(config)
    if pid is not None:
        say("jaeger", f"already running (pid {pid})")
        return pid
    jaeger_server.build(config)
    _ensure_port_free(config.jaeger_otlp_port, "QF_STACK_JAEGER_OTLP_PORT")
    _ensure_port_free(config.jaeger_ui_port, "QF_STACK_JAEGER_UI_PORT")
    pid = jaeger_server.start(config)
    say("jaeger", f"started (pid {pid}), UI {jaeger_server.ui_url(config)}, log {jaeger_server.log_files(config)[0]}")
    return pid


def stack_status(*, as_json: bool = False, config: StackConfig | None = None) -> int:
    """Print each server healthy/down with its version; exit 0 only if both are healthy."""
    config = config or load_stack_config()
    statuses = collect_status(config)
    if as_json:
        print(json.dumps([asdict(status) for status in statuses], indent=2))
    else:
        print(format_status(statuses))
    required = {server.name for server in _SERVERS}
    return 0 if all(status.healthy for status in statuses if status.name in required) else 1


def stack_down(*, wipe: bool = False, config: StackConfig | None = None) -> int:
    """Stop both servers and every process left from this stack home; `wipe` also deletes their data."""
    config = config or load_stack_config()
    with _locked(config):
        for server in (*_SERVERS, _JAEGER):
            pid = server.running_pid(config)
            if pid is None:
                if server is not _JAEGER:
                    say(server.name, "not running")
                continue
            say(server.name, f"stopping (pid {pid})")
            killed = stop_group(pid, timeout_s=server.stop_timeout_s)
            say(server.name, "killed after timeout" if killed else "stopped")
        # Anything else still pointing at this home (a lost pid file, a half-finished format) goes too.
        for leftover in processes_mentioning(str(config.home)):
            say("stack", f"stopping leftover process {leftover.pid}: {' '.join(leftover.cmdline)[:120]}")
            stop_group(leftover.pgid, timeout_s=30.0)
        for pid_file in config.run_dir.glob("*.pid"):
            pid_file.unlink()
        if wipe:
            for path in (config.kafka_data, config.es_runtime / "data"):
                say("stack", f"deleting {path}")
                shutil.rmtree(path, ignore_errors=True)
    return 0
