"""Soak with faults: the suite under a steady post rate while its processes are killed and its servers restarted.

    .venv/bin/python bench/soak.py [--duration 600] [--rate 2315] [--short] [--keep] [--no-priority]
                                   [--faults kafka,es] [--logs DIR]

Starts a Kafka broker and an Elasticsearch node of its own (ports 29092/29200, a stack home of its own, from the
project's stack code; the shared stack on 19092/19200 is never touched), then the collector (role ``fetch``, serving
ImportPosts), a separate indexer (``QF_COLLECTOR_ROLE=index``) and the grader as subprocesses with TLS and signed
identities, each at the CPU priority of its role as `qingfeng up` and `qingfeng stack up` give it (the indexer at
nice 10, the rest at 0; ``--indexer-nice``/``--es-nice`` change them, ``--no-priority`` runs all at 0; see
qingfeng.cli.priority). The shared Weibo posts are replayed through ImportPosts (signed ``ops-import`` credential, as
`qingfeng import --collector` does) at ``--rate`` posts/s with fresh ids, for ``--duration`` s. Meanwhile, in turn:
kill -9 the collector, the indexer, the grader (each started again after ``--kill-pause`` s), restart the broker,
restart Elasticsearch. Afterwards, once the indexer and the grader have caught up: every accepted post must be in
Elasticsearch exactly once, every alert appear once per level change, no event exist twice, the post -> alert p99
stay within 2 s (and be back under 2 s within 30 s of each restart), and each process's RSS grow by < 10 % after
warm-up. One table prints each target, met or missed by how much. ``--short`` is the CI form (60 s, 400 posts/s,
one fault of each kind), run by tests/soak/test_soak_short.py. ``--faults`` runs only some of the faults (names:
collector, indexer, grader, kafka, es), spread evenly over the run, to look at one at a time; ``--logs DIR`` copies
the processes' and the servers' logs there before the clean-up. The report also gives each process's share of the
cores (from /proc) and how fast the indexer and the grader committed posts while the feed ran. Exit code 0 when no
post was lost, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for path in (str(ROOT), str(BENCH)):
    if path not in sys.path:
        sys.path.insert(0, path)

# First, before a module below imports grpc: grpcio's fork handlers off (libs/qingfeng/__init__.py). With them on, the
# Elasticsearch the soak restarts (started as another user: a fork, not a vfork) once aborted before its exec.
import qingfeng  # noqa: E402, F401, I001

from _periodic import PeriodicSampler  # noqa: E402
from _soak_cpu import CpuSampler, format_cores, format_loops  # noqa: E402
from _soak_feed import Feeder, FeedStats, load_rows  # noqa: E402
from _soak_observe import Observer, audit_elasticsearch, es_post_count  # noqa: E402
from _soak_report import (  # noqa: E402
    Fault,
    Verdict,
    event_id_check,
    first_copies,
    format_report,
    from_kafka,
    judge,
    latency_windows,
    memory_growth,
    rss_series,
)
from _soak_stack import DEFAULT_ES_PORT, DEFAULT_KAFKA_PORT, SoakStack, soak_stack  # noqa: E402
from _soak_suite import (  # noqa: E402
    STANDBY,
    RssSampler,
    SuiteProcess,
    grader_index_lag,
    group_offsets,
    suite_processes,
)
from qingfeng.cli._console import CliError  # noqa: E402
from qingfeng.cli._process import stop_group  # noqa: E402
from qingfeng.cli.priority import DEFAULT_NICE, parse_nice  # noqa: E402
from qingfeng.kafka import POSTS  # noqa: E402

__all__ = ["FAULTS", "SoakOptions", "SoakResult", "run_soak"]

# The order of the faults; each starts at its share of the duration (the later ones wait for the earlier).
FAULTS = ("kill -9 collector", "kill -9 indexer", "kill -9 grader", "restart kafka", "restart elasticsearch")
# Short names for --faults, in FAULTS' order.
FAULT_NAMES = {"collector": FAULTS[0], "indexer": FAULTS[1], "grader": FAULTS[2], "kafka": FAULTS[3], "es": FAULTS[4]}
# The processes whose event loop the report shows (running, waiting for a CPU, asleep).
LOOPS = ("collector", "indexer", "grader", STANDBY)
# When a standby grader starts (--standby, the CI form), as a share of the duration: before the grader's kill.
STANDBY_AT = 0.20


@dataclass(frozen=True)
class SoakOptions:
    duration_s: float = 600.0
    rate: float = 2315.0
    streams: int = 2
    chunk: int = 500
    # Lines per ImportPosts message, as `qingfeng import` batches them (1: one message per line, as before).
    batch_lines: int = 50
    warmup_s: float = 60.0
    kill_pause_s: float = 3.0
    # Start of each fault as a share of the duration; the last incarnations then live long enough for memory.
    fault_at: tuple[float, ...] = (0.10, 0.18, 0.26, 0.36, 0.48)
    window_s: float = 30.0
    drain_s: float = 180.0
    partitions: int = 3
    kafka_port: int = DEFAULT_KAFKA_PORT
    es_port: int = DEFAULT_ES_PORT
    data: Path = field(default_factory=lambda: Path(os.environ.get("QF_SHARED_DATA", ROOT.parent / "shared" / "data")))
    keep: bool = False
    # The grader's QF_GRADER_HORIZON_S (None: its default, 7 days). Its memory grows with every post until the
    # horizon is full, so the memory check only tells a leak from that growth with a horizon the run outlasts.
    grader_horizon_s: float | None = None
    # CPU priority (nice) of the indexer and of Elasticsearch; the collector, the grader and Kafka run at 0.
    indexer_nice: int = DEFAULT_NICE["indexer"]
    es_nice: int = DEFAULT_NICE["elasticsearch"]
    # The faults to inject (a subset of FAULTS, in its order) and, with ``fault_at``, when.
    faults: tuple[str, ...] = FAULTS
    # Where to copy the processes' and the servers' logs before the clean-up (None: not kept unless ``keep``).
    logs: Path | None = None
    # A restarted server stays down this long before it is started again (0: an operator's quick restart). Longer
    # than the clients' request timeout (30 s), an outage fails what waits on it: the grader recovers from its
    # checkpoint, the collector answers UNAVAILABLE.
    down_s: float = 0.0
    # A warm standby grader (services/grader/standby.py) beside the grader, started at this share of the duration
    # (after a 120 s horizon has filled, so its memory baseline is a full state's); None: no standby. With one, the
    # grader's kill -9 hands over to the standby (healed when it serves), and the killed grader comes back as the
    # next standby. Off in the 10-minute form: following costs the standby about what grading costs the leader
    # (0.3 of a core at 2,315 posts/s), which two cores already busy with the suite do not have (2026-12-01 14:04:
    # every process fell behind). On in the CI form (400 posts/s), where it checks the takeover under a real kill -9.
    standby_at: float | None = None

    def __post_init__(self) -> None:
        if len(self.fault_at) != len(self.faults):
            raise ValueError(f"{len(self.faults)} faults but {len(self.fault_at)} start shares (fault_at)")
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}: choose among {list(FAULTS)}")

    @classmethod
    def short(cls, **overrides: object) -> SoakOptions:
        """The CI form: one minute at a rate two shared cores carry, one fault of each kind."""
        base: dict[str, object] = {
            "duration_s": 60.0, "rate": 400.0, "warmup_s": 15.0, "fault_at": (0.05, 0.15, 0.25, 0.35, 0.5),
            "window_s": 10.0, "drain_s": 150.0, "kill_pause_s": 2.0, "standby_at": STANDBY_AT,
        }  # fmt: skip
        return cls(**{**base, **overrides})  # type: ignore[arg-type]


@dataclass
class SoakResult:
    verdict: Verdict
    feed: FeedStats
    faults: list[Fault]
    report: str
    drained: bool


def _say(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _stack_home(tag: str) -> Path:
    base = Path("/var/lib") if os.geteuid() == 0 else Path.home() / ".cache"
    return base / "qingfeng-soak" / tag


def _fault(name: str, stack: SoakStack, procs: dict[str, SuiteProcess], pause_s: float, down_s: float = 0.0) -> Fault:
    began = time.time()
    standby = procs.get(STANDBY)
    if name == "kill -9 grader" and standby is not None and standby.pid is not None:
        # The standby takes the lease the moment the leader dies: healed when it serves; the killed grader comes
        # back after the pause as the next standby (it follows, so it never answers SERVING).
        procs["grader"].kill9()
        standby.wait_serving()
        healed = time.time()
        _say(f"{name}: the standby leads after {healed - began:.1f} s")
        time.sleep(pause_s)
        _start_standby(procs["grader"])  # the next fault waits until it follows, as it waits for a restart
        return Fault(name, began, healed)
    if name.startswith("kill -9 "):
        process = procs[name.removeprefix("kill -9 ")]
        process.kill9()
        time.sleep(pause_s)
        process.start()
        process.wait_serving()
    else:
        pid = stack.kafka_pid if name == "restart kafka" else stack.es_pid
        if down_s > 0 and pid is not None:
            stop_group(pid, timeout_s=60.0)
            _say(f"{name}: stopped, down for {down_s:.0f} s")
            time.sleep(down_s)
        if name == "restart kafka":
            stack.restart_kafka()
        else:
            stack.restart_es()
    fault = Fault(name, began, time.time())
    _say(f"{name}: healthy again after {fault.healthy - fault.began:.1f} s")
    return fault


def _start_standby(process: SuiteProcess, timeout_s: float = 120.0) -> None:
    """Start the standby and wait until it follows the grader (its log says so), or fail with its log."""
    process.start()
    started = time.monotonic()
    while "standby: following from" not in process.log_tail(20_000):
        if process.pid is None or time.monotonic() - started > timeout_s:
            raise RuntimeError(f"the standby grader does not follow:\n{process.log_tail()}")
        time.sleep(0.3)
    _say(f"{process.name} follows the grader after {time.monotonic() - started:.1f} s (pid {process.pid})")


def _inject(
    options: SoakOptions, stack: SoakStack, procs: dict[str, SuiteProcess], began: float, out: list[Fault]
) -> None:
    """The faults in order, each at its share of the duration or when the one before has healed, whichever is later;
    the standby started at its share."""
    steps = list(zip(options.faults, options.fault_at, strict=True))
    if options.standby_at is not None and STANDBY in procs:
        steps = sorted([*steps, (STANDBY, options.standby_at)], key=lambda step: step[1])
    for name, share in steps:
        time.sleep(max(0.0, began + share * options.duration_s - time.monotonic()))
        if name == STANDBY:
            _start_standby(procs[STANDBY])
            continue
        out.append(_fault(name, stack, procs, options.kill_pause_s, options.down_s))


async def _lag(bootstrap: str, group: str) -> int | None:
    """Records of the posts topic the group has not committed yet (None when Kafka does not answer)."""
    offsets = await _offsets(bootstrap, group)
    return None if offsets is None else max(0, offsets[0] - offsets[1])


async def _offsets(bootstrap: str, group: str) -> tuple[int, int] | None:
    """(end offsets, offsets the group committed) summed over the posts topic (None when Kafka does not answer)."""
    return await group_offsets(bootstrap, group, (POSTS,))


@dataclass
class LagSampler(PeriodicSampler):
    """Every ``every_s``: records of the posts topic not yet committed by the indexer and by the grader."""

    bootstrap: str
    every_s: float = 10.0
    # (time.time(), the posts topic's end, committed by the indexer, by the grader): None when Kafka did not answer
    samples: list[tuple[float, int | None, int | None, int | None]] = field(default_factory=list)
    thread_name = "lag-sampler"

    def _sample(self) -> None:
        indexer, grader = (asyncio.run(_offsets(self.bootstrap, g)) for g in ("collector-indexer", "grader"))
        end = indexer[0] if indexer is not None else grader[0] if grader is not None else None
        self.samples.append((time.time(), end, indexer[1] if indexer else None, grader[1] if grader else None))

    def near(self, at: float) -> str:
        before = [s for s in self.samples if s[0] <= at]
        if not before:
            return ""
        _, end, indexer, grader = before[-1]

        def lag(done: int | None) -> str:
            return "?" if end is None or done is None else str(max(0, end - done))

        return f"lag: indexer {lag(indexer)}, grader {lag(grader)}"

    def rates(self, t0: float, t1: float) -> str:
        """Posts per second produced, committed by the indexer and by the grader between the samples nearest t0, t1."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1 and None not in s]
        if len(inside) < 2:
            return "too few lag samples"
        (a, *first), (b, *last) = inside[0], inside[-1]
        per_s = [(y - x) / (b - a) for x, y in zip(first, last, strict=True)]  # type: ignore[operator]
        return (
            f"produced {per_s[0]:,.0f} posts/s, indexer committed {per_s[1]:,.0f}/s, grader committed "
            f"{per_s[2]:,.0f}/s (t={a - t0:.0f}..{b - t0:.0f} s of the feed)"
        )


