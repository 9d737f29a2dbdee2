"""CPU used by each process of the soak, from /proc: who got the cores while the feed ran.

Every ``every_s`` the sampler reads utime+stime (all threads) of every live process in each named process group
(the suite processes and both servers lead their own session, so a group holds Elasticsearch's launcher and its
server JVM alike), of the soak's own process (the feeder and the alert observer are its threads), and the machine's
busy time from /proc/stat; and, from /proc/<pid>/schedstat, how long each group's main threads (a Python service's
event loop) ran and how long they were runnable but waited for a CPU: a loop that neither runs nor waits for a CPU
sleeps, waiting on I/O (another server), which no CPU priority can speed up. A process seen for the first time
counts its whole CPU time so far (a restarted one starts again at zero). ``cores(t0, t1)`` is the mean number of
cores each used in that span; "others" is the machine's busy time nobody of the soak used (other engineers'
benchmarks on the same cores).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from _periodic import PeriodicSampler

__all__ = ["CpuSampler", "format_cores", "format_loops", "group_cpu_ticks", "machine_ticks", "main_thread_sched"]

_TICK = os.sysconf("SC_CLK_TCK")
SELF = "soak (feeder, observer)"
OTHERS = "others (not the soak)"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields after the last ')' start at field 3.
    return stat[stat.rfind(")") + 2 :].split()


def group_cpu_ticks(pgids: Mapping[int, str]) -> dict[int, tuple[str, int]]:
    """pid -> (group name, utime+stime ticks) of every live process whose process group is in ``pgids``."""
    out: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or len(fields) < 13:
            continue
        name = pgids.get(int(fields[2]))
        if name is not None:
            out[int(entry.name)] = (name, int(fields[11]) + int(fields[12]))
    return out


def main_thread_sched(pid: int) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one) of the process's main thread since it started."""
    try:
        run, wait, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    except (OSError, ValueError):
        return None
    return int(run), int(wait)


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs since boot: busy leaves out idle and iowait."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return total - idle, total


@dataclass
class CpuSampler(PeriodicSampler):
    """Per-interval CPU seconds of each named group; ``groups`` is read at every sample (restarts change pids)."""

    groups: Callable[[], dict[str, int | None]]  # name -> process group id (None: not running now)
    every_s: float = 5.0
    # (monotonic end of interval, seconds long, {name: CPU seconds in the interval}, machine busy CPU seconds)
    intervals: list[tuple[float, float, dict[str, float], float]] = field(default_factory=list)
    # per interval (same order): {name: (seconds its main threads ran, seconds they waited for a CPU)}
    loops: list[dict[str, tuple[float, float]]] = field(default_factory=list)
    _last_sched: dict[int, tuple[int, int]] = field(default_factory=dict)
    _last: dict[int, int] = field(default_factory=dict)  # pid -> its CPU ticks at the last sample
    _prev: tuple[float, int] | None = None  # (monotonic, machine busy ticks) at the last sample
    thread_name = "cpu-sampler"
    sample_at_start = True  # the baseline: processes already running count from here

    def _sample(self) -> None:
        now = time.monotonic()
        pgids = {pgid: name for name, pgid in self.groups().items() if pgid is not None}
        ticks = group_cpu_ticks(pgids)
        own = _stat_fields(os.getpid())
        if own is not None:
            ticks[os.getpid()] = (SELF, int(own[11]) + int(own[12]))
        busy, _ = machine_ticks()
        used: dict[str, float] = {}
        loops: dict[str, tuple[float, float]] = {}
        sched: dict[int, tuple[int, int]] = {}
        for pid, (name, count) in ticks.items():
            used[name] = used.get(name, 0.0) + (count - self._last.get(pid, 0)) / _TICK
            if (now_sched := main_thread_sched(pid)) is not None:
                sched[pid] = now_sched
                run0, wait0 = self._last_sched.get(pid, (0, 0))
                run, wait = loops.get(name, (0.0, 0.0))
                loops[name] = (run + (now_sched[0] - run0) / 1e9, wait + (now_sched[1] - wait0) / 1e9)
        if self._prev is not None:
            began, busy_before = self._prev
            self.intervals.append((now, now - began, used, (busy - busy_before) / _TICK))
            self.loops.append(loops)
        self._last = {pid: count for pid, (_, count) in ticks.items()}
        self._last_sched = sched
        self._prev = (now, busy)

    def cores(self, t0: float, t1: float) -> dict[str, float]:
        """Mean cores used by each group over the intervals ending in (t0, t1]; "others" what the rest used."""
        spans = [i for i in self.intervals if t0 < i[0] <= t1]
        seconds = sum(i[1] for i in spans)
        if seconds <= 0:
            return {}
        out: dict[str, float] = {}
        busy = 0.0
        for _, _, used, machine in spans:
            busy += machine
            for name, cpu in used.items():
                out[name] = out.get(name, 0.0) + cpu
        ours = sum(out.values())
        out[OTHERS] = max(0.0, busy - ours)
        return {name: cpu / seconds for name, cpu in out.items()}

    def loop_shares(self, t0: float, t1: float) -> dict[str, tuple[float, float]]:
        """Each group's main threads over (t0, t1]: (share of the time running, share runnable, waiting for a CPU)."""
        out: dict[str, tuple[float, float]] = {}
        seconds = 0.0
        for (end, length, _, _), loops in zip(self.intervals, self.loops, strict=True):
            if t0 < end <= t1:
                seconds += length
                for name, (run, wait) in loops.items():
                    total = out.get(name, (0.0, 0.0))
                    out[name] = (total[0] + run, total[1] + wait)
        return {name: (run / seconds, wait / seconds) for name, (run, wait) in out.items()} if seconds > 0 else {}


def format_loops(shares: Mapping[str, tuple[float, float]], names: tuple[str, ...]) -> str:
    """``grader ran 3 %, waited for a CPU 1 %, slept 96 %`` for each of ``names`` (the rest: sleeping on I/O)."""
    return "; ".join(
        f"{name} ran {run:.0%}, waited for a CPU {wait:.0%}, slept {max(0.0, 1 - run - wait):.0%}"
        for name in names
        if name in shares
        for run, wait in [shares[name]]
    )


def format_cores(cores: Mapping[str, float], cpus: int) -> str:
    """``name 0.52`` per group, largest first, then the machine's total busy as cores of ``cpus``."""
    shown = ", ".join(f"{name} {value:.2f}" for name, value in sorted(cores.items(), key=lambda kv: -kv[1]))
    return f"{shown}; busy {sum(cores.values()):.2f} of {cpus} cores"
