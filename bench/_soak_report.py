"""The soak's verdict: lost and duplicated posts, duplicated alerts and events, latency over time and after each
fault, memory growth per process; one table with each target, met or missed by how much.

Pure functions over what the soak collected (no I/O besides ``format_report`` returning text).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from _soak_observe import SeenAlert

__all__ = [
    "EventIdCheck",
    "Fault",
    "Memory",
    "Recovery",
    "Verdict",
    "back_under",
    "event_id_check",
    "format_report",
    "from_kafka",
    "judge",
    "latency_windows",
    "memory_growth",
]

LATENCY_TARGET_S = 2.0
RECOVERY_TARGET_S = 30.0
MEMORY_TARGET = 0.10
# "Back under 2 s": the end of the first window of this many seconds after the fault healed whose alerts' p99 is
# within the target (the strict figure, the last slow alert before the next fault, is kept beside it).
BACK_UNDER_STEP_S = 5.0
# The alerts' p99 over this many seconds before a fault: the level the run was at (on a loaded machine, over 2 s).
BEFORE_S = 30.0
_NONE = 1  # WARNING_LEVEL_NONE: an alert from it opens an event


@dataclass(frozen=True)
class Fault:
    """One fault: what, when it began (wall clock) and when the thing was healthy again."""

    name: str
    began: float
    healthy: float


@dataclass(frozen=True)
class Memory:
    process: str
    pid: int
    baseline_kib: int | None
    end_kib: int | None
    lived_s: float

    @property
    def growth(self) -> float | None:
        if not self.baseline_kib or self.end_kib is None:
            return None
        return (self.end_kib - self.baseline_kib) / self.baseline_kib


@dataclass(frozen=True)
class Recovery:
    """How one fault's span went, by "post into Kafka -> alert" (the post's entry as the observer read it).

    A post that entered Kafka before the fault healed and was alerted after the fault began waited out the outage
    itself (the broker down, or the grader not fetching): ``held``. Whether the suite is *back* is told by the posts
    that entered after the fault healed: those of the first RECOVERY_TARGET_S (``first_p99``) and those after it,
    up to the next fault (``later_p99``): "back under 2 s within 30 s" is ``later_p99`` within the target.
    """

    fault: Fault
    before_p99: float | None  # alerts that arrived in the BEFORE_S before the fault began
    held: int  # alerts of posts that entered before healthy, alerted after the fault began
    held_p99_s: float | None
    held_max_s: float | None
    first_alert_s: float | None  # seconds from healthy to the first alert after it
    first_p99: float | None
    later_p99: float | None
    back_under_s: float | None  # ``back_under`` by entry time: seconds after healthy
    back_under_feed_s: float | None  # ``back_under`` by arrival, latency from the feed's send


@dataclass
class Verdict:
    accepted: int
    in_kafka: int
    in_es: int
    lost_before_kafka: int
    lost: int
    produced_again: int
    es_duplicates: int
    alerts: int
    alert_copies: int
    events_reopened: int
    chain_breaks: int
    events: int
    duplicate_events: int
    latency_p50: float | None
    latency_p99: float | None
    recoveries: list[tuple[Fault, float | None]] = field(default_factory=list)
    recovered: list[Recovery] = field(default_factory=list)
    # p99 from the post's entry into Kafka (None: no post arrival known, e.g. an observer without them).
    kafka_latency_p99: float | None = None
    memory: list[Memory] = field(default_factory=list)
    sample_lost: list[str] = field(default_factory=list)


def _pct(values: Sequence[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def first_copies(alerts: Sequence[SeenAlert]) -> list[SeenAlert]:
    seen: set[str] = set()
    out = []
    for alert in alerts:
        if alert.id not in seen:
            seen.add(alert.id)
            out.append(alert)
    return out


def latency_windows(
    alerts: Sequence[SeenAlert], start: float, window_s: float
) -> list[tuple[float, int, float, float]]:
    """(window start relative to ``start``, alerts, p50, p99) per window with alerts."""
    buckets: dict[int, list[float]] = {}
    for alert in alerts:
        buckets.setdefault(int((alert.arrived - start) // window_s), []).append(alert.latency_s)
    return [(k * window_s, len(v), _pct(v, 0.5) or 0.0, _pct(v, 0.99) or 0.0) for k, v in sorted(buckets.items())]


def _recovery(fault: Fault, until: float, alerts: Sequence[SeenAlert]) -> float | None:
    """Seconds after the fault's end until the last alert over the target (0: none); None: no alert at all;
    infinity: the last alert of the span (before the next fault) was still over the target, so it never recovered."""
    inside = sorted((a for a in alerts if fault.began <= a.arrived < until), key=lambda a: a.arrived)
    if not inside:
        return None
    if inside[-1].latency_s > LATENCY_TARGET_S:
        return math.inf
    slow = [a.arrived for a in inside if a.latency_s > LATENCY_TARGET_S]
    return max(0.0, max(slow) - fault.healthy) if slow else 0.0


def back_under(
    fault: Fault,
    until: float,
    alerts: Sequence[SeenAlert],
    step_s: float = BACK_UNDER_STEP_S,
    *,
    by_entry: bool = False,
) -> float | None:
    """Seconds after the fault healed until the end of the first ``step_s`` window (windows from ``healthy``, up to
    ``until``) whose alerts' p99 is within the target; None: no alert after healthy; infinity: no such window.
    Windows by the alert's arrival, or with ``by_entry`` by its post's entry (arrival - latency, for ``from_kafka``
    alerts)."""

    def at(alert: SeenAlert) -> float:
        return alert.arrived - alert.latency_s if by_entry else alert.arrived

    # By entry, a post that entered within the target of the next fault may have been held by it: that fault's
    # "during the fault" counts it. One that entered earlier and was still unanswered when it began was slow already.
    end = until - LATENCY_TARGET_S if by_entry else until
    after = [a for a in alerts if fault.healthy <= at(a) < end]
    if not after:
        return None
    buckets: dict[int, list[float]] = {}
    for alert in after:
        buckets.setdefault(int((at(alert) - fault.healthy) // step_s), []).append(alert.latency_s)
    for k in sorted(buckets):
        p99 = _pct(buckets[k], 0.99)
        if p99 is not None and p99 <= LATENCY_TARGET_S:
            return (k + 1) * step_s
    return math.inf


def from_kafka(alerts: Sequence[SeenAlert], post_arrival: Mapping[int, float]) -> list[SeenAlert]:
    """The alerts whose tipping post was seen on the posts topic, latency counted from then ("post into Kafka ->
    alert"); the others are left out."""
    out = []
    for alert in alerts:
        entered = post_arrival.get(alert.graded_us)
        if entered is not None:
            out.append(replace(alert, latency_s=max(0.0, alert.arrived - entered)))
    return out


def recovery(fault: Fault, until: float, entered: Sequence[SeenAlert], firsts: Sequence[SeenAlert]) -> Recovery:
    """One fault's ``Recovery`` from the ``from_kafka`` alerts (``entered``) and the feed-based ones (``firsts``)."""

    def p99(lo: float, hi: float) -> float | None:
        return _pct([a.latency_s for a in entered if lo <= a.arrived - a.latency_s < hi], 0.99)

    held = [a.latency_s for a in entered if a.arrived >= fault.began and a.arrived - a.latency_s < fault.healthy]
    after = [a.arrived for a in firsts if fault.healthy <= a.arrived < until]
    return Recovery(
        fault,
        # Alerts that arrived before the fault: the steady state (a post held by the outage entered before it too).
        before_p99=_pct([a.latency_s for a in entered if fault.began - BEFORE_S <= a.arrived < fault.began], 0.99),
        held=len(held),
        held_p99_s=_pct(held, 0.99),
        held_max_s=max(held, default=None),
        first_alert_s=min(after) - fault.healthy if after else None,
        # By entry, up to the target before the next fault began (see ``back_under``).
        first_p99=p99(fault.healthy, min(until - LATENCY_TARGET_S, fault.healthy + RECOVERY_TARGET_S)),
        later_p99=p99(fault.healthy + RECOVERY_TARGET_S, until - LATENCY_TARGET_S),
        back_under_s=back_under(fault, until, entered, by_entry=True),
        back_under_feed_s=back_under(fault, until, firsts),
    )


def memory_growth(
    samples: Sequence[tuple[float, str, int, int]], lives: dict[str, tuple[int, float, float]], warmup_s: float
) -> list[Memory]:
    """Per process, its last incarnation: median RSS over 20 s after warm-up against the median of its last 20 s."""
    out = []
    for name, (pid, born, died) in lives.items():
        own = [(t, kib) for t, n, p, kib in samples if n == name and p == pid]
        base = [kib for t, kib in own if born + warmup_s <= t < born + warmup_s + 20]
        end = [kib for t, kib in own if t >= died - 20]
        enough = died - born >= warmup_s + 40
        out.append(
            Memory(
                name,
                pid,
                int(statistics.median(base)) if base and enough else None,
                int(statistics.median(end)) if end else None,
                died - born,
            )
        )
    return out


def rss_series(samples: Sequence[tuple[float, str, int, int]], name: str, started: float, every_s: float = 30.0) -> str:
    """A process's RSS (MiB, median of its samples) every ``every_s`` seconds since ``started``, all incarnations:
    what a growth figure from two points cannot show (a state that rises and falls with the stream, a restart)."""
    points: dict[int, list[int]] = {}
    for t, n, _, kib in samples:
        if n == name:
            points.setdefault(int((t - started) // every_s), []).append(kib)
    return ", ".join(f"{k * every_s:.0f}s {statistics.median(v) / 1024:.0f}" for k, v in sorted(points.items()))


def judge(
    accepted_ids: set[str],
    produced: Counter[str],
    es_copies: Counter[str],
    alerts: Sequence[SeenAlert],
    events: int,
    duplicate_events: int,
    faults: Sequence[Fault],
    end: float,
    memory: list[Memory],
    post_arrival: Mapping[int, float] | None = None,
) -> Verdict:
    lost_ids = accepted_ids - es_copies.keys()
    firsts = first_copies(alerts)
    opened = Counter(a.event_id for a in firsts if a.from_level == _NONE)
    chain_breaks = 0
    by_event: dict[str, list[SeenAlert]] = {}
    for alert in firsts:
        by_event.setdefault(alert.event_id, []).append(alert)
    for chain in by_event.values():
        chain.sort(key=lambda a: a.sequence)
        chain_breaks += sum(1 for a, b in itertools.pairwise(chain) if b.from_level != a.to_level)
    latencies = [a.latency_s for a in firsts]
    recoveries = []
    recovered = []
    entered = from_kafka(firsts, post_arrival) if post_arrival else []
    for i, fault in enumerate(faults):
        until = faults[i + 1].began if i + 1 < len(faults) else end
        recoveries.append((fault, _recovery(fault, until, firsts)))
        if entered:
            recovered.append(recovery(fault, until, entered, firsts))
    return Verdict(
        accepted=len(accepted_ids),
        in_kafka=len(produced),
        in_es=len(es_copies),
        lost_before_kafka=len(accepted_ids - produced.keys()),
        lost=len(lost_ids),
        produced_again=sum(n - 1 for n in produced.values() if n > 1),
        es_duplicates=sum(n - 1 for n in es_copies.values() if n > 1),
        alerts=len(firsts),
        alert_copies=len(alerts) - len(firsts),
        events_reopened=sum(n - 1 for n in opened.values() if n > 1),
        chain_breaks=chain_breaks,
        events=events,
        duplicate_events=duplicate_events,
        latency_p50=_pct(latencies, 0.5),
        latency_p99=_pct(latencies, 0.99),
        recoveries=recoveries,
        recovered=recovered,
        kafka_latency_p99=_pct([a.latency_s for a in entered], 0.99) if entered else None,
        memory=memory,
        sample_lost=sorted(lost_ids)[:5],
    )


@dataclass(frozen=True)
class EventIdCheck:
    """Posts' ``event_id`` in Elasticsearch against the grader's last assignment of each on the post-events topic."""

    assigned: int  # posts the grader assigned (last assignment known)
    matching: int  # of those, documents holding that event id
    missing: int  # documents without event_id (or no document at all)
    different: int  # documents with another event id
    sample: tuple[tuple[str, str, str], ...] = ()  # (post id, last assignment, found) of the first mismatches

    def line(self) -> str:
        text = f"post event ids: {self.matching:,} of {self.assigned:,} as the grader's last assignment"
        if self.matching < self.assigned:
            text += f" ({self.missing:,} without one, {self.different:,} with another)"
        if self.sample:
            text += "; first: " + ", ".join(f"{p} {e} != {f or '-'}" for p, e, f in self.sample)
        return text


def event_id_check(last: Mapping[str, str], found: Mapping[str, str], sample: int = 3) -> EventIdCheck:
    """Compare after the drain: every assigned post's document should hold its last assignment (issue 13: the
    indexer writes it with the post, the grader's index role what is missing or changed)."""
    missing = different = 0
    first: list[tuple[str, str, str]] = []
    for post_id, event_id in last.items():
        held = found.get(post_id)
        if held == event_id:
            continue
        if held:
            different += 1
        else:
            missing += 1
        if len(first) < sample:
            first.append((post_id, event_id, held or ""))
    return EventIdCheck(len(last), len(last) - missing - different, missing, different, tuple(sorted(first)))


def _row(target: str, measured: str, met: bool | None, by: str = "") -> str:
    state = "n/a" if met is None else ("met" if met else "MISSED")
    return f"| {target:<44} | {measured:<34} | {state:<6} | {by:<22} |"


def _s(value: float | None) -> str:
    return "-" if value is None else ("never" if math.isinf(value) else f"{value:.1f} s")


def _recovery_lines(recovered: Sequence[Recovery]) -> list[str]:
    """Per fault: the target's row (posts into Kafka from 30 s after healthy on) and what the outage itself cost."""
    lines = []
    for r in recovered:
        name = r.fault.name
        later = r.later_p99
        met = None if later is None else later <= LATENCY_TARGET_S
        by = f"{later - LATENCY_TARGET_S:+.2f} s" if later is not None and not met else ""
        measured = f"p99 {_s(later)} (before {_s(r.before_p99)})"
        lines.append(_row(f"after {name}: into Kafka > 30 s after, p99 <= 2 s", measured, met, by))
        # For a fault the alert path does not wait on (Elasticsearch for the grade role), these are simply the
        # alerts while it lasted.
        held = (f"during the fault (post in Kafka before healthy, alerted after the fault began): {r.held:,} alerts, "
                f"p99 {_s(r.held_p99_s)}, up to {_s(r.held_max_s)}")  # fmt: skip
        if r.first_alert_s is None:
            lines.append(f"  {name}: no alert after healthy before the next fault or the end; {held}")
            continue
        lines.append(f"  {name}: posts into Kafka in the first 30 s after healthy p99 {_s(r.first_p99)}; back under "
                     f"2 s by entry {_s(r.back_under_s)}, by arrival from the feed {_s(r.back_under_feed_s)} after "
                     f"healthy; first alert {_s(r.first_alert_s)} after healthy; {held}")  # fmt: skip
    return lines


def format_report(v: Verdict, rate: tuple[float, float] | None = None) -> str:
    """The table; ``rate`` is (target, answered) posts/s of the feed when known."""
    lines = [
        _row("target", "measured", None, "by").replace("n/a   ", "result"),
        f"|{'-' * 46}|{'-' * 36}|{'-' * 8}|{'-' * 24}|",
    ]
    if rate is not None:
        target, answered = rate
        lines.append(
            _row(
                f"feed {target:,.0f} posts/s into ImportPosts",
                f"{answered:,.0f} posts/s answered",
                answered >= target * 0.98,
                f"{answered / target - 1:+.0%}" if answered < target * 0.98 else "",
            )
        )
    lines += [
        _row(
            "0 accepted posts lost (ES holds every id)",
            f"{v.lost:,} of {v.accepted:,} lost",
            v.lost == 0,
            f"{v.lost:,} posts" if v.lost else "",
        ),
        _row(
            "0 posts twice in ES (any generation)",
            f"{v.es_duplicates:,} extra copies",
            v.es_duplicates == 0,
            f"{v.es_duplicates:,}" if v.es_duplicates else "",
        ),
        _row(
            "0 posts produced twice to Kafka",
            f"{v.produced_again:,} re-produced",
            v.produced_again == 0,
            f"{v.produced_again:,}" if v.produced_again else "",
        ),
        _row(
            "each alert once per level change",
            f"{v.alert_copies:,} repeated of {v.alerts:,}",
            v.alert_copies == 0,
            f"{v.alert_copies:,} alerts" if v.alert_copies else "",
        ),
        _row(
            "no event opened twice (none -> x again)",
            f"{v.events_reopened:,} re-opened",
            v.events_reopened == 0,
            f"{v.events_reopened:,}" if v.events_reopened else "",
        ),
        _row(
            "no duplicate event (shared posts)",
            f"{v.duplicate_events:,} of {v.events:,} events",
            v.duplicate_events == 0,
            f"{v.duplicate_events:,}" if v.duplicate_events else "",
        ),
    ]
    if v.latency_p99 is None:
        lines.append(_row("post -> alert p99 <= 2 s", "no alerts", False, "no alert at all"))
    else:
        over = v.latency_p99 - LATENCY_TARGET_S
        lines.append(_row("post -> alert p99 <= 2 s (faults included)",
                          f"p50 {v.latency_p50 or 0:.2f} s, p99 {v.latency_p99:.2f} s", over <= 0,
                          f"{over:+.2f} s" if over > 0 else f"{-over:.2f} s to spare"))  # fmt: skip
    for fault, recovery in v.recoveries:
        if recovery is None:
            lines.append(_row(f"after {fault.name}: < 2 s within 30 s", "no alert in that span", None))
        elif math.isinf(recovery):
            lines.append(_row(f"after {fault.name}: < 2 s within 30 s", "still > 2 s at the next fault/end", False))
        else:
            late = recovery - RECOVERY_TARGET_S
            lines.append(_row(f"after {fault.name}: < 2 s within 30 s", f"{recovery:.1f} s after healthy",
                              late <= 0, f"{late:+.1f} s" if late > 0 else ""))  # fmt: skip
    if v.kafka_latency_p99 is not None:
        over = v.kafka_latency_p99 - LATENCY_TARGET_S
        lines.append(_row("post into Kafka -> alert p99 <= 2 s", f"p99 {v.kafka_latency_p99:.2f} s", over <= 0,
                          f"{over:+.2f} s" if over > 0 else f"{-over:.2f} s to spare"))  # fmt: skip
    lines.extend(_recovery_lines(v.recovered))
    for memory in v.memory:
        growth = memory.growth
        if growth is None:
            lines.append(_row(f"{memory.process} RSS growth < 10 %", f"lived {memory.lived_s:.0f} s: too short", None))
        else:
            base, end = (memory.baseline_kib or 0) / 1024, (memory.end_kib or 0) / 1024
            lines.append(
                _row(
                    f"{memory.process} RSS growth < 10 %",
                    f"{growth:+.1%} ({base:.0f} -> {end:.0f} MiB)",
                    growth < MEMORY_TARGET,
                    f"{(growth - MEMORY_TARGET) * 100:+.1f} points" if growth >= MEMORY_TARGET else "",
                )
            )
    if v.chain_breaks:
        lines.append(f"note: {v.chain_breaks} alerts whose from-level is not the previous alert's to-level")
    if v.lost_before_kafka:
        lines.append(f"note: {v.lost_before_kafka:,} accepted ids never reached the posts topic")
    if v.sample_lost:
        lines.append(f"lost ids (first): {', '.join(v.sample_lost)}")
    return "\n".join(lines)