def _drain(options: SoakOptions, stack: SoakStack, observer: Observer, feed: FeedStats) -> bool:
    """Wait until the indexer and the grader have committed the whole posts topic and ES holds what was produced."""
    deadline = time.monotonic() + options.drain_s
    while time.monotonic() < deadline:
        lags = [asyncio.run(_lag(stack.bootstrap, group)) for group in ("collector-indexer", "grader")]
        # The grader's index role: events and post event ids in ES (what the audit reads) once it has caught up.
        lags.append(asyncio.run(grader_index_lag(stack.bootstrap)))
        try:
            indexed = es_post_count(stack.es_url)
        except Exception:
            indexed = -1
        if lags == [0, 0, 0] and indexed >= len(observer.produced):
            return True
        _say(f"draining: indexer lag {lags[0]}, grader lag {lags[1]}, grader-index lag {lags[2]}, "
             f"ES {indexed:,} / {len(observer.produced):,}")  # fmt: skip
        time.sleep(5)
    return False


def _feed_line(feed: FeedStats) -> str:
    span = (feed.last_answered or 0) - (feed.first_sent or 0)
    rate = feed.answered_lines / span if span > 0 else 0.0
    failures = ", ".join(f"{code} {n}" for code, n in sorted(feed.failures.items())) or "none"
    return (
        f"fed {feed.answered_lines:,} lines in {span:.0f} s = {rate:,.0f} posts/s answered: accepted "
        f"{feed.accepted:,}, duplicate {feed.duplicate:,}, rejected {feed.rejected:,}; failed calls (re-sent): "
        f"{failures}; unanswered {feed.unanswered_lines:,}; longest time without an answer {feed.longest_gap_s:.0f} s"
    )


