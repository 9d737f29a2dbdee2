"""CollectorSettings: environment variables with the prefix ``QF_COLLECTOR_`` (nested groups use ``__``).

The variables are listed with their defaults in ``services/collector/README.md``. Everything the collector reads from
the environment is here; nothing else in the service looks at ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict
from qingfeng.gc_tuning import GcSettings
from qingfeng.kafka import DEADLETTER, POSTS, POSTS_DEADLETTER
from qingfeng.kafka.topics import POST_EVENTS
from qingfeng.settings import (
    DatabaseSettings,
    GrpcSettings,
    ServiceSettings,
    service_settings_config,
)

from services.collector.fetch.addresses import AddressPolicy

__all__ = [
    "CollectorSettings",
    "CollectorTopics",
    "DedupeSettings",
    "FetchSettings",
    "IndexerSettings",
    "PipelineSettings",
    "Role",
]

# all: collect (gRPC API, scheduler, pipeline) and index in one process; fetch: collect only; index: index only.
Role = Literal["all", "fetch", "index"]


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CollectorTopics(_Group):
    """Topic names. Only tests and side-by-side deployments change them (each test uses its own topics)."""

    posts: str = POSTS
    posts_deadletter: str = POSTS_DEADLETTER
    deadletter: str = DEADLETTER


class PipelineSettings(_Group):
    """Limits of the ingest pipeline: what is too large to be a post, and how work is sliced."""

    # Longer bodies are rejected (TOO_LARGE) rather than truncated: a truncated post would be wrong content.
    max_text_chars: int = Field(default=50_000, ge=100)
    max_title_chars: int = Field(default=1_000, ge=10)
    # Posts enriched and handed to Kafka per slice; the next slice is enriched while this one is acknowledged.
    slice_size: int = Field(default=500, ge=1, le=10_000)
    # Post ids remembered as produced: a re-delivery of one of them is skipped (counted as a duplicate).
    remember_ids: int = Field(default=200_000, ge=1)
    # At start (fetch/all roles) the ids of the last recall_tail records of the posts topic (split over its
    # partitions) join that memory, read within recall_tail_timeout_s: posts Kafka acknowledged just before a
    # kill -9, before the database heard of them, are not produced again (issue 13). 0: off.
    recall_tail: int = Field(default=50_000, ge=0)
    recall_tail_timeout_s: float = Field(default=10.0, gt=0)
    # Optional directory of extra lexicon files (*.yaml, applied in name order after the built-in ones).
    lexicon_dir: Path | None = None
    # Backpressure (budget.py): posts handed to Kafka and not yet acknowledged, at most. A call that finds no room
    # within admission_wait_s is refused: RESOURCE_EXHAUSTED with retry advice retry_after_s, or UNAVAILABLE with
    # stalled_retry_after_s when Kafka acknowledged nothing for stall_after_s. A call whose sends are not
    # acknowledged within ack_timeout_s answers UNAVAILABLE (the sends go on; a retry is not produced twice).
    max_in_flight: int = Field(default=20_000, ge=1)
    admission_wait_s: float = Field(default=2.0, ge=0)
    retry_after_s: float = Field(default=1.0, gt=0)
    stall_after_s: float = Field(default=10.0, gt=0)
    stalled_retry_after_s: float = Field(default=5.0, gt=0)
    ack_timeout_s: float = Field(default=30.0, gt=0)


class DedupeSettings(_Group):
    """The near-duplicate window (see services/collector/core/dedupe.py)."""

    max_entries: int = Field(default=200_000, ge=1)
    max_age_days: float = Field(default=7.0, gt=0)
    max_distance: int = Field(default=3, ge=0, le=3)


class IndexerSettings(_Group):
    """The consumer that bulk-indexes qingfeng.posts.v1 into the posts write alias."""

    group_id: str = "collector-indexer"
    # Records per batch (committed after Elasticsearch acknowledged every document of it).
    batch_size: int = Field(default=2_000, ge=1, le=20_000)
    # A batch goes out as bulk requests of at most bulk_docs documents (and under 1 MiB), up to bulk_concurrency
    # of them in flight: the next request's documents are built while Elasticsearch indexes the previous ones.
    bulk_docs: int = Field(default=500, ge=1, le=20_000)
    bulk_concurrency: int = Field(default=3, ge=1, le=16)
    # Batches handled at once while the indexer is behind (qingfeng.kafka.BatchWindow): the next batch is fetched,
    # decoded and sent while the last requests of the one before are indexed; offsets are still committed in order.
    # 2 drains a backlog 12-20 % faster (indexer stage alone) for one more batch of memory (peak RSS 264-268 MiB
    # against 220-224); 1 (the default) was as fast or faster end to end at the head of the log.
    batches_in_flight: int = Field(default=1, ge=1, le=8)
    # Waits before restarting the consumer after Elasticsearch or Kafka failed (doubles up to the maximum). The
    # maximum is short because a failed attempt already spends ~20 s in the bulk writer's own retries: with 30 s the
    # indexer resumed 13-22 s after Elasticsearch was back (soak, issue 13); with 5 s the loop still cannot spin.
    retry_backoff_s: float = Field(default=1.0, gt=0)
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    # The grader's post -> event assignments joined into the documents (services/collector/event_ids.py), so each
    # post is indexed once with its event_id instead of again by the grader's index role. False: not read.
    event_ids: bool = True
    # The topic the grader publishes them on (its QF_GRADER_TOPICS__POST_EVENTS; tests use their own).
    post_events_topic: str = POST_EVENTS
    # How long after its record's timestamp a post waits for its assignment, only while the grader is publishing
    # (a record within event_active_s); the grader's index role applies assignments event_wait_s + ~1.5 s late.
    event_wait_s: float = Field(default=2.0, ge=0, le=30)
    event_active_s: float = Field(default=5.0, gt=0)
    # At start the reader goes back this far on the topic; it keeps the newest event_ids_max assignments (about
    # 240 bytes each: 100,000 are 24 MB and the last 43 s at 2,315 posts/s, plenty for an indexer near the head;
    # one further behind indexes its posts without, and the grader's index role writes them as before).
    event_lookback_s: float = Field(default=60.0, ge=0)
    event_ids_max: int = Field(default=100_000, ge=1)


class FetchSettings(_Group):
    """What the fetcher may connect to besides the public internet (the SSRF guard, fetch/addresses.py)."""

    # Networks (10.20.0.0/16, 127.0.0.1, ::1) and exact host names whose non-public addresses may be fetched,
    # comma-separated in the environment: QF_COLLECTOR_FETCH__ALLOW=10.20.0.0/16,mastodon.internal. Empty in
    # production: loopback, private, link-local (cloud metadata) and other non-global addresses are refused.
    allow: Annotated[tuple[str, ...], NoDecode] = ()
    # Directories JSONL file sources may read (comma-separated). Empty: file sources are refused, so a source
    # cannot be pointed at /run/secrets or /etc. ImportPosts is not affected.
    file_roots: Annotated[tuple[Path, ...], NoDecode] = ()

    @field_validator("allow", "file_roots", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allow")
    @classmethod
    def _valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        AddressPolicy.parse(value)  # a typo in a network fails at start, naming the entry
        return value

    def address_policy(self) -> AddressPolicy:
        return AddressPolicy.parse(self.allow)


class CollectorSettings(ServiceSettings):
    """The collector process: its role, stores, topics, pipeline limits and the tip key."""

    model_config: ClassVar[SettingsConfigDict] = service_settings_config("QF_COLLECTOR_")

    grpc: GrpcSettings = GrpcSettings(port=50061)
    # The garbage collector's thresholds and start-up freeze (qingfeng.gc_tuning: a hot path's CPU per post).
    gc: GcSettings = GcSettings()
    # Source registry, tip registry and audit log. SQLite by default; postgresql+asyncpg://… is supported.
    database: DatabaseSettings = DatabaseSettings(url=SecretStr("sqlite+aiosqlite:///./.qingfeng/collector.db"))
    role: Role = "all"
    topics: CollectorTopics = CollectorTopics()
    pipeline: PipelineSettings = PipelineSettings()
    dedupe: DedupeSettings = DedupeSettings()
    indexer: IndexerSettings = IndexerSettings()
    fetch: FetchSettings = FetchSettings()
    # Fernet keys (32 url-safe base64 bytes each) encrypting tip submitters at rest, newest first: the first
    # encrypts, all decrypt (rotation; comma-separated here, one per line in tip_key_file, which is the way to
    # give them in production: a mounted secret, apart from the database). Without a key the collector refuses
    # tips: it never stores a submitter in plain text. `python -m services.collector.rekey` moves old tips on.
    tip_key: SecretStr | None = None
    tip_key_file: Path | None = None
    # How often the scheduler looks for due sources.
    scheduler_tick_s: float = Field(default=5.0, gt=0)
    # Directory of the access tokens sources name (WeiboApiConfig/MastodonConfig.token_secret_name), one per file.
    source_secrets_dir: Path | None = None

    @model_validator(mode="after")
    def _one_tip_key(self) -> CollectorSettings:
        if self.tip_key is not None and self.tip_key_file is not None:
            raise ValueError("set QF_COLLECTOR_TIP_KEY or QF_COLLECTOR_TIP_KEY_FILE, not both")
        return self

    def resolved_tip_key(self) -> SecretStr | None:
        """The tip key from ``tip_key`` or the contents of ``tip_key_file`` (None when neither is set).

        A configured file that cannot be read is an error, not a missing key: the operator asked for tips.
        """
        if self.tip_key is not None:
            return self.tip_key
        if self.tip_key_file is None:
            return None
        try:
            text = self.tip_key_file.read_text(encoding="ascii").strip()
        except OSError as err:
            raise ValueError(f"QF_COLLECTOR_TIP_KEY_FILE={self.tip_key_file}: {err.strerror}") from err
        return SecretStr(text) if text else None
