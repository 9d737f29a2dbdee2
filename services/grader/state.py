"""The engine's single owner: it feeds the core, makes every output durable, checkpoints and recovers.

Exactly-once alerts across restarts (at-least-once in, exactly-once effect):

- A **checkpoint** stores, in one SQL transaction, the engine state (``Grader.snapshot()`` as compressed JSON),
  the next offset of every posts partition that state reflects, and a lower bound of the alerts topic's end. It is
  taken on a cadence (``checkpointing.py``: by a forked child once encoding costs), after every command (override,
  policy change) and on shutdown, always when every output of the batches before it is acknowledged.
- A **recovery** (start, or after Kafka or the database failed) restores the last checkpoint, reads the
  alerts topic from the stored bound to its end (``AlertLog``) to learn which alert ids ("<event_id>:<sequence>")
  are already out, and re-reads the posts from the stored offsets, first in the order logged since the checkpoint
  (``OrderLog``: each batch's order is stored before its effects; on a live tail it depends on arrival), then in
  event time. The engine is deterministic, so the replay regenerates the alerts it emitted before the crash with
  the same ids: those are suppressed, the rest published.
  Event snapshots and post -> event assignments are idempotent (keyed by event id; a later assignment wins) and simply
  published again, as is each event's level history (``history.py``, keyed by alert id), which every effect writes
  with its alerts.
- The owner's durable outputs are Kafka records (and its SQL): Elasticsearch is written by the index role
  (``indexer.py``) from the events and post-events topics, so a slow or absent search cluster never holds an alert.
- A **command** (override, policy) mutates the engine and stores its checkpoint with the outputs still to publish
  (``Checkpoint.pending``) and its audit record before publishing, so a crash in between re-publishes them.

Idempotent input (issue 13): a post is applied at most once, whatever delivers it again (a collector that forgot
it produced it, a re-import of the same file, a replay), and a post older than the clustering horizon opens no
event; what is not applied is counted and logged with its reason (``admission.feed``, see there).

Reads (GetEvent, ListEvents …) call the engine directly: its methods are synchronous, so on the event loop they
never interleave with a mutation. Mutations take ``lock``, which a batch holds from feeding the engine to the
durability of its effects, so a command never sees a half-published batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from opentelemetry.context import Context
from qingfeng.v1 import event_pb2

from services.grader.active_policy import ActivePolicy, placeholder_policy
from services.grader.admission import feed
from services.grader.batch_outputs import causes, events_of, render
from services.grader.checkpointing import Checkpointer, Content, OrderLog
from services.grader.convert import RegionNames, event_proto
from services.grader.core import EventSnapshot, Grader, GraderConfig, Output, PostView
from services.grader.errors import Unavailable
from services.grader.history import GradeHistory
from services.grader.pacing import SnapshotPacer
from services.grader.ports import AlertLog, AuditEntry, Checkpoint, Outputs, OutputSink, PolicyRecord, StateStore
from services.grader.recovery import log_recovered, restore_last, restore_to_follow, settle_policy
from services.grader.settings import CheckpointSettings

__all__ = ["EngineOwner", "OrderLog"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


class EngineOwner:
    """Owns the grader engine; see the module docstring for the durability protocol."""

    def __init__(
        self,
        store: StateStore,
        sink: OutputSink,
        alert_log: AlertLog,
        *,
        config: GraderConfig,
        cadence: CheckpointSettings,
        clock: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
        compress_cpu_clock: Callable[[], float] = time.thread_time,
        post_event_ids: bool = True,
        order_log: OrderLog | None = None,
        history: GradeHistory | None = None,
        snapshot_interval_s: float = 0.0,
    ) -> None:
        self._store = store
        self.checkpointer = Checkpointer(
            store,
            order_log,
            cadence,
            clock=clock,
            monotonic=monotonic,
            cpu_clock=cpu_clock,
            compress_cpu_clock=compress_cpu_clock,
        )
        # Each event's level changes with their reasons (history.py), recorded with the alerts that announce them.
        self.history = history
        # Snapshots of events changing without a level change, published at most every interval (pacing.py).
        self._pacer = SnapshotPacer(snapshot_interval_s, monotonic)
        self._order_log = order_log
        # The order logged since the checkpoint, read at recovery; the consumer follows it before merging again.
        self.script: list[tuple[int, int, int]] = []
        # Publishes each applied post's live event with the batch's outputs (the index role writes it onto the
        # posts document, so "posts of this event" works).
        self._post_event_ids = post_event_ids
        self._sink = sink
        self._alert_log = alert_log
        self._config = config
        self._clock = clock
        self.lock = asyncio.Lock()
        self.names = RegionNames()
        self.active: ActivePolicy | None = None
        self.engine = Grader(placeholder_policy(), config)
        # Next offset per posts partition that the engine reflects (and whose effects are durable).
        self.positions: dict[int, int] = {}
        self._alert_offsets: dict[int, int] = {}
        self._emitted: set[str] = set()
        # True until a recovery succeeded, and again after an effect failed: the engine is then ahead of what is
        # durable, so nothing may be published from it until it is rebuilt from the checkpoint.
        self.stale = True
        # Changes in the state that no replay reproduces (``Checkpoint.generation``): commands, idle ticks, regrades.
        self.generation = 0
        self.suppressed = 0  # replayed alerts not published again (tests, logs)
        self.dropped: dict[str, int] = {"duplicate": 0, "late": 0}  # posts not applied, by reason (since start)
        self.late_attached = 0  # posts older than the horizon applied because they joined a live event

    @property
    def checkpoints(self) -> int:
        """Checkpoints taken since start (tests, logs)."""
        return self.checkpointer.count

    @property
    def has_checkpoint(self) -> bool:
        return self.checkpointer.stored

    # -- start and recovery ------------------------------------------------------------------------------------

    async def activate_configured(self, text: str, source: str) -> None:
        """Settle the active policy at start: the configured file when its version is new, else the stored one.

        Raises ``PolicyLoadError`` when the file is invalid (the process must not start on a broken policy).
        """
        self.active = await settle_policy(self._store, text, source, self._clock)

    async def recover(self) -> None:
        """Rebuild the engine from the last checkpoint and publish what a crash may have left unpublished."""
        async with self.lock:  # a command waits until the engine is rebuilt and its pending outputs are out
            await self._recover()

    async def _recover(self) -> None:
        assert self.active is not None, "activate_configured() first"
        await self.checkpointer.settled()  # a checkpoint still being stored is the one to recover from
        policy = self.active.policy
        # Each step's wall time is logged: how long a restart holds alerts is read from them (bench_grader_restart).
        restored = await restore_last(self._store, self._alert_log, self._order_log, policy, self._config)
        checkpoint, engine, pending = restored.checkpoint, restored.engine, restored.pending
        generation = checkpoint.generation if checkpoint is not None else 0
        regraded = engine.state_policy_version != policy.version
        if regraded:
            generation += 1
            # Graded under another policy (changed while the grader was down): regrade now and announce it.
            changes = self._render(engine.set_policy(policy))
            pending = Outputs(pending.alerts + changes.alerts, pending.events + changes.events)
        self.engine = engine
        self.generation = generation
        self.positions = restored.positions
        self.checkpointer.stored = checkpoint is not None
        self._alert_offsets = restored.alert_offsets
        self._emitted = restored.emitted
        self.script = restored.script
        self.stale = False
        self._pacer.reset()
        if pending:
            await self._effect(pending)
        if regraded:
            await self._checkpoint()  # the regrade is now durable: a later recovery does not redo it
        log_recovered(restored)

    # -- a warm standby (standby.py) ------------------------------------------------------------------------------

    async def load_to_follow(self, checkpoint: Checkpoint | None) -> None:
        """Restore ``checkpoint`` (the last one, or None: a fresh engine) and the active policy to follow the leader
        from: the alert log is not read, nothing is published, and the owner stays stale (no command, no batch)
        until ``take_over``."""
        async with self.lock:
            record = await self._store.active_policy()
            if record is not None and (self.active is None or record.version != self.active.record.version):
                self.active = ActivePolicy.of(record)  # the leader activated another policy
            assert self.active is not None, "activate_configured() first"
            policy = self.active.policy
            if checkpoint is None:
                self.engine, self.positions, self._alert_offsets = Grader(policy, self._config), {}, {}
                self.generation = 0
            else:
                self.engine = restore_to_follow(checkpoint, policy, self._config)
                self.positions, self._alert_offsets = dict(checkpoint.positions), dict(checkpoint.alert_offsets)
                self.generation = checkpoint.generation
            self.stale = True
            self._pacer.reset()

    def follow_batch(self, posts: Sequence[PostView], positions: Mapping[int, int], watermark: datetime | None) -> None:
        """Feed one of the leader's durable batches as it fed it, without any effect (the leader had them)."""
        fed = feed(self.engine, posts)
        outs = fed.outputs
        if watermark is not None:
            outs += self.engine.tick(watermark)
        # The pacer mirrors the leader's: the snapshots it still held when it died go out at the takeover.
        self._pacer.pace(outs, self._live)
        self.positions.update(positions)

    async def take_over(self, checkpoint: Checkpoint, script: list[tuple[int, int, int]]) -> None:
        """Become the leader: learn the alerts already out since ``checkpoint`` (the one followed from), publish what
        the leader may have left unpublished (a command's pending outputs, the snapshots it held), then grade from
        ``positions``, following ``script`` (the order log) first, as a recovery does."""
        async with self.lock:
            self._emitted = await self._alert_log.emitted(checkpoint.alert_offsets)
            self.script = script
            self.checkpointer.stored = True
            self.stale = False
            if checkpoint.pending:
                await self._effect(checkpoint.pending)
            held = self._pacer.take_all()
            if held:
                await self._effect(self._render(list(held)))

    # -- the stream ----------------------------------------------------------------------------------------------

    async def run_batch(
        self,
        posts: Sequence[PostView],
        positions: dict[int, int],
        watermark: datetime | None,
        contexts: Mapping[str, Context] | None = None,
        *,
        order: Sequence[tuple[int, int, int]] = (),
    ) -> int:
        """Feed posts in order, make the outputs durable, advance the positions; checkpoint when due.

        ``contexts`` maps post ids to the trace context their records carried; outputs continue those traces.
        ``order`` is the batch's records as (partition, first offset, count) runs: logged before any effect, so a
        recovery replays them in this order. Returns the number of alerts published. Raises ``Unavailable`` (and
        turns stale) when an effect failed.
        """
        async with self.lock:
            self._require_fresh()
            if order and self._order_log is not None:
                await self._durable(self._order_log.log_order(order, self._clock()), "batch order not stored")
            outs, posts = self._feed(posts)
            if watermark is not None:
                # Event time passes with the stream: time-driven re-grades (cool-downs) up to the newest post.
                outs += self.engine.tick(watermark)
            outputs = self._render(self._pacer.pace(outs, self._live))
            # Each applied post's live event (merges followed), looked up once for the traces and the posts index.
            events = events_of(self.engine, posts)
            if contexts and outputs:
                outputs = replace(outputs, causes=causes(events, contexts))
            if self._post_event_ids:
                assigned = {post_id: event_id for post_id, event_id in events.items() if event_id}
                if assigned:
                    outputs = replace(outputs, assignments=assigned)
            published = await self._effect(outputs)
            self.positions.update(positions)
            self.checkpointer.batch_done()
            if self.checkpointer.due():
                await self._periodic_checkpoint()
            return published

    async def tick(self, now: datetime) -> int:
        """Advance event time with the wall clock (``idle_tick_s``); checkpoint when it changed anything."""
        async with self.lock:
            self._require_fresh()
            outs = self.engine.tick(now)
            if outs:
                self.generation += 1  # event time moved by the clock: no replay of the posts reproduces it
            outputs = self._render(self._pacer.pace(outs, self._live))
            published = await self._effect(outputs)
            if outs:
                # At once (after the one in flight): no replay reproduces the tick, so a recovery or a standby
                # must start from a state that holds it.
                await self._periodic_checkpoint()
            return published

    async def flush_held(self) -> int:
        """Publish the held event snapshots that are due (the consumer calls it while the stream is quiet)."""
        if not self._pacer.held or self.stale:
            return 0
        async with self.lock:
            if self.stale:
                return 0
            return await self._effect(self._render(list(self._pacer.due())))

    async def checkpoint_if_due(self) -> bool:
        """The checkpoint the last batches made due, on a quiet stream (the consumer calls it while idle)."""
        if self.stale or not self.checkpointer.due_while_quiet():
            return False
        async with self.lock:
            if self.stale or not self.checkpointer.due_while_quiet():
                return False
            await self._periodic_checkpoint()
            return True

    def checkpoint_soon(self) -> None:
        """Take the checkpoint with the next batch (the CPU-share rule still applies). The consumer calls it once a
        replay caught up: a second failure soon after (the broker restarting after a kill) then replays from here
        instead of working off the same backlog again."""
        self.checkpointer.soon()

    def _live(self, event_id: str) -> bool:
        return self.engine.clusterer.resolve(event_id) == event_id

    async def close(self) -> None:
        """Final checkpoint on a graceful stop (skipped when the engine is ahead of what is durable)."""
        async with self.lock:
            if not self.stale and self.active is not None:
                await self._checkpoint()

    def _feed(self, posts: Sequence[PostView]) -> tuple[list[Output], list[PostView]]:
        """Feed the batch through ``admission.feed`` (each post once, none past the horizon opening an event);
        count and log what was not applied and why. Returns the outputs and the posts applied."""
        fed = feed(self.engine, posts)
        if fed.duplicate or fed.late or fed.late_attached:
            self.dropped["duplicate"] += fed.duplicate
            self.dropped["late"] += fed.late
            self.late_attached += fed.late_attached
            horizon_h = self.engine.clusterer.config.horizon_seconds / 3600
            _log.info(
                "posts dropped: %d already applied, %d older than the %.0f h horizon (%d late joined live events)",
                fed.duplicate,
                fed.late,
                horizon_h,
                fed.late_attached,
                extra={
                    "duplicate": fed.duplicate,
                    "late": fed.late,
                    "late_attached": fed.late_attached,
                    "dropped_total": dict(self.dropped),
                },
            )
        return fed.outputs, fed.applied

    # -- commands ------------------------------------------------------------------------------------------------

    async def command(
        self,
        mutate: Callable[[Grader], list[Output]],
        audit: AuditEntry,
        *,
        policy: ActivePolicy | None = None,
    ) -> Outputs:
        """Apply a command to the engine; durable (checkpoint + audit, and ``policy`` activated) before published.

        Exceptions of ``mutate`` (KeyError, ValueError) leave the engine unchanged and propagate.
        """
        async with self.lock:
            self._require_fresh()
            outputs = self._render(mutate(self.engine))
            self.generation += 1
            # Not stored, the engine holds a command nobody will see again: it is rebuilt without it.
            await self._durable(
                self._checkpoint(pending=outputs, policy=policy.record if policy else None, audit=[audit]),
                "the command could not be stored",
            )
            if policy is not None:
                self.active = policy
            try:
                await self._effect(outputs)
            except Unavailable as err:
                # Stored with the checkpoint as pending: the consumer loop recovers and publishes it.
                _log.warning("command stored, its outputs will be published on recovery: %s", err)
            return outputs

    # -- reads ----------------------------------------------------------------------------------------------------

    def render_event(self, snapshot: EventSnapshot) -> event_pb2.Event:
        return event_proto(snapshot, self.names, self._clock())

    # -- internals ------------------------------------------------------------------------------------------------

    def _require_fresh(self) -> None:
        if self.stale:
            raise Unavailable("the grader is recovering from its last checkpoint; retry shortly")

    async def _durable(self, step: Awaitable[T], what: str) -> T:
        """Await a step the next checkpoint relies on. If it fails, the engine is ahead of what is durable: the
        owner turns stale (rebuilt from the checkpoint, the batches since are replayed) and raises ``Unavailable``."""
        try:
            return await step
        except Exception as err:
            self.stale = True
            raise Unavailable(f"{what}: {type(err).__name__}: {err}") from err

    def _render(self, outs: list[Output]) -> Outputs:
        return render(outs, self.names, self._clock())

    async def _effect(self, outputs: Outputs) -> int:
        """Publish (minus the alerts already on the topic) and record the level history; returns the alerts
        published. Kafka and SQL only: Elasticsearch is the index role's (``indexer.py``)."""
        if not outputs:
            return 0
        fresh = outputs.without(self._emitted)
        if len(fresh.alerts) != len(outputs.alerts):
            self.suppressed += len(outputs.alerts) - len(fresh.alerts)
            self._emitted.difference_update(a.id for a in outputs.alerts)  # each id is replayed once
        written, *_ = await self._durable(
            asyncio.gather(self._sink.publish(fresh), self._record(outputs.alerts)),
            "outputs not acknowledged",
        )
        for partition, offset in written.items():
            if offset > self._alert_offsets.get(partition, -1):
                self._alert_offsets[partition] = offset
        return len(fresh.alerts)

    async def _record(self, alerts: Sequence[event_pb2.Alert]) -> None:
        # Every alert, also those a replay suppresses: rewriting one is harmless, missing one would lose a grade.
        if self.history is not None and alerts:
            await self.history.record(alerts)

    async def _before_checkpoint(self) -> Content:
        """What every checkpoint waits for: the one in the background, and the held event snapshots published (a
        checkpoint must not cover a post whose event snapshot is still held back). Returns what it will say."""
        await self.checkpointer.settled()
        held = self._pacer.take_all()
        if held:
            await self._effect(self._render(list(held)))
        return Content(self.engine, dict(self.positions), dict(self._alert_offsets), self.generation)

    async def _periodic_checkpoint(self) -> None:
        await self.checkpointer.periodic(await self._before_checkpoint())

    async def _checkpoint(
        self, *, pending: Outputs | None = None, policy: PolicyRecord | None = None, audit: Sequence[AuditEntry] = ()
    ) -> None:
        await self.checkpointer.take(await self._before_checkpoint(), pending=pending, policy=policy, audit=audit)