def run_soak(options: SoakOptions) -> SoakResult:
    tag = uuid.uuid4().hex[:6]
    state = Path(tempfile.mkdtemp(prefix=f"qfsoak-{tag}-"))
    stack = soak_stack(
        _stack_home(tag), options.kafka_port, options.es_port, {"kafka": 0, "elasticsearch": options.es_nice}
    )
    procs: dict[str, SuiteProcess] = {}
    sampler: RssSampler | None = None
    observer: Observer | None = None
    lag: LagSampler | None = None
    cpu: CpuSampler | None = None
    try:
        rows = load_rows(options.data / "weibo_posts.jsonl")
        _say(f"stack home {stack.config.home}: starting Kafka {stack.bootstrap} and Elasticsearch {stack.es_url}")
        _say(f"stack healthy after {stack.up():.0f} s")
        procs = suite_processes(
            state,
            stack.bootstrap,
            stack.es_url,
            partitions=options.partitions,
            grader_horizon_s=options.grader_horizon_s,
            nices={"indexer": options.indexer_nice},
            standby=options.standby_at is not None,
        )
        serving = {name: p for name, p in procs.items() if name != STANDBY}
        for process in serving.values():
            process.start()
        for process in serving.values():
            _say(
                f"{process.name} SERVING after {process.wait_serving():.1f} s (pid {process.pid}, nice {process.nice})"
            )
        observer = Observer(stack.bootstrap)
        observer.start()
        sampler = RssSampler(procs)
        sampler.start()
        lag = LagSampler(stack.bootstrap)
        lag.start()
        cpu = CpuSampler(
            lambda: {
                **{name: p.pid for name, p in procs.items()},
                "kafka": stack.kafka_pid,
                "elasticsearch": stack.es_pid,
            }
        )
        cpu.start()
        feeder = Feeder(rows, address=f"127.0.0.1:{procs['collector'].port}", ca=procs["collector"].ca, state=state,
                        run_tag=tag, rate=options.rate, streams=options.streams, chunk=options.chunk,
                        batch_lines=options.batch_lines)  # fmt: skip
        chosen = ", ".join(options.faults) or "none"
        _say(f"feeding {options.rate:,.0f} posts/s for {options.duration_s:.0f} s; faults: {chosen}")
        began = time.time()
        began_mono = time.monotonic()
        feeder.start()
        faults: list[Fault] = []
        injector = threading.Thread(
            target=_inject, args=(options, stack, procs, began_mono, faults), name="faults", daemon=True
        )
        injector.start()
        time.sleep(max(0.0, began_mono + options.duration_s - time.monotonic()))
        feeder.stop_feeding()
        fed_until = (time.time(), time.monotonic())
        # A restart still under way when the feed stops (Elasticsearch on a busy machine) is waited for.
        injector.join()
        if len(faults) < len(options.faults):
            raise RuntimeError(f"only {len(faults)} of {len(options.faults)} faults completed; see the log above")
        feeder.finish(grace_s=90.0)
        _say(_feed_line(feeder.stats))
        drained = _drain(options, stack, observer, feeder.stats)
        lag.stop()
        time.sleep(3.0)  # the last alerts of the last batch
        sampler.stop()
        cpu.stop()
        ended = time.monotonic()
        lives = {name: (p.incarnations[-1].pid, p.incarnations[-1].started, ended) for name, p in procs.items()}
        memory = memory_growth(sampler.samples, lives, options.warmup_s)
        observer.stop()
        _say("auditing Elasticsearch")
        audit = audit_elasticsearch(stack.es_url)
        verdict = judge(feeder.stats.accepted_ids, observer.produced, audit.post_copies, observer.alerts,
                        audit.events, audit.events_sharing_posts, faults, time.time(), memory,
                        observer.post_arrival)  # fmt: skip
        report = _report(options, verdict, feeder.stats, observer, began, faults, drained, lag)
        report += "\n" + _cpu_report(cpu, lag, (began, began_mono), fed_until)
        if audit.shared_sample:
            report += "\nevents sharing a representative post (first): " + "; ".join(
                f"{post} in {', '.join(events)}" for post, events in audit.shared_sample
            )
        report += "\n" + event_id_check(observer.last_event, audit.post_event_ids).line()
        report += "\nRSS MiB every 60 s from the feed's start (every incarnation):\n" + "\n".join(
            f"  {name}: {rss_series(sampler.samples, name, began_mono, 60.0)}" for name in procs
        )
        print(report, flush=True)
        return SoakResult(verdict, feeder.stats, faults, report, drained)
    except BaseException:
        # The stack home is wiped below; a failed run keeps the servers' logs where the next engineer can read them.
        kept = stack.keep_logs(_stack_home(tag).parent / f"failed-{tag}-logs")
        _say(f"the run failed: Kafka's and Elasticsearch's logs are kept in {kept}")
        raise
    finally:
        if options.logs is not None:
            _copy_logs(options.logs, stack, state)
        if lag is not None:
            lag.stop()
        if sampler is not None:
            sampler.stop()
        if cpu is not None:
            cpu.stop()
        if observer is not None:
            observer.stop()
        for process in procs.values():
            process.stop()
        if options.keep:
            _say(f"kept: stack home {stack.config.home} (still running), state {state}")
        else:
            stack.wipe()
            shutil.rmtree(state, ignore_errors=True)


