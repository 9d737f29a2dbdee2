"""The real pipeline, in process and in event time, for the bench scripts.

    JSONL line -> collector source parser (post_pb2.Post) -> collector pipeline (validation, enrichment, dedupe)
    -> grader conversion (Post -> PostView) -> grader core (clustering, windows, policy, alerts)

No Kafka and no Elasticsearch: the collector's `Pipeline` writes into an in-memory sink instead of the producer, and
the grader core is fed the converted posts in file order (the shared data is sorted by `created_at`), so its clock is
the posts' own time, exactly as the live consumer would run it.

Ground truth never enters: `event_id` and `label` are removed from each line before it is parsed (the JSONL parser
does not read them either). Ablations are applied to the `Post` the collector produced, at the grader's door:

- **parents removed**: `parent_id` and `root_id` cleared. Done after the collector, because the collector reads the
  parent only to admit a repost with no words of its own (10.7% of the shared data); with the parent gone before it,
  those posts would be dead-lettered and drop out of the clustering score instead of being clustered.
- **counts zeroed**: `reposts`, `comments` and `likes` set to 0. They are crawl-time snapshots (from the future
  during a replay); `author.followers` is a crawl-time number too but is kept (the brief zeroes the three counts).

The collector uses neither field for enrichment or dedupe, so enriching once and deriving the four variants is the
same as running the collector four times. The grader conversion is the service's own `services.grader.convert`, which
also passes on the original of a post the collector marked as a duplicate (`duplicate_of`, a text signal that event
detection weighs as such; it stays in every variant).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # so that `services` imports when a bench script runs from anywhere

from qingfeng.kafka import Delivery, OutgoingRecord  # noqa: E402
from qingfeng.text import Enricher  # noqa: E402
from qingfeng.v1 import common_pb2, post_pb2, source_pb2  # noqa: E402

from services.collector.core import Deduper  # noqa: E402
from services.collector.pipeline import Outcome, Pipeline  # noqa: E402
from services.collector.settings import CollectorTopics, PipelineSettings  # noqa: E402
from services.collector.sources import parse_jsonl_line  # noqa: E402
from services.grader.convert import post_view  # noqa: E402
from services.grader.core import (  # noqa: E402
    LEVEL_RANK,
    Alert,
    Clusterer,
    ClusteringConfig,
    EventSnapshot,
    Grader,
    GraderConfig,
    PostView,
)
from services.grader.core.policy import Policy  # noqa: E402

__all__ = [
    "IMPORT_SOURCE",
    "TRUTH_FIELDS",
    "VARIANTS",
    "Collected",
    "Replay",
    "Variant",
    "bcubed",
    "collect",
    "converter",
    "default_data_dir",
    "first_alerts",
    "grader_config",
    "highest_levels",
    "majority",
    "read_rows",
    "replay",
    "to_views",
    "variant_posts",
]

# The import source every replayed line is attributed to (as `qingfeng import` does).
IMPORT_SOURCE = source_pb2.Source(id="import", kind=common_pb2.SOURCE_KIND_JSONL_IMPORT)
# Ground truth of the shared data set: never handed to the pipeline.
TRUTH_FIELDS = ("event_id", "label")


def default_data_dir() -> Path:
    """$QF_SHARED_DATA, else ../shared/data relative to the repo root."""
    import os

    env = os.environ.get("QF_SHARED_DATA")
    return Path(env) if env else (ROOT.parent / "shared" / "data").resolve()


def read_rows(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file (blank lines skipped), first `limit` only when set."""
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if limit and len(rows) >= limit:
                    break
    return rows


# -- collector ---------------------------------------------------------------------------------------------------


class _MemorySink:
    """The collector's RecordSink without Kafka: every record is 'acknowledged' at once."""

    max_request_size = 8 * 1024 * 1024

    def __init__(self) -> None:
        self.offset = 0

    async def send_many(self, records: Iterable[OutgoingRecord]) -> list[Delivery]:
        out = []
        for record in records:
            out.append(Delivery(record.topic, 0, self.offset))
            self.offset += 1
        return out


