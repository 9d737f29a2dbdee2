"""GraderSettings: environment variables with the prefix ``QF_GRADER_`` (nested groups use ``__``).

The variables are listed with their defaults in ``services/grader/README.md``. Everything the grader reads from the
environment is here; nothing else in the service looks at ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import SettingsConfigDict
from qingfeng.gc_tuning import GcSettings
from qingfeng.kafka import ALERTS, DEADLETTER, EVENTS, POSTS
from qingfeng.kafka.topics import POST_EVENTS
from qingfeng.settings import (
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    service_settings_config,
)

from services.grader.adapters.policy_yaml import DEFAULT_POLICY

__all__ = [
    "CheckpointSettings",
    "ConsumerSettings",
    "GraderSettings",
    "GraderTopics",
    "IndexRoleSettings",
    "Role",
    "StandbySettings",
]

# grade: the consumer of the posts, the engine and the gRPC API (Kafka and SQL only); index: writes what the grade
# role published into Elasticsearch (the events index, the posts' event ids); all: both in one process.
Role = Literal["all", "grade", "index"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GraderTopics(_Group):
    """Topic names. Only tests and side-by-side deployments change them (each test uses its own topics)."""

    posts: str = POSTS
    events: str = EVENTS
    alerts: str = ALERTS
    deadletter: str = DEADLETTER
    # Post -> event assignments (one partition). Unset: named after ``events`` ("<x>events<y>" -> "<x>post-events<y>"),
    # so a test or side-by-side deployment that renames its events topic gets its own assignments topic too. Read it
    # through ``post_events_topic``: derived when read, because the environment's values are merged into the
    # defaults (a name derived at validation would keep the default events topic's).
    post_events: str = ""

    @property
    def post_events_topic(self) -> str:
        if self.post_events:
            return self.post_events
        return POST_EVENTS if self.events == EVENTS else _post_events_after(self.events)


def _post_events_after(events: str) -> str:
    head, found, tail = events.rpartition("events")
    return f"{head}post-events{tail}" if found else f"{events}.post-events"


class ConsumerSettings(_Group):
    """The loop over qingfeng.posts.v1."""

    # Offsets are committed to this group after every batch, for lag monitoring; the position the grader resumes
    # from is the one stored with its state (see README, "Recovery").
    group_id: str = "grader"
    # Records handed to the engine at most per batch (one publish + one bulk request per batch). A batch costs
    # about one snapshot per event it touched plus a few round trips, whatever its size: behind the stream, larger
    # batches amortise that (500 -> 2000 took the benchmark from ~310 to ~200 µs CPU per post); on a live tail a
    # batch is whatever arrived meanwhile, so this does not delay alerts.
    batch_size: int = Field(default=2000, ge=1, le=20_000)
    # Longest wait of one fetch when the stream is quiet.
    poll_timeout_ms: int = Field(default=200, ge=1, le=10_000)
    # With less than a batch waiting (a live tail), a batch starts at least this long after the previous one began
    # (records gather meanwhile): the per-batch costs (~20 ms of CPU: a produce round, bulk requests, SQL writes)
    # are shared by more posts, at the price of up to this much added alert latency. Behind the stream, none.
    linger_ms: int = Field(default=250, ge=0, le=5_000)
    # Offsets are committed to the group (monitoring only) at most this often, and on a graceful stop.
    commit_interval_s: float = Field(default=1.0, ge=0)
    # With no state stored yet, start from the oldest retained post (rebuilds the events) or from new posts only.
    start_without_state: Literal["earliest", "latest"] = "earliest"
    # Waits before recovering after Kafka, Elasticsearch or the database failed (doubles up to the maximum).
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    # After a failure, Kafka, Elasticsearch and the database are probed (each within this many seconds) before the
    # state is reloaded; while one does not answer the loop waits instead of reloading on every retry.
    store_probe_timeout_s: float = Field(default=5.0, gt=0)


class CheckpointSettings(_Group):
    """How often the engine state is stored together with the consumed offsets (also on shutdown and commands)."""

    every_batches: int = Field(default=50, ge=1)
    # What a crash replays is the checkpoint's age plus the time down, on a machine that may have no idle core: at
    # 30 s (a live tail reached 50 batches every ~13 s) a kill -9 replayed up to 13 s of posts more than at 5 s. The
    # CPU share below still bounds the cost (a full 120 s horizon at 2,315 posts/s: ~0.36 s, so every ~7 s).
    every_s: float = Field(default=5.0, gt=0)
    # Encoding the state (every post of the clustering horizon) takes CPU that grows with it: a checkpoint is
    # postponed until the time since the last one is at least that one's encoding CPU divided by this share
    # (0.05: one that took 1 s is next due 20 s later at the earliest). Recovery then replays a little more.
    max_cpu_share: float = Field(default=0.05, gt=0, le=1)
    # Encode the periodic checkpoints in a forked child (checkpoint_fork.py) once the last one's encoding took at
    # least fork_min_cpu_s: a full horizon's state held the loop 0.9-1.2 s of CPU, and every alert behind it waited.
    # The child runs at fork_nice, below the alert path. Linux/Unix only (ignored where os.fork is missing); needs
    # memory headroom of up to the state's size while the child runs. Commands, shutdown and regrades still
    # checkpoint on the loop (they must be durable before they return).
    fork: bool = True
    fork_min_cpu_s: float = Field(default=0.05, ge=0)
    fork_nice: int = Field(default=10, ge=0, le=19)


class StandbySettings(_Group):
    """A second grade process over the same database and topics follows the leader and takes over when it dies
    (standby.py); the lease (lease.py) says who leads. One process alone leads at once and never follows."""

    # How often a standby reads the leader's order log, checkpoint and committed positions, and tries the lease.
    poll_s: float = Field(default=0.2, gt=0, le=10)
    # After taking the lease, wait this long before reading the alerts topic: produce requests the dead leader sent
    # just before it died are written first, so their alerts are known as out and not published twice.
    takeover_grace_s: float = Field(default=0.3, ge=0, le=10)
    # The standby's CPU priority while it follows (0..19). Restored on takeover, which needs CAP_SYS_NICE to lower it
    # again: leave 0 unless the process may (the soak, as root, uses 10: the standby then yields to the leader).
    nice: int = Field(default=0, ge=0, le=19)
    # How often the leader checks it still holds the lease (a PostgreSQL session can be lost); it exits if not.
    lease_check_s: float = Field(default=1.0, gt=0)


class IndexRoleSettings(_Group):
    """The index role: a consumer group over the events and post-events topics that writes Elasticsearch."""

    # Unset: "<consumer.group_id>-index" ("grader-index" by default), so a test's grader group names this one too.
    group_id: str = ""
    # Records per batch (offsets committed after Elasticsearch acknowledged every write of it).
    batch_size: int = Field(default=2_000, ge=1, le=20_000)
    # Waits before restarting the consumer after Elasticsearch or Kafka failed (doubles up to the maximum). A short
    # maximum, as the collector's indexer has: a failed attempt already spends its time in the bulk writer's
    # retries, and with 30 s the index role resumed long after Elasticsearch was back.
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    # Post event ids are written no earlier than this after the grade role published them: the collector's indexer
    # waits up to its event_wait_s (2 s) to index each post once with its event, and most are then found done
    # (a look-up) instead of indexed a second time. Event snapshots are written at once.
    assign_delay_s: float = Field(default=3.5, ge=0, le=60)
    # A post not indexed yet when its assignment is applied (the collector's indexer behind) is looked up again (every
    # missing_poll_s, less often while none turns up), up to this long after the grade role published it, before a
    # stub is written for it: a stub makes the indexer's own write a conflict and a second write
    # (adapters/post_events.py). The indexer joins assignments at its own position (up to an hour behind, see
    # services/collector/event_ids.py), so a post it writes late still gets its event from it. Under aiokafka's
    # max.poll.interval (300 s), as a batch waits this long at most.
    missing_wait_s: float = Field(default=180.0, ge=0, le=240)
    missing_poll_s: float = Field(default=1.0, gt=0, le=30)


class GraderSettings(ServiceSettings):
    """The grader process: its stores, topics, policy, consumer and checkpoint cadence."""

    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_GRADER_")

    grpc: GrpcSettings = GrpcSettings(port=50062)
    # Which half runs in this process (see Role); ``qingfeng up`` runs grade and index as two processes.
    role: Role = "all"
    index: IndexRoleSettings = IndexRoleSettings()
    # The garbage collector's thresholds and start-up freeze (qingfeng.gc_tuning: a hot path's CPU per post).
    gc: GcSettings = GcSettings()
    # Engine checkpoints, policy versions and the audit log. SQLite by default; postgresql+asyncpg://… is supported.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/grader.db"))
    topics: GraderTopics = GraderTopics()
    consumer: ConsumerSettings = ConsumerSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    standby: StandbySettings = StandbySettings()
    # The policy activated at start when its version is not recorded yet; a policy activated later over gRPC
    # stays active across restarts until a file with a new version is deployed.
    policy_file: Path = DEFAULT_POLICY
    # Event detection for streams whose repost parents are lost (weak author/activity signals; off by default).
    lost_parents: bool = False
    # How long an idle event (and the ids of its posts) stays in memory: a post older than this before the newest
    # one is late (counted, or dropped with a reason). The grader keeps about 300 bytes per post of this window,
    # so its memory grows until the window is full (7 days of 200 M posts a day do not fit one process: see the
    # README's capacity plan); a shorter window bounds it.
    horizon_s: float = Field(default=7 * 86400.0, ge=60.0, le=90 * 86400.0)
    # 0 (default): event time only advances with posts, so a quiet event de-escalates when newer posts arrive.
    # > 0: after this many seconds without posts, advance event time to the wall clock (live streams only: a
    # replay of old posts would see every event cool down at once).
    idle_tick_s: float = Field(default=0.0, ge=0)
    # An event whose snapshot was published less than this many seconds ago and that changed without a level
    # change gets its next snapshot when the interval has passed (the latest one; alerts are never held, and every
    # held snapshot goes out before a checkpoint). 0: every batch publishes every changed event (services/grader/
    # pacing.py: on a live tail that was a third of the grader's CPU).
    snapshot_interval_s: float = Field(default=2.0, ge=0)
    # Publish each graded post's event id (the post-events topic), which the index role writes onto its posts
    # document, so search can filter and count posts by event (the console's "posts of this event"). Each write
    # re-indexes the post in Elasticsearch; a deployment whose search cluster cannot take a second write per post
    # may turn it off (nothing is published then, and search cannot filter by event).
    post_event_ids: bool = True

    @property
    def index_group_id(self) -> str:
        """The index role's consumer group (``index.group_id``, else derived from the grader's group)."""
        return self.index.group_id or f"{self.consumer.group_id}-index"