def _copy_logs(into: Path, stack: SoakStack, state: Path) -> None:
    """The suite processes' logs (one per incarnation) and the servers' logs, for reading the timeline afterwards."""
    try:
        stack.keep_logs(into / "servers")
        if (state / "logs").is_dir():
            shutil.copytree(state / "logs", into / "suite", dirs_exist_ok=True)
        _say(f"logs copied to {into}")
    except OSError as err:
        _say(f"could not copy the logs to {into}: {err}")


def spread(count: int) -> tuple[float, ...]:
    """Start shares for ``count`` chosen faults, evenly over the first 75 % of the run (each gets time to heal)."""
    return tuple(round(0.05 + 0.7 * (i + 0.5) / count, 3) for i in range(count))


def parse_faults(raw: str) -> tuple[str, ...]:
    """``kafka,es`` -> the FAULTS they name, in FAULTS' order; ``all`` -> FAULTS; ``none`` -> no fault (control)."""
    if raw.strip() == "all":
        return FAULTS
    if raw.strip() == "none":
        return ()
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULT_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown faults {unknown or raw!r}: choose among {', '.join(FAULT_NAMES)}")
    chosen = {FAULT_NAMES[n] for n in names}
    return tuple(f for f in FAULTS if f in chosen)


def _cpu_report(cpu: CpuSampler, lag: LagSampler, began: tuple[float, float], fed_until: tuple[float, float]) -> str:
    """Who got the cores while the feed ran and afterwards, and how fast the consumers kept up meanwhile."""
    cpus = os.cpu_count() or 1
    feed, after = cpu.cores(began[1], fed_until[1]), cpu.cores(fed_until[1], time.monotonic())
    return "\n".join(
        [
            f"while feeding: {lag.rates(began[0], fed_until[0])}",
            f"CPU cores while feeding: {format_cores(feed, cpus)}",
            f"CPU cores after the feed (draining): {format_cores(after, cpus)}",
            "main thread (event loop) while feeding: " + format_loops(cpu.loop_shares(began[1], fed_until[1]), LOOPS),
            "main thread (event loop) while draining: "
            + format_loops(cpu.loop_shares(fed_until[1], time.monotonic()), LOOPS),
        ]
    )


