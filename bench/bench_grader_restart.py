"""The grader killed (SIGKILL) under load and restarted: when do alerts come again, and when are they back under 2 s?

    .venv/bin/python bench/bench_grader_restart.py [--rate 1000] [--duration 110] [--kill-at 60] [--pause 5]
                                                    [--horizon 120] [--standby AT]

Needs the local stack (Kafka at 127.0.0.1:19092; the grade role needs no Elasticsearch). Starts the grader
(``python -m services.grader``, role ``grade``, INFO logs, clustering horizon ``--horizon`` s) on topics and a SQLite
file of its own, produces the synthetic stream of ``bench_grader_latency.py`` at ``--rate`` posts/s for
``--duration`` s, kills the grader with SIGKILL ``--kill-at`` s after producing began, starts it again ``--pause`` s
later and waits until it has committed every post. Prints the age of the last checkpoint at the kill (what the
replay has to work off besides the time down), a timeline from the restarted grader's log (process start, build,
checkpoint load/decode/restore, alert log, order log, caught up with the replay's posts and CPU), the first alert
the restarted grader published, the post -> alert latency per ``--window`` s of alert arrival since the kill, and the
p99 of the posts produced while it was down and in the 30 s after it was healthy (recovered), as the soak reports
it. With ``--standby AT`` a second grade process over the same database and topics starts ``AT`` s after producing
began and follows the grader (``services/grader/standby.py``); the kill then hands over to it (healthy: it took the
lease) and the grader is not restarted: the same figures, for a warm standby instead of a restart. Everything it
created is deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_grader_latency as lat
from _paced import produce_paced
from qingfeng.kafka import ensure_topics
from qingfeng.v1 import event_pb2

from services.grader.app import topic_specs_for

# Log messages (their beginnings) that make the restart's timeline.
_MILESTONES = (
    "process started",
    "activated configured policy",
    "built in",
    "alert log read",
    "recovered",
    "grader starting",
    "caught up after seeking",
    "checkpoint:",
    "standby: following from",
    "standby: took",
)


def _spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "services.grader"], cwd=lat.ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _log_times(log_path: Path, prefix: str) -> list[float]:
    """Epoch seconds of the log lines whose message starts with ``prefix``."""
    out = []
    for raw in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if str(rec.get("message", "")).startswith(prefix):
            out.append(datetime.fromisoformat(rec["timestamp"]).timestamp())
    return out


def _p99_of_posts(alerts: list[tuple[float, event_pb2.Alert]], since: float, until: float) -> tuple[int, float]:
    """(alerts, p99 latency) of the alerts whose post was produced in [since, until) (graded_at is the post time)."""
    values = []
    for arrived, alert in alerts:
        posted = alert.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp()
        if since <= posted < until:
            values.append(arrived - posted)
    return len(values), (lat._pct(values, 0.99) if values else float("nan"))


def _timeline(log_path: Path, zero: float, until: float) -> list[str]:
    """The milestone lines of a grader log as "+seconds since ``zero``  message" (up to ``until`` s)."""
    lines = []
    checkpoints = 0
    for raw in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        msg = str(rec.get("message", ""))
        if not msg.startswith(_MILESTONES) and rec.get("severity", rec.get("level")) not in ("WARNING", "ERROR"):
            continue
        at = datetime.fromisoformat(rec["timestamp"]).timestamp() - zero
        if at > until:
            continue
        if msg.startswith("checkpoint:"):
            checkpoints += 1
            if checkpoints > 3:
                continue
        extra = ""
        if msg == "alert log read":
            extra = f" ({rec.get('alerts')} ids)"
        lines.append(f"  +{at:6.1f}s  {msg}{extra}")
    return lines


def _windows(alerts: list[tuple[float, event_pb2.Alert]], zero: float, width: float) -> list[str]:
    by: dict[int, list[float]] = {}
    for arrived, alert in alerts:
        if arrived < zero:
            continue
        latency = arrived - alert.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp()
        by.setdefault(int((arrived - zero) // width), []).append(latency)
    out = []
    for w in sorted(by):
        values = by[w]
        p50, p99 = lat._pct(values, 0.5), lat._pct(values, 0.99)
        out.append(f"  +{w * width:5.0f}..{(w + 1) * width:<4.0f}s  {len(values):5d} alerts   p50 {p50:6.2f}s   "
                   f"p99 {p99:6.2f}s   max {max(values):6.2f}s")  # fmt: skip
    return out


async def main(args: argparse.Namespace) -> int:
    run = uuid.uuid4().hex[:8]
    workdir = Path(tempfile.mkdtemp(prefix="qfbench-restart-"))
    args.batch_size = 0
    settings = lat._settings(args, run, workdir / "grader.db", lat._free_port())
    await ensure_topics(settings.kafka, topic_specs_for(settings))
    env = lat._env(settings)
    env.update({"QF_GRADER_LOG__LEVEL": "INFO", "QF_GRADER_HORIZON_S": str(args.horizon), "QF_GRADER_ROLE": "grade"})
    env.pop("QF_GRADER_CONSUMER__BATCH_SIZE", None)  # the grader's own default
    logs = [workdir / "grader-1.log", workdir / "grader-2.log"]
    process = _spawn(env, logs[0])
    standby: subprocess.Popen[bytes] | None = None
    try:
        await lat._wait_serving(settings.grpc.port)
        alerts: list[tuple[float, event_pb2.Alert]] = []
        ready, stop = asyncio.Event(), asyncio.Event()
        collector = asyncio.create_task(lat._collect_alerts(settings, alerts, ready, stop))
        await ready.wait()
        print(f"producing {args.rate:.0f} posts/s for {args.duration:.0f}s, horizon {args.horizon:.0f}s; kill -9 "
              f"at {args.kill_at:.0f}s, restart {args.pause:.0f}s later; load {os.getloadavg()[0]:.2f}",
              flush=True)  # fmt: skip
        stream = lat.Stream(stories_per_s=args.stories_per_s, lifetime_s=args.story_lifetime_s)
        producing = asyncio.create_task(
            produce_paced(settings.kafka, settings.topics.posts, args.rate, args.duration, stream.post, tick_s=0.005)
        )
        began = time.monotonic()
        if args.standby is not None:
            await asyncio.sleep(args.standby)
            standby_env = {**env, "QF_GRADER_GRPC__PORT": str(lat._free_port())}
            standby = _spawn(standby_env, logs[1])
        await asyncio.sleep(max(0.0, began + args.kill_at - time.monotonic()))
        process.kill()
        killed = time.time()
        process.wait()
        load_at_kill = os.getloadavg()[0]
        if args.standby is None:
            await asyncio.sleep(args.pause)
            restarted = time.time()
            process = _spawn(env, logs[1])
        else:
            restarted, process = killed, standby  # it takes over: nothing is restarted
        profiler = _profile(process.pid, args.profile, args.profile_s) if args.profile else None
        sent, _ = await producing
        deadline = time.monotonic() + 300
        committed = 0
        while time.monotonic() < deadline:
            committed = await lat._committed(settings)
            if committed >= sent:
                break
            await asyncio.sleep(0.2)
        drained = time.time()
        if profiler is not None:
            profiler.wait()
        await asyncio.sleep(2.0)
        stop.set()
        await collector
        load_end = os.getloadavg()[0]
    finally:
        for child in {process, standby} - {None}:
            assert child is not None
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        await lat._cleanup(settings)

    before = [a for a in alerts if a[0] < killed]
    before_lat = [t - a.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp() for t, a in before]
    after = [a for a in alerts if a[0] >= killed]
    print(f"produced {sent} posts; committed {committed}{'' if committed >= sent else ' (NOT all within 300 s)'}")
    print(f"before the kill: {len(before)} alerts, p99 {lat._pct(before_lat, 0.99):.2f}s; load {load_at_kill:.2f} at "
          f"the kill, {load_end:.2f} at the end")  # fmt: skip
    taken = [t for t in _log_times(logs[0], "checkpoint:") if t <= killed]
    print(f"last checkpoint before the kill: {killed - taken[-1]:.1f}s old ({len(taken)} taken in {args.kill_at:.0f}s)"
          if taken else "no checkpoint before the kill")  # fmt: skip
    print("timeline (seconds since the kill -9):")
    print(f"  +{restarted - killed:6.1f}s  " + ("grader started again" if args.standby is None else "(standby)"))
    print("\n".join(_timeline(logs[1], killed, drained - killed + 5)))
    if after:
        print(f"  +{after[0][0] - killed:6.1f}s  first alert after the kill")
    fresh = [a for a in alerts if a[0] >= restarted]
    if fresh:
        print(f"  +{fresh[0][0] - killed:6.1f}s  first alert after the restart")
    print(f"  +{drained - killed:6.1f}s  every post committed (the group's offsets at the end of the topic)")
    print(f"post -> alert latency by arrival, {args.window:.0f} s windows since the kill:")
    print("\n".join(_windows(alerts, killed, args.window)))
    healthy = _log_times(logs[1], "recovered" if args.standby is None else "standby: took")
    if healthy:
        n_down, p99_down = _p99_of_posts(alerts, killed, healthy[0])
        n_next, p99_next = _p99_of_posts(alerts, healthy[0], healthy[0] + 30)
        print(f"posts produced while down ({healthy[0] - killed:.1f}s to healthy): {n_down} alerts, p99 "
              f"{p99_down:.2f}s; in the 30 s after healthy: {n_next} alerts, p99 {p99_next:.2f}s")  # fmt: skip
    under = _first_good_window(alerts, killed, args.window)
    print(f"back under 2 s (p99 of a window, and every later one) from +{under:.0f}s after the kill"
          if under is not None else "p99 never back under 2 s")  # fmt: skip
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _first_good_window(alerts: list[tuple[float, event_pb2.Alert]], zero: float, width: float) -> float | None:
    by: dict[int, list[float]] = {}
    for arrived, alert in alerts:
        if arrived >= zero:
            latency = arrived - alert.grade.graded_at.ToDatetime(tzinfo=UTC).timestamp()
            by.setdefault(int((arrived - zero) // width), []).append(latency)
    good = None
    for w in sorted(by, reverse=True):
        if lat._pct(by[w], 0.99) > 2.0:
            break
        good = w * width
    return good


def _profile(pid: int, out: str, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy (in the venv) sampling the restarted grader from its start (collapsed stacks): where the replay's CPU
    goes."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(int(seconds)), "--format",
                             "raw", "--output", out, "--nonblocking"], stdout=subprocess.DEVNULL)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=110.0, help="seconds of producing (default 110)")
    parser.add_argument("--kill-at", type=float, default=60.0)
    parser.add_argument("--pause", type=float, default=5.0)
    parser.add_argument("--standby", type=float, metavar="AT", help="start a warm standby AT s in; no restart")
    parser.add_argument("--horizon", type=float, default=120.0, help="the grader's QF_GRADER_HORIZON_S")
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--stories-per-s", type=float, default=7.0)
    parser.add_argument("--story-lifetime-s", type=float, default=30.0)
    parser.add_argument("--profile", default="", metavar="PATH", help="py-spy the restarted grader into PATH")
    parser.add_argument("--profile-s", type=float, default=30.0, help="seconds of profiling (default 30)")
    parser.add_argument("--kafka", default=os.environ.get("QF_TEST_KAFKA", "127.0.0.1:19092"))
    parser.add_argument("--es", default=os.environ.get("QF_TEST_ES", "http://127.0.0.1:19200"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse_args())))
