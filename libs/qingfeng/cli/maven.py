"""Fetch the stack's Java artifacts with Maven (deploy/stack/pom.xml) into the stack home.

Maven caches downloads in ~/.m2, so only the first run on a machine touches the network; later runs
skip Maven entirely once the copies in the stack home are marked complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import deque

from qingfeng.cli._console import CliError, say
from qingfeng.cli.stack_config import StackConfig

__all__ = ["fetch_artifacts", "kafka_libs_ready"]

_COMPLETE = ".complete"


def kafka_libs_ready(config: StackConfig) -> bool:
    """True once copy-dependencies has finished for this Kafka version."""
    return (config.kafka_libs / _COMPLETE).is_file()


def _maven_goals(config: StackConfig, *, need_es_zip: bool) -> list[str]:
    goals = []
    if not kafka_libs_ready(config):
        goals.append("dependency:copy-dependencies")
    if need_es_zip and not config.es_zip.is_file():
        # The execution id in the POM carries the artifact coordinates and the output directory.
        goals.append("dependency:copy@elasticsearch")
    return goals


def _progress_line(line: str) -> str | None:
    """A short progress line for a real download of a jar or zip; None for the rest of Maven's chatter."""
    for verb in ("Downloading", "Downloaded"):
        prefix = f"[INFO] {verb} from "
        if not line.startswith(prefix):
            continue
        url, _, rest = line.partition(" (")
        name = url.rsplit("/", 1)[-1]
        if verb == "Downloading" and name.endswith(".zip"):
            return f"downloading {name} (about 100 MB) ..."
        size = rest.split(" at ")[0].rstrip(")")
        # Maven's own plugins arrive as dozens of small jars: show only what is big enough to take a while.
        if verb == "Downloaded" and name.endswith((".jar", ".zip")) and size.endswith(" MB"):
            return f"downloaded {name} ({size})"
    return None


def _heartbeat(done: threading.Event, *, every_s: float = 15.0) -> None:
    started = time.monotonic()
    while not done.wait(every_s):
        say("maven", f"still resolving ({time.monotonic() - started:.0f}s)")


def fetch_artifacts(config: StackConfig, *, need_es_zip: bool) -> None:
    """Resolve the Kafka classpath and (if `need_es_zip`) the Elasticsearch zip; no-op when both are present."""
    goals = _maven_goals(config, need_es_zip=need_es_zip)
    if not goals:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise CliError("Maven (mvn) is not installed: apt-get install maven")
    config.home.mkdir(parents=True, exist_ok=True)
    argv = [
        mvn,
        "-B",
        "-Dstyle.color=never",
        "-f",
        str(config.pom),
        f"-Dqf.stack.out={config.home}",
        *goals,
    ]
    say("stack", f"resolving {', '.join(goals)} with Maven (the first run downloads about 150 MB into ~/.m2)")
    env = {**os.environ, "JAVA_HOME": str(config.java_home)}
    recent: deque[str] = deque(maxlen=60)
    done = threading.Event()
    # Maven prints nothing while one large file downloads: say it is still alive every few seconds.
    heartbeat = threading.Thread(target=_heartbeat, args=(done,), daemon=True)
    heartbeat.start()
    try:
        with subprocess.Popen(
            argv, cwd=config.home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.rstrip()
                recent.append(line)
                progress = _progress_line(line)
                if progress:
                    say("maven", progress)
            returncode = process.wait()
    finally:
        done.set()
        heartbeat.join()
    if returncode != 0:
        output = "\n".join(f"    {line}" for line in recent)
        raise CliError(f"Maven failed (exit {returncode}): {' '.join(argv)}\n{output}")
    if "dependency:copy-dependencies" in goals:
        (config.kafka_libs / _COMPLETE).touch()