def _report(options: SoakOptions, verdict: Verdict, feed: FeedStats, observer: Observer, began: float,
            faults: list[Fault], drained: bool, lag: LagSampler) -> str:  # fmt: skip
    out = [
        "",
        f"soak: {options.duration_s:.0f} s at {options.rate:,.0f} posts/s target, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}; grader horizon "
        + ("7 days (default)" if options.grader_horizon_s is None else f"{options.grader_horizon_s:.0f} s")
        + f"; nice: indexer {options.indexer_nice}, elasticsearch {options.es_nice}, collector/grader/kafka 0",
        _feed_line(feed),
        f"posts topic: {len(observer.produced):,} ids; ES: {verdict.in_es:,} ids; alerts: {verdict.alerts:,} "
        f"(+{verdict.alert_copies:,} repeated); events: {verdict.events:,}"
        + ("" if drained else f"; NOT drained within {options.drain_s:.0f} s"),
        "faults: " + "; ".join(f"{f.name} at {f.began - began:.0f} s ({f.healthy - f.began:.0f} s)" for f in faults),
        f"post -> alert latency per {options.window_s:.0f} s window (first copies; t from feed start; p99 from the "
        "feed's send and, [k], from the post's entry into Kafka as the observer read it; h: a fault healed):",
    ]
    firsts = first_copies(observer.alerts)
    entered = {start: p99 for start, _, _, p99 in latency_windows(from_kafka(firsts, observer.post_arrival), began,
                                                                  options.window_s)}  # fmt: skip
    for start, count, p50, p99 in latency_windows(firsts, began, options.window_s):
        marks = [f.name for f in faults if start <= f.began - began < start + options.window_s]
        marks += [
            f"h {f.healthy - began:.0f}s" for f in faults if start <= f.healthy - began < start + options.window_s
        ]
        k99 = entered.get(start)
        shown = "   -  " if k99 is None else f"{k99:6.2f}"
        out.append(
            f"  t={start:5.0f}s  alerts {count:5d}  p50 {p50:6.2f} s  p99 {p99:6.2f} s [k {shown} s]  "
            f"{lag.near(began + start + options.window_s):<34} {' '.join(marks)}"
        )
    if observer.reproduced_at:
        spans = {"before any fault": 0, **{f.name: 0 for f in faults}}
        for at in observer.reproduced_at:
            after = [f.name for f in faults if f.began <= at]
            spans[after[-1] if after else "before any fault"] += 1
        shown = ", ".join(f"{name} {count:,}" for name, count in spans.items() if count)
        first, last = min(observer.reproduced_at) - began, max(observer.reproduced_at) - began
        out.append(
            f"posts produced again at t={first:.1f}..{last:.1f} s (Kafka timestamps), by the last fault begun "
            f"before: {shown}"
        )
    span = (feed.last_answered or 0) - (feed.first_sent or 0)
    out.append(format_report(verdict, (options.rate, feed.answered_lines / span if span > 0 else 0.0)))
    if not drained:
        out.append(
            f"NOT drained within {options.drain_s:.0f} s (lags in the draining lines above): lost is counted against "
            "Elasticsearch at the audit, and alerts of posts the grader had not read yet are not in the latency"
        )
    if observer.errors:
        out.append(f"observer reconnects: {len(observer.errors)} (first: {observer.errors[0]})")
    return "\n".join(out)


