"""The local Elasticsearch node: unpack the integ-test zip, run it as an unprivileged user, probe it.

Elasticsearch refuses to run as root, so as root the node runs as the system user `qingfeng-es`,
which must own the install (it writes a keystore into config/) and its data, logs and temp dirs.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from qingfeng.cli._console import CliError, say
from qingfeng.cli._process import read_pid, spawn_detached
from qingfeng.cli.stack_config import HEAP_MB, StackConfig

__all__ = [
    "CLUSTER_NAME",
    "argv",
    "ensure_unpacked",
    "installed",
    "log_files",
    "prepare_runtime",
    "probe",
    "running_pid",
    "start",
    "version_of",
]

CLUSTER_NAME = "qingfeng-stack"
_COMPLETE = ".complete"


def installed(config: StackConfig) -> bool:
    """True once the zip has been fully unpacked into the stack home."""
    return (config.es_install / _COMPLETE).is_file()


def ensure_unpacked(config: StackConfig) -> None:
    """Unpack the downloaded zip (keeping the executable bits zipfile would drop), then remove the copy.

    Maven keeps the original in ~/.m2, so the zip in the stack home is only a transfer file.
    """
    if installed(config):
        return
    if not config.es_zip.is_file():
        raise CliError(f"{config.es_zip} is missing: Maven did not fetch the Elasticsearch zip")
    say("stack", f"unpacking {config.es_zip.name}")
    staging = config.home / ".unpack"
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(config.es_zip) as archive:
        for member in archive.infolist():
            target = Path(archive.extract(member, staging))
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    unpacked = staging / f"elasticsearch-{config.es_version}"
    if not unpacked.is_dir():
        raise CliError(f"{config.es_zip} does not contain elasticsearch-{config.es_version}/")
    shutil.rmtree(config.es_install, ignore_errors=True)
    unpacked.rename(config.es_install)
    shutil.rmtree(staging, ignore_errors=True)
    (config.es_install / _COMPLETE).touch()
    config.es_zip.unlink()


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    say("stack", f"creating system user {name} (Elasticsearch refuses to run as root)")
    # root's PATH may lack /usr/sbin (e.g. `su` without `-`).
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    result = subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
        check=False,
    )
    # Exit 9: another `stack up` created it meanwhile.
    if result.returncode not in (0, 9):
        raise CliError(f"useradd {name} failed (exit {result.returncode}): {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(parent) / name, uid, gid, follow_symlinks=False)


def _check_traversable(path: Path) -> None:
    """Every directory above `path` must let others through, or the ES user cannot reach its files."""
    for parent in path.parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise CliError(
                f"{parent} is not traversable by other users, so {path} is out of reach of the Elasticsearch "
                "user: choose another QF_STACK_HOME (the default for root is /var/lib/qingfeng-stack)"
            )


def _runtime_dirs(config: StackConfig) -> list[Path]:
    return [config.es_runtime / name for name in ("data", "logs", "tmp")]


def prepare_runtime(config: StackConfig) -> None:
    """Create data/logs/tmp; as root, create the ES user and give it the install and those directories."""
    for directory in _runtime_dirs(config):
        directory.mkdir(parents=True, exist_ok=True)
    if config.es_user is None:
        return
    user = _ensure_user(config.es_user)
    _check_traversable(config.es_install)
    for path in (config.home, config.es_runtime):
        path.chmod(path.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    # Recursive chown only when ownership is wrong (first start, or a home used before by another user).
    if config.es_install.stat().st_uid != user.pw_uid:
        _chown_tree(config.es_install, user.pw_uid, user.pw_gid)
    if any(path.stat().st_uid != user.pw_uid for path in [config.es_runtime, *_runtime_dirs(config)]):
        _chown_tree(config.es_runtime, user.pw_uid, user.pw_gid)


def log_files(config: StackConfig) -> list[Path]:
    """Its stdout (launcher and JVM errors) and the node's own log."""
    return [config.logs_dir / "elasticsearch.out", config.es_runtime / "logs" / f"{CLUSTER_NAME}.log"]


def _pid_file(config: StackConfig) -> Path:
    return config.run_dir / "elasticsearch.pid"


def argv(config: StackConfig) -> list[str]:
    """bin/elasticsearch with the stack's settings: single node, loopback only, plain HTTP without security."""
    settings = {
        "cluster.name": CLUSTER_NAME,
        "node.name": f"{CLUSTER_NAME}-0",
        "discovery.type": "single-node",
        "network.host": "127.0.0.1",
        "http.port": str(config.es_port),
        "transport.port": str(config.es_transport_port),
        "path.data": str(config.es_runtime / "data"),
        "path.logs": str(config.es_runtime / "logs"),
        # The integ-test zip does ship x-pack-security, and on first start it auto-configures TLS and passwords
        # (HTTPS with no known password). Setting this explicitly both disables security and skips that step.
        "xpack.security.enabled": "false",
        # A test machine's disk may be fuller than production watermarks allow; never go read-only for that.
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        # Tests clean up with wildcard deletes of their own test indices.
        "action.destructive_requires_name": "false",
    }
    command = [str(config.es_install / "bin" / "elasticsearch")]
    for key, value in settings.items():
        command += ["-E", f"{key}={value}"]
    return command


def running_pid(config: StackConfig) -> int | None:
    """The pid (and process group) of the node this stack home started, if it is still alive."""
    return read_pid(_pid_file(config), marker="elasticsearch")


def start(config: StackConfig) -> int:
    """Start the node detached (its own session), as the ES user when running as root."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": str(config.es_runtime),
        "ES_JAVA_HOME": str(config.java_home),
        "ES_JAVA_OPTS": f"-Xms{HEAP_MB}m -Xmx{HEAP_MB}m",
        "ES_TMPDIR": str(config.es_runtime / "tmp"),
    }
    return spawn_detached(
        argv(config),
        log_file=log_files(config)[0],
        pid_file=_pid_file(config),
        cwd=config.es_runtime,
        env=env,
        user=config.es_user,
        nice=config.es_nice,
    )


def _get_json(url: str, *, timeout_s: float) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body: dict[str, Any] = json.load(response)
        return body


def probe(config: StackConfig, *, timeout_s: float = 5.0) -> str | None:
    """None when the cluster is at least yellow, else why it is not healthy."""
    url = f"{config.es_url}/_cluster/health?wait_for_status=yellow&timeout={int(timeout_s)}s"
    try:
        health = _get_json(url, timeout_s=timeout_s + 2)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} from {url}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if health.get("timed_out") or health.get("status") not in ("green", "yellow"):
        return f"cluster status {health.get('status')!r}"
    return None


def version_of(config: StackConfig) -> str | None:
    """The node's version, or None if it does not answer.

    Not from `GET /`: the integ-test zip lacks the module that serves it (405), so ask the nodes info API.
    """
    try:
        info = _get_json(f"{config.es_url}/_nodes/_local?filter_path=nodes.*.version", timeout_s=5)
    except (OSError, ValueError):
        return None
    versions = {str(node.get("version")) for node in info.get("nodes", {}).values()}
    return versions.pop() if len(versions) == 1 else None
