"""The soak's own Kafka and Elasticsearch: a second stack home on other loopback ports, never the shared one.

The shared stack (19092/19200) serves other tests while the soak runs, and the soak restarts its broker and node on
purpose, so it gets a stack of its own built from the project's stack code (``qingfeng.cli.kafka_server``,
``es_server``, ``stack``): the same POM, configs and JVM options, with ``QF_STACK_HOME``/ports of its own. The
downloads are reused from the shared stack home (the Kafka classpath through a symlink, read only; the Elasticsearch
install as hard links, except ``config/`` which the node writes its keystore into and so gets a real copy), so
nothing is fetched again and only data directories are new. ``wipe()`` stops both servers and deletes the home.
"""

from __future__ import annotations

import os
import pwd
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from qingfeng.cli import es_server, kafka_server
from qingfeng.cli._process import child_returncode, group_members, stop_group
from qingfeng.cli.maven import kafka_libs_ready
from qingfeng.cli.stack_config import StackConfig, load_stack_config

__all__ = ["SoakStack", "soak_stack_config"]

DEFAULT_KAFKA_PORT = 29092
DEFAULT_ES_PORT = 29200
# A restart whose server exits while starting is tried again (as an operator would), this many times in all.
RESTART_ATTEMPTS = 3
RETRY_PAUSE_S = 2.0  # times the attempt number: a lock or port the old process held has time to be released
# Lines of each log file quoted when a server exits, so a failed run says why without its (wiped) home.
LOG_TAIL_LINES = 25


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"  ({path}: {exc.strerror})"
    return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])


class ServerExited(RuntimeError):
    """A soak server process exited while it was expected to start or serve; the message quotes its logs."""


def soak_stack_config(
    home: Path,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    es_port: int = DEFAULT_ES_PORT,
    nices: Mapping[str, int] | None = None,
) -> StackConfig:
    """The shared stack's settings (versions, JDK, ES user) with the soak's home and ports.

    ``nices`` ("kafka", "elasticsearch"): the servers' CPU priority, else QF_STACK_*_NICE or the defaults (0 for
    both: the grader waits for its writes to Elasticsearch, see qingfeng.cli.priority).
    """
    chosen = {
        variable: str(nices[name])
        for name, variable in (("kafka", "QF_STACK_KAFKA_NICE"), ("elasticsearch", "QF_STACK_ES_NICE"))
        if nices is not None and name in nices
    }
    env = {
        **os.environ,
        **chosen,
        "QF_STACK_HOME": str(home),
        "QF_STACK_KAFKA_PORT": str(kafka_port),
        "QF_STACK_ES_PORT": str(es_port),
        "QF_STACK_TIMEOUT_S": "240",
    }
    for key in ("QF_STACK_KAFKA_CONTROLLER_PORT", "QF_STACK_ES_TRANSPORT_PORT"):
        env.pop(key, None)
    return load_stack_config(env)


def _shared_config() -> StackConfig:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QF_STACK_") or k == "QF_STACK_JAVA_HOME"}
    return load_stack_config(env)


def _link_downloads(config: StackConfig, shared: StackConfig) -> None:
    """Reuse the shared home's Kafka classpath and Elasticsearch install instead of downloading them again."""
    if not kafka_libs_ready(shared) or not es_server.installed(shared):
        raise RuntimeError(f"the shared stack home {shared.home} has no downloads yet: run `qingfeng stack up` once")
    config.home.mkdir(parents=True, exist_ok=True)
    kafka_dir = config.kafka_libs.parent
    if not kafka_dir.exists():
        kafka_dir.symlink_to(shared.kafka_libs.parent, target_is_directory=True)
    if not es_server.installed(config):
        staging = config.home / ".es-staging"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(shared.es_install, staging, copy_function=os.link, ignore=shutil.ignore_patterns("config"))
        shutil.copytree(shared.es_install / "config", staging / "config")
        if config.es_user is not None:
            user = pwd.getpwnam(config.es_user)
            for parent, dirs, files in os.walk(staging / "config"):
                for name in [*dirs, *files]:
                    os.chown(Path(parent) / name, user.pw_uid, user.pw_gid)
            os.chown(staging / "config", user.pw_uid, user.pw_gid)
            os.chown(staging, user.pw_uid, user.pw_gid)
        staging.rename(config.es_install)