def _nice(raw: str) -> int:
    try:
        return parse_nice("nice", raw, 0)
    except CliError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: list[str] | None = None) -> SoakOptions:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="the CI form: 60 s at 400 posts/s")
    parser.add_argument("--duration", type=float, help="seconds of feeding (default 600)")
    parser.add_argument("--rate", type=float, help="posts per second (default 2315)")
    parser.add_argument("--streams", type=int, help="concurrent ImportPosts streams (default 2)")
    parser.add_argument("--batch-lines", type=int, help="lines per ImportPosts message (default 50; 1: one per line)")
    parser.add_argument("--warmup", type=float, help="seconds after a process start before its memory baseline")
    parser.add_argument("--drain", type=float, help="seconds to wait for the indexer and grader to catch up after")
    parser.add_argument("--window", type=float, help="seconds per latency window of the report (default 30)")
    parser.add_argument("--kafka-port", type=int, default=DEFAULT_KAFKA_PORT)
    parser.add_argument("--es-port", type=int, default=DEFAULT_ES_PORT)
    parser.add_argument("--keep", action="store_true", help="leave the stack running and the state dir in place")
    parser.add_argument("--grader-horizon", type=float, help="the grader's QF_GRADER_HORIZON_S (default: 7 days)")
    parser.add_argument("--indexer-nice", type=_nice, help=f"the indexer's nice (default {DEFAULT_NICE['indexer']})")
    parser.add_argument("--es-nice", type=_nice, help=f"Elasticsearch's nice (default {DEFAULT_NICE['elasticsearch']})")
    parser.add_argument("--no-priority", action="store_true", help="every process at nice 0 (the run before priority)")
    parser.add_argument(
        "--faults",
        type=parse_faults,
        help=f"comma-separated subset of {','.join(FAULT_NAMES)}, all (default) or none; spread evenly",
    )
    parser.add_argument("--down", type=float, help="seconds a restarted server stays down (default 0)")
    parser.add_argument("--logs", type=Path, help="copy the processes' and servers' logs into this directory")
    parser.add_argument("--standby", action="store_true", help="a warm standby grader (default in --short only)")
    parser.add_argument("--no-standby", action="store_true", help="no warm standby grader (a kill waits for restart)")
    args = parser.parse_args(argv)
    chosen = {
        key: value
        for key, value in {
            "duration_s": args.duration, "rate": args.rate, "streams": args.streams, "warmup_s": args.warmup,
            "drain_s": args.drain, "window_s": args.window, "kafka_port": args.kafka_port, "es_port": args.es_port,
            "keep": args.keep, "batch_lines": args.batch_lines,
            "grader_horizon_s": args.grader_horizon,
            "indexer_nice": 0 if args.no_priority else args.indexer_nice,
            "es_nice": 0 if args.no_priority else args.es_nice,
            "logs": args.logs,
            "down_s": args.down,
        }.items()
        if value is not None
    }  # fmt: skip
    if args.standby:
        chosen["standby_at"] = STANDBY_AT
    if args.no_standby:
        chosen["standby_at"] = None
    if args.faults is not None and args.faults != FAULTS:
        chosen["faults"], chosen["fault_at"] = args.faults, spread(len(args.faults))
    return SoakOptions.short(**chosen) if args.short else SoakOptions(**chosen)  # type: ignore[arg-type,unused-ignore]


if __name__ == "__main__":
    result = run_soak(parse_args())
    raise SystemExit(0 if result.verdict.lost == 0 else 1)
