"""CPU priority (POSIX nice) by role: on shared cores the alert path wins the CPU, search indexing waits.

On a co-located deployment (the suite, Kafka and Elasticsearch on a few cores) the processes compete for the CPU as
equals, and a feed the machine cannot carry whole starves the grader like every other process: alerts then fall
behind by minutes. Indexing may lag (its consumer group keeps its place and it catches up later, nothing is lost);
alerts may not. So the indexer processes run at a lower priority (nice 10 by default: the kernel's weight for nice
10 is about a tenth of nice 0's) and the alert path at the normal one. With CPU to spare the nice value changes
nothing.

The grader's index role (`grader-index`: the events index and the posts' event ids) is search indexing too and runs
at the indexers' priority. Elasticsearch is no longer on the alert path (the grade role publishes to Kafka only and
the index role writes Elasticsearch from there), but it stays at nice 0 by default: the console's searches read it,
and a starved indexer already sends fewer bulk requests. QF_STACK_ES_NICE can lower it where search may lag.

| variable                 | default | process                                            |
|--------------------------|---------|----------------------------------------------------|
| QF_SUITE_NICE_INDEXER    | 10      | every `indexer-N` of `qingfeng up --indexers N`, and `grader-index` |
| QF_SUITE_NICE_<ROLE>     | 0       | COLLECTOR, GRADER, COORDINATOR, PUBLISHER, GATEWAY |
| QF_STACK_ES_NICE         | 0       | Elasticsearch (its launcher and server JVM)        |
| QF_STACK_KAFKA_NICE      | 0       | the Kafka broker                                   |

Values are 0..19 (raising a process's nice needs no privilege, lowering it below its parent's does). A child is
started through ``nice -n`` so the value holds for every thread and child from the first instruction (setting it
after the start would race the JVM's first threads); the increment is counted from this process's own nice, so a
parent already at a raised nice gives its child the configured value, not more.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence

from qingfeng.cli._console import CliError

__all__ = ["DEFAULT_NICE", "NICE_MAX", "NICE_MIN", "SUITE_ROLES", "current_nice", "niced", "parse_nice", "suite_nice"]

NICE_MIN = 0
NICE_MAX = 19
# Roles that default to a lower priority; every other role runs at nice 0.
DEFAULT_NICE: Mapping[str, int] = {"indexer": 10, "elasticsearch": 0}
SUITE_ROLES = ("collector", "indexer", "grader", "coordinator", "publisher", "gateway")


def parse_nice(variable: str, raw: str | None, default: int) -> int:
    """The nice value in ``raw`` (``default`` when unset or empty); CliError naming ``variable`` otherwise."""
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise CliError(f"{variable}={raw!r} is not a whole number (a nice value {NICE_MIN}..{NICE_MAX})") from None
    if not NICE_MIN <= value <= NICE_MAX:
        raise CliError(f"{variable}={value} is outside {NICE_MIN}..{NICE_MAX} (0 normal, 19 lowest priority)")
    return value


def suite_nice(role: str, env: Mapping[str, str] | None = None) -> int:
    """The nice value of a suite role (SUITE_ROLES, or any process name) from QF_SUITE_NICE_<ROLE>, else its default."""
    env = os.environ if env is None else env
    variable = f"QF_SUITE_NICE_{role.upper().replace('-', '_')}"
    return parse_nice(variable, env.get(variable), DEFAULT_NICE.get(role, 0))


def current_nice(pid: int = 0) -> int | None:
    """The nice value of ``pid`` (0: this process), None when it is gone."""
    try:
        return os.getpriority(os.PRIO_PROCESS, pid)
    except (ProcessLookupError, PermissionError):
        return None


def niced(argv: Sequence[str], nice: int) -> list[str]:
    """``argv`` run at nice ``nice``: prefixed with ``nice -n <increment>`` when that is above this process's own."""
    if not NICE_MIN <= nice <= NICE_MAX:
        raise CliError(f"nice {nice} is outside {NICE_MIN}..{NICE_MAX}")
    increment = nice - os.getpriority(os.PRIO_PROCESS, 0)
    if increment <= 0:
        return list(argv)
    program = shutil.which("nice") or "/usr/bin/nice"
    return [program, "-n", str(increment), *argv]