@dataclass(frozen=True)
class Collected:
    """What the collector made of the file: enriched posts in input order, and what it rejected."""

    posts: list[post_pb2.Post]
    rejected: int
    duplicates: int
    parse_s: float
    enrich_s: float


def collect(rows: Sequence[dict[str, Any]], chunk: int = 5000, enricher: Enricher | None = None) -> Collected:
    """Parse and enrich rows with the collector's own code; ground-truth fields are removed first."""
    collected_at = datetime.now(UTC)
    t0 = time.perf_counter()
    items = []
    for i, row in enumerate(rows):
        clean = {k: v for k, v in row.items() if k not in TRUTH_FIELDS}
        line = json.dumps(clean, ensure_ascii=False)
        items.append(parse_jsonl_line(line, IMPORT_SOURCE, collected_at=collected_at, origin=f"line {i + 1}"))
    parse_s = time.perf_counter() - t0
    pipeline = Pipeline(
        _MemorySink(),
        enricher=enricher or Enricher(),
        deduper=Deduper(),
        settings=PipelineSettings(),
        topics=CollectorTopics(),
    )

    async def run() -> list[Any]:
        results = []
        for start in range(0, len(items), chunk):
            results.extend((await pipeline.ingest(items[start : start + chunk])).results)
        return results

    t0 = time.perf_counter()
    results = asyncio.run(run())
    enrich_s = time.perf_counter() - t0
    outcomes = Counter(r.outcome for r in results)
    posts = [r.post for r in results if r.outcome is not Outcome.REJECTED and r.post is not None and not r.redelivered]
    return Collected(posts, outcomes[Outcome.REJECTED], outcomes[Outcome.DUPLICATE], parse_s, enrich_s)


@dataclass(frozen=True)
class Variant:
    """One of the four replays: repost parents kept or removed, per-post counts as given or zeroed."""

    parents: bool
    counts: bool

    @property
    def name(self) -> str:
        parents = "parents kept" if self.parents else "parent_id removed"
        return f"{parents}, {'counts as given' if self.counts else 'counts zeroed'}"


VARIANTS = (Variant(True, True), Variant(True, False), Variant(False, True), Variant(False, False))


def variant_posts(posts: Iterable[post_pb2.Post], variant: Variant) -> Iterator[post_pb2.Post]:
    """The collector's posts as the grader would receive them in this variant (copies when changed)."""
    for post in posts:
        if variant.parents and variant.counts:
            yield post
            continue
        p = post_pb2.Post()
        p.CopyFrom(post)
        if not variant.parents:
            p.parent_id = ""
            p.root_id = ""
        if not variant.counts:
            p.reposts = p.comments = p.likes = 0
        yield p


# -- grader ------------------------------------------------------------------------------------------------------


def converter() -> tuple[Callable[[post_pb2.Post], PostView], str]:
    """The grader's own Post -> PostView conversion (the one its Kafka consumer uses) and where it comes from."""
    return post_view, "services/grader/convert.py"


def to_views(
    posts: Iterable[post_pb2.Post], convert: Callable[[post_pb2.Post], PostView] = post_view
) -> list[PostView]:
    """Convert posts for the grader core."""
    return [convert(p) for p in posts]


def grader_config(parents: bool) -> GraderConfig:
    """The engine settings of a replay: defaults, or the weak author/time signals when the parents are lost."""
    base = GraderConfig()
    return base if parents else replace(base, clustering=ClusteringConfig.for_lost_parents())


@dataclass
class Replay:
    """What a replay produced: post -> final event id (after merges), every alert, and how long grading took."""

    assigned: dict[str, str]
    alerts: list[Alert]
    merged: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    # (event id, event time, level) each time an event's rising flag turns on.
    rising: list[tuple[str, float, str]] = field(default_factory=list)
    fed: int = 0  # posts fed to the grader (the unattached ones included)
    grader: Grader | None = None

    def final(self, event_id: str) -> str:
        """The event an id ended up in, following merges."""
        seen = 0
        while event_id in self.merged and seen < 64:
            event_id = self.merged[event_id]
            seen += 1
        return event_id


