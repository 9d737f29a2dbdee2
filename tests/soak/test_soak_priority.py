"""The soak's processes at the CPU priority of their role, and its per-process CPU sampler (bench/_soak_*.py).

Stand-in processes (a sleeping module, a busy loop), never the suite or the servers: this tests the harness.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _soak_cpu import OTHERS, SELF, CpuSampler, format_loops  # noqa: E402
from _soak_stack import soak_stack_config  # noqa: E402
from _soak_suite import SuiteProcess, suite_processes  # noqa: E402


def _nice_in_stat(pid: int) -> int:
    """Field 19 of /proc/<pid>/stat once Python runs: until `nice` has exec()ed it, the pid is `nice` itself."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] != sys.executable.encode():
        assert time.monotonic() < deadline, "nice never exec()ed the program"
        time.sleep(0.02)
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rfind(")") + 2 :].split()[16])


def test_each_incarnation_of_a_suite_process_runs_at_its_nice(tmp_path: Path) -> None:
    (tmp_path / "qf_soak_sleeper.py").write_text("import time\ntime.sleep(60)\n")
    own = os.getpriority(os.PRIO_PROCESS, 0)
    target = min(19, own + 10)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    process = SuiteProcess("indexer", "qf_soak_sleeper", 1, env, tmp_path, tmp_path / "ca.pem", nice=target)
    try:
        for _ in range(2):  # started again after a kill -9: the same priority
            process.start()
            assert process.pid is not None
            assert _nice_in_stat(process.pid) == target
            process.kill9()
    finally:
        process.stop(timeout_s=5)


def test_the_soak_gives_the_indexer_the_lower_priority_and_the_servers_theirs(tmp_path: Path) -> None:
    procs = suite_processes(tmp_path / "state", "127.0.0.1:1", "http://127.0.0.1:2")
    niced = {"collector": 0, "indexer": 10, "grader": 0, "grader-index": 10}  # the grader's index role: indexing
    assert {name: p.nice for name, p in procs.items()} == niced
    off = suite_processes(tmp_path / "state", "127.0.0.1:1", "http://127.0.0.1:2", nices={})
    assert {p.nice for p in off.values()} == {0}
    config = soak_stack_config(tmp_path / "home", 29092, 29200, {"kafka": 3, "elasticsearch": 10})
    assert (config.kafka_nice, config.es_nice) == (3, 10)
    assert soak_stack_config(tmp_path / "home").es_nice == 0


def test_the_cpu_sampler_counts_the_cpu_time_a_process_group_used() -> None:
    # The stand-in spins until it has used 0.6 s of CPU, whatever the load, then idles so the last sample sees it.
    spin = "import time\nwhile time.process_time() < 0.6: pass\ntime.sleep(1.5)\n"
    busy = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
    sampler = CpuSampler(lambda: {"busy": busy.pid if busy.poll() is None else None}, every_s=0.2)
    began = time.monotonic()
    sampler.start()
    busy.wait(timeout=60)
    sampler.stop()
    used = sum(interval[2].get("busy", 0.0) for interval in sampler.intervals)
    assert 0.55 <= used <= 0.9  # 0.6 s spinning plus the interpreter's start, to a clock tick
    cores = sampler.cores(began, time.monotonic())
    assert 0 < cores["busy"] <= 1.05
    assert cores[SELF] < 0.5
    assert cores[OTHERS] >= 0.0


def test_the_sampler_tells_a_sleeping_loop_from_a_running_one() -> None:
    spin = "import time\nwhile time.process_time() < 0.5: pass\ntime.sleep(1.5)\n"
    busy = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
    idle = subprocess.Popen(["sleep", "3"], start_new_session=True)
    sampler = CpuSampler(lambda: {"busy": busy.pid, "idle": idle.pid}, every_s=0.2)
    began = time.monotonic()
    sampler.start()
    busy.wait(timeout=60)
    sampler.stop()
    idle.kill()
    idle.wait()
    shares = sampler.loop_shares(began, time.monotonic())
    run_seconds = sum(loops["busy"][0] for loops in sampler.loops if "busy" in loops)
    assert 0.45 <= run_seconds <= 0.9  # its main thread ran its 0.5 s of spinning (plus start-up)
    assert shares["idle"][0] < 0.05 and shares["idle"][1] < 0.05  # `sleep` neither runs nor waits for a CPU
    assert "slept" in format_loops(shares, ("busy", "idle"))
