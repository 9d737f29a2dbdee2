"""The soak's load: the shared Weibo posts replayed through the collector's ImportPosts at a fixed rate.

Each pass over the file is a *cycle* with fresh ids (``<run>c<cycle>-<id>``, parents mapped the same way, so reposts
still find their original) and ``created_at`` = the wall clock when the line is sent, so the replay can run longer
than the file and the grader sees a live stream (its event time is the posts' time). ``event_id`` and ``label``
(ground truth) are removed. The text is kept: a near-duplicate of an earlier cycle is still produced, marked
``duplicate_of`` by the collector.

The calls are signed with the ``ops-import`` identity as `qingfeng import --collector` does. A chunk whose call fails
(the collector was killed, Kafka is restarting) is sent again, same ids, until it goes through or the soak's grace
ends, so every line is eventually answered: accepted (its id must reach Elasticsearch), or rejected with a reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from qingfeng.cli.pki import IMPORT_ISSUER, key_file
from qingfeng.rpc.credentials import load_signer
from qingfeng.v1 import common_pb2, source_pb2, source_pb2_grpc

from services.collector.sources.base import post_id as collector_post_id

__all__ = ["FeedStats", "Feeder", "load_rows"]

_METHOD = "/qingfeng.v1.CollectorService/ImportPosts"
_TRUTH = ("event_id", "label")
# ImportPosts without a source id attributes posts to the built-in source "import"; the Post id the collector gives
# a line is computed with the collector's own function, so the soak compares the same ids it produces.
_IMPORT_SOURCE = "import"


def load_rows(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                for key in _TRUTH:
                    row.pop(key, None)
                rows.append(row)
                if limit and len(rows) >= limit:
                    break
    return rows


@dataclass
class FeedStats:
    """What the collector answered, over all streams; ``accepted_ids`` holds every id answered as not rejected."""

    sent_lines: int = 0
    answered_lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_unlisted: int = 0
    failed_calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    unanswered_lines: int = 0
    accepted_ids: set[str] = field(default_factory=set)
    first_sent: float | None = None
    last_answered: float | None = None
    # Longest time without any chunk answered (e.g. while the collector restarts), and when it began (monotonic).
    longest_gap_s: float = 0.0
    longest_gap_from: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Feeder:
    """``streams`` threads, each sending its share of the rate as ImportPosts calls of ``chunk`` lines."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        *,
        address: str,
        ca: Path,
        state: Path,
        run_tag: str,
        rate: float,
        streams: int = 2,
        chunk: int = 1_000,
        batch_lines: int = 50,
    ) -> None:
        self._rows = rows
        self._address = address
        self._ca = ca.read_bytes()
        self._signer = load_signer(IMPORT_ISSUER, key_file(state, IMPORT_ISSUER))
        self._tag = run_tag
        self._rate = rate
        self._streams = streams
        self._chunk = chunk
        # Lines per ImportPosts message (``jsonl_lines``), as `qingfeng import --batch-lines` sends them; 1 sends
        # each line as its own ``jsonl_line`` message (the gRPC read of a message costs the collector ~50 µs).
        self._batch_lines = batch_lines
        self.stats = FeedStats()
        self._stop_feeding = threading.Event()
        self._give_up = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        started = time.monotonic()
        for stream in range(self._streams):
            thread = threading.Thread(target=self._run, args=(stream, started), name=f"feed-{stream}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop_feeding(self) -> None:
        """No new chunks from now on; chunks in flight are still sent (and retried) until ``finish``."""
        self._stop_feeding.set()

    def finish(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the retries of chunks in flight, then give up on what is still unanswered."""
        deadline = time.monotonic() + grace_s
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._give_up.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _line(self, index: int) -> tuple[str, str]:
        """(post id, JSON line) of the ``index``-th line of the endless replay, stamped now."""
        cycle, position = divmod(index, len(self._rows))
        row = dict(self._rows[position])
        prefix = f"{self._tag}c{cycle}-"
        row["id"] = prefix + str(row["id"])
        if row.get("parent_id"):
            row["parent_id"] = prefix + str(row["parent_id"])
        row["created_at"] = datetime.now(UTC).isoformat()
        post_id = collector_post_id(common_pb2.SOURCE_KIND_JSONL_IMPORT, _IMPORT_SOURCE, row["id"])
        return post_id, json.dumps(row, ensure_ascii=False)

    def _run(self, stream: int, started: float) -> None:
        per_stream = self._rate / self._streams
        credentials = grpc.ssl_channel_credentials(self._ca)
        options = [("grpc.max_send_message_length", 8 * 1024 * 1024)]
        with grpc.secure_channel(self._address, credentials, options=options) as channel:
            stub = source_pb2_grpc.CollectorServiceStub(channel)
            sent_in_stream = 0
            while not self._stop_feeding.is_set():
                # Lines are interleaved over the streams, so together they walk the file in order.
                indexes = [(sent_in_stream + i) * self._streams + stream for i in range(self._chunk)]
                first_due = started + sent_in_stream / per_stream
                self._send_chunk(stub, indexes, first_due, per_stream)
                sent_in_stream += self._chunk

    def _send_chunk(
        self, stub: source_pb2_grpc.CollectorServiceStub, indexes: list[int], first_due: float, per_stream: float
    ) -> None:
        attempt = 0
        while True:
            attempt += 1
            ids: list[str] = []

            def requests(ids: list[str] = ids, paced: bool = attempt == 1) -> Iterator[source_pb2.ImportPostsRequest]:
                batch: list[str] = []
                for i, index in enumerate(indexes):
                    if paced:
                        # Paced on the schedule (a line is made when due, so its created_at is its send time); a
                        # stream that fell behind catches up without sleeping. A message leaves with its last line.
                        delay = first_due + i / per_stream - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                    post_id, line = self._line(index)
                    ids.append(post_id)
                    if self._batch_lines <= 1:
                        yield source_pb2.ImportPostsRequest(jsonl_line=line)
                        continue
                    batch.append(line)
                    if len(batch) == self._batch_lines:
                        yield source_pb2.ImportPostsRequest(jsonl_lines=source_pb2.JsonlLines(lines=batch))
                        batch = []
                if batch:
                    yield source_pb2.ImportPostsRequest(jsonl_lines=source_pb2.JsonlLines(lines=batch))

            if self.stats.first_sent is None:
                self.stats.first_sent = time.monotonic()
            try:
                response = stub.ImportPosts(requests(), metadata=self._signer.metadata(_METHOD), timeout=120)
            except grpc.RpcError as err:
                code = err.code().name if hasattr(err, "code") else "UNKNOWN"
                with self.stats.lock:
                    self.stats.failed_calls += 1
                    self.stats.failures[code] = self.stats.failures.get(code, 0) + 1
                if self._give_up.is_set():
                    with self.stats.lock:
                        self.stats.unanswered_lines += len(indexes)
                    return
                time.sleep(min(0.5 * attempt, 3.0))
                continue
            self._record(ids, response.summary)
            return

    def _record(self, ids: list[str], summary: source_pb2.ImportSummary) -> None:
        rejected = {int(r.index) - 1 for r in summary.rejections}
        with self.stats.lock:
            stats = self.stats
            stats.sent_lines += len(ids)
            stats.answered_lines += len(ids)
            stats.accepted += summary.accepted
            stats.duplicate += summary.duplicate
            stats.rejected += summary.rejected
            stats.rejected_unlisted += max(0, summary.rejected - len(rejected))
            stats.accepted_ids.update(post_id for i, post_id in enumerate(ids) if i not in rejected)
            now = time.monotonic()
            previous = stats.last_answered or stats.first_sent or now
            if now - previous > stats.longest_gap_s:
                stats.longest_gap_s, stats.longest_gap_from = now - previous, previous
            stats.last_answered = now