@dataclass
class SoakStack:
    """Start, restart and wipe the soak's broker and node; pids are kept here, not guessed from names."""

    config: StackConfig
    kafka_pid: int | None = None
    es_pid: int | None = None

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap_servers

    @property
    def es_url(self) -> str:
        return self.config.es_url

    def up(self) -> float:
        """Start both servers and wait until healthy; seconds taken."""
        started = time.monotonic()
        for port in (self.config.kafka_port, self.config.kafka_controller_port, self.config.es_port):
            if kafka_server.port_open(port):
                raise RuntimeError(f"127.0.0.1:{port} is taken: choose other soak ports (--kafka-port/--es-port)")
        _link_downloads(self.config, _shared_config())
        kafka_server.format_storage(self.config)
        self.kafka_pid = kafka_server.start(self.config)
        es_server.prepare_runtime(self.config)
        self.es_pid = es_server.start(self.config)
        self.wait_healthy("kafka")
        self.wait_healthy("elasticsearch")
        return time.monotonic() - started

    def wait_healthy(self, name: str, timeout_s: float | None = None) -> float:
        """Poll the server's own probe until it answers; seconds waited."""
        started = time.monotonic()
        deadline = started + (timeout_s or self.config.timeout_s)
        pid = self.kafka_pid if name == "kafka" else self.es_pid
        reason: str | None = "not probed"
        while time.monotonic() < deadline:
            if pid is None or not group_members(pid):
                raise ServerExited(self._exit_report(name, pid))
            if name == "kafka":
                reason = kafka_server.probe(self.config, timeout_s=3.0)
            else:
                reason = es_server.probe(self.config, timeout_s=2.0)
            if reason is None:
                return time.monotonic() - started
            time.sleep(0.5)
        raise RuntimeError(f"{name} not healthy after {timeout_s}s: {reason}")

    def _exit_report(self, name: str, pid: int | None) -> str:
        code = None if pid is None else child_returncode(pid)
        files = kafka_server.log_files(self.config) if name == "kafka" else es_server.log_files(self.config)
        tails = "\n".join(f" {path}:\n{_tail(path)}" for path in files)
        return f"{name} exited (status {code}); the end of its logs:\n{tails}"

    def _keep_log(self, name: str) -> None:
        """Start writing truncates the launcher's log: keep the previous one beside it, numbered."""
        files = kafka_server.log_files(self.config) if name == "kafka" else es_server.log_files(self.config)
        out = files[0]
        if out.exists():
            n = 1
            while out.with_name(f"{out.name}.{n}").exists():
                n += 1
            out.rename(out.with_name(f"{out.name}.{n}"))

    def _restart(self, name: str, stop_timeout_s: float) -> float:
        """Stop the server (SIGTERM, as an operator's restart), start it again; seconds until it answers.

        A server that exits while starting (seen once in CI: Elasticsearch on a loaded machine, its reason lost with
        the wiped home) is reported with its log's end and started again, up to RESTART_ATTEMPTS in all.
        """
        started = time.monotonic()
        server = kafka_server if name == "kafka" else es_server
        pid = self.kafka_pid if name == "kafka" else self.es_pid
        if pid is not None:
            stop_group(pid, timeout_s=stop_timeout_s)
        for attempt in range(1, RESTART_ATTEMPTS + 1):
            self._keep_log(name)
            pid = server.start(self.config)
            if name == "kafka":
                self.kafka_pid = pid
            else:
                self.es_pid = pid
            try:
                self.wait_healthy(name)
                return time.monotonic() - started
            except ServerExited as exited:
                if attempt == RESTART_ATTEMPTS:
                    raise
                print(f"[soak] restart {name}, attempt {attempt} of {RESTART_ATTEMPTS}: {exited}", flush=True)
                if group_members(pid):
                    stop_group(pid, timeout_s=stop_timeout_s)
                time.sleep(RETRY_PAUSE_S * attempt)
        raise AssertionError("unreachable")

    def restart_kafka(self) -> float:
        return self._restart("kafka", 30.0)

    def restart_es(self) -> float:
        return self._restart("elasticsearch", 60.0)

    def keep_logs(self, into: Path) -> Path:
        """Copy the servers' logs out of the home before a wipe (a failed run's evidence); the copy's path."""
        into.mkdir(parents=True, exist_ok=True)
        for source in (self.config.logs_dir, self.config.es_runtime / "logs"):
            if source.is_dir():
                shutil.copytree(source, into / source.relative_to(self.config.home), dirs_exist_ok=True)
        return into

    def wipe(self) -> None:
        """Stop both servers and delete the soak's home (data, logs, links; the shared downloads stay)."""
        for pid in (self.kafka_pid, self.es_pid):
            if pid is not None and group_members(pid):
                stop_group(pid, timeout_s=30.0)
        self.kafka_pid = self.es_pid = None
        shared = _shared_config().home.resolve()
        home = self.config.home.resolve()
        if home == shared or shared in home.parents or home in shared.parents:
            raise RuntimeError(f"refusing to delete {home}: it is (or holds) the shared stack home")
        link = self.config.kafka_libs.parent
        if link.is_symlink():
            link.unlink()
        shutil.rmtree(home, ignore_errors=True)


def soak_stack(
    home: Path,
    kafka_port: int = DEFAULT_KAFKA_PORT,
    es_port: int = DEFAULT_ES_PORT,
    nices: Mapping[str, int] | None = None,
) -> SoakStack:
    return SoakStack(replace(soak_stack_config(home, kafka_port, es_port, nices)))