def replay(
    views: Sequence[PostView], policy: Policy, config: GraderConfig, batch: int = 1, clusterer: Clusterer | None = None
) -> Replay:
    """Feed the views in order through a fresh grader; each post's event is read as it is assigned.

    With `batch` > 1 posts go in as a consumer poll would deliver them; the assignment is then read after the
    batch, which is exact unless an event expires within the batch (an idle week of event time inside one poll).
    `clusterer` replaces the grader's own event detection (the trivial baselines of grading_eval). Posts the
    clustering leaves unattached (no event) are missing from `assigned`.
    """
    grader = Grader(policy, config)
    if clusterer is not None:
        grader.clusterer = clusterer
    result = Replay({}, [], grader=grader)
    posts = grader.clusterer.posts
    rising_now: set[str] = set()
    t0 = time.perf_counter()
    for i in range(0, len(views), batch):
        chunk = views[i : i + batch]
        for out in grader.process_batch(chunk):
            if isinstance(out, Alert):
                result.alerts.append(out)
            elif isinstance(out, EventSnapshot):
                if out.merged_into:
                    result.merged[out.event_id] = out.merged_into
                elif out.rising != (out.event_id in rising_now):
                    if out.rising:
                        rising_now.add(out.event_id)
                        result.rising.append((out.event_id, out.grade.graded_at.timestamp(), out.level))
                    else:
                        rising_now.discard(out.event_id)
        for v in chunk:
            eid = posts.get(v.id)
            if eid:
                result.assigned[v.id] = eid
    result.seconds = time.perf_counter() - t0
    result.fed = len(views)
    result.assigned = {pid: result.final(eid) for pid, eid in result.assigned.items()}
    return result


def bcubed(truth: dict[str, str], predicted: dict[str, str]) -> tuple[float, float, float]:
    """B-cubed precision, recall and F1 of a clustering (item -> cluster) against truth (item -> class).

    Items missing from `predicted` count as singletons.
    """
    pred = {p: predicted.get(p, f"\0{p}") for p in truth}
    pairs = Counter((pred[p], truth[p]) for p in truth)
    cluster_size = Counter(pred.values())
    class_size = Counter(truth.values())
    n = len(truth)
    if not n:
        return 0.0, 0.0, 0.0
    precision = sum(k * k / cluster_size[c] for (c, _), k in pairs.items()) / n
    recall = sum(k * k / class_size[t] for (_, t), k in pairs.items()) / n
    return precision, recall, 2 * precision * recall / (precision + recall)


def majority(truth: dict[str, str], predicted: dict[str, str]) -> tuple[dict[str, str], dict[str, Counter[str]]]:
    """Each truth class's majority cluster: the predicted event holding most of its items (ties: the one holding
    its earliest item, `truth` being in time order), with every class's cluster counts."""
    members: dict[str, Counter[str]] = {}
    first: dict[str, str] = {}
    for item, cls in truth.items():
        pe = predicted.get(item, f"\0{item}")
        members.setdefault(cls, Counter())[pe] += 1
        first.setdefault(cls, pe)
    out: dict[str, str] = {}
    for cls, counts in members.items():
        best = max(counts.values())
        tied = [pe for pe, n in counts.items() if n == best]
        out[cls] = first[cls] if first[cls] in tied else min(tied)
    return out, members


def highest_levels(result: Replay) -> dict[str, int]:
    """Final event id -> highest level rank ever alerted on it (or on an event merged into it)."""
    out: dict[str, int] = {}
    for a in result.alerts:
        eid = result.final(a.event_id)
        out[eid] = max(out.get(eid, 0), LEVEL_RANK[a.to_level])
    return out


def first_alerts(result: Replay, min_level: str) -> dict[str, list[float]]:
    """Final event id -> event times (epoch seconds, ascending) of its alerts to `min_level` or above."""
    rank = LEVEL_RANK[min_level]
    out: dict[str, list[float]] = {}
    for a in result.alerts:
        if LEVEL_RANK[a.to_level] >= rank:
            out.setdefault(result.final(a.event_id), []).append(a.at.timestamp())
    for times in out.values():
        times.sort()
    return out
