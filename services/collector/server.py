"""``CollectorService`` over gRPC: requests in, registry rules and the pipeline, responses or status codes out.

Errors are gRPC statuses with ``google.rpc`` details (``errors.py`` draws the tree): INVALID_ARGUMENT carries an
``ErrorInfo`` (reason, domain ``qingfeng.v1``) and a ``BadRequest`` with every field violation; NOT_FOUND,
ALREADY_EXISTS and FAILED_PRECONDITION carry an ``ErrorInfo``; Kafka failing under an import or a tip is UNAVAILABLE
(safe to retry: re-delivered posts are recognised by id). Backpressure (``budget.py``): a full produce budget is
RESOURCE_EXHAUSTED, a stalled Kafka UNAVAILABLE; both, like every Kafka failure, carry a ``google.rpc.RetryInfo``
saying when to send the same posts again.

The caller is the one the credential interceptor verified (``callers.py``) and every state change is appended to
the audit log with it. Never log a ``SubmitTipRequest``: its submitter is sensitive (see ``tips.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NoReturn, Protocol

import grpc
from aiokafka.errors import KafkaError
from qingfeng.kafka import KafkaHelperError
from qingfeng.rpc.errors import Unavailable, abort, status_of
from qingfeng.v1 import common_pb2, post_pb2, source_pb2, source_pb2_grpc

from services.collector import registry
from services.collector.adapters.sql import SqlStore
from services.collector.callers import Caller, current_caller
from services.collector.errors import (
    CollectorError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.collector.pipeline import IngestReport, Outcome
from services.collector.ports import IngestSummary, Rejected
from services.collector.sources.base import post_id
from services.collector.sources.jsonl import parse_jsonl_line
from services.collector.tips import TipDesk, tip_message

__all__ = ["CollectorServicer", "LineParser", "imported_post", "jsonl_line_parser", "status_of"]

_log = logging.getLogger(__name__)

MAX_REPORTED_REJECTIONS: Final = 100
# Lines one ``jsonl_lines`` message may carry (``JsonlLines.lines``' declared max_items in source.proto).
MAX_BATCH_LINES: Final = 1_000


class LineParser(Protocol):
    """Turns one JSON Lines line into a Post (not yet enriched) or a Rejected (``sources/jsonl.py``)."""

    def __call__(
        self, line: str, source: source_pb2.Source, *, line_number: int, collected_at: datetime
    ) -> post_pb2.Post | Rejected: ...


def jsonl_line_parser(
    line: str, source: source_pb2.Source, *, line_number: int, collected_at: datetime
) -> post_pb2.Post | Rejected:
    """The shared-data JSONL format, with the source's ``JsonlConfig.field_map`` when it has one.

    ``ValueError`` when that field map names fields a Post does not have (the source is misconfigured).
    """
    field_map = source.jsonl.field_map if source.HasField("jsonl") else None
    # The item's place in its stream: `qingfeng import` sends a file as several streams and maps it back to lines.
    origin = f"ImportPosts item {line_number}"
    return parse_jsonl_line(line, source, collected_at=collected_at, origin=origin, field_map=field_map)


class ImportIngest(Protocol):
    async def ingest(self, items: Sequence[post_pb2.Post | Rejected], *, owned: bool = False) -> IngestReport: ...


def imported_post(item: post_pb2.Post, source: source_pb2.Source) -> post_pb2.Post | Rejected:
    """A streamed Post attributed to ``source``: id recomputed from its native id (or id, or URL), enrichment reset."""
    post = post_pb2.Post()
    post.CopyFrom(item)
    for derived in ("enrichment", "dedupe", "text_simplified", "keywords"):
        post.ClearField(derived)
    native = item.native_id or item.id
    try:
        post.id = post_id(source.kind, source.id, native, item.url)
    except ValueError as err:
        return Rejected(
            reason=post_pb2.DEAD_LETTER_REASON_INVALID,
            message=str(err),
            payload=item.SerializeToString(),
            source_id=source.id,
            origin=item.url,
        )
    post.native_id = native
    post.source_id = source.id
    post.source_kind = source.kind
    post.enrichment.regions.extend(source.default_regions)
    return post


# Column of each outcome in a source's [accepted, duplicate, rejected] counts.
_COLUMN: Final = {Outcome.ACCEPTED: 0, Outcome.DUPLICATE: 1, Outcome.REJECTED: 2}


@dataclass
class _ImportTally:
    """What an import did, per source (for the source counters) and in total (for the reply)."""

    per_source: dict[str, list[int]] = field(default_factory=dict)
    rejections: list[source_pb2.ImportRejection] = field(default_factory=list)

    def add(self, source_id: str, index: int, outcome: Outcome, rejected: Rejected | None) -> None:
        counts = self.per_source.get(source_id)
        if counts is None:
            counts = self.per_source[source_id] = [0, 0, 0]
        counts[_COLUMN[outcome]] += 1
        if rejected is not None and len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append(
                source_pb2.ImportRejection(index=index, reason=rejected.reason, message=rejected.message)
            )

    def summary(self, source_id: str | None = None) -> IngestSummary:
        rows = [self.per_source.get(source_id, [0, 0, 0])] if source_id is not None else self.per_source.values()
        return IngestSummary(*(sum(r[i] for r in rows) for i in range(3)))


class CollectorServicer(source_pb2_grpc.CollectorServiceServicer):
    """Thin: decode, call the registry rules / store / pipeline / tip desk, encode; errors become statuses."""

    def __init__(
        self,
        store: SqlStore,
        pipeline: ImportIngest,
        tips: TipDesk,
        parse_line: LineParser = jsonl_line_parser,
        *,
        import_chunk: int = 1_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        kafka_retry_after_s: float = 5.0,
    ) -> None:
        self._store = store
        self._kafka_retry_after_s = kafka_retry_after_s
        self._pipeline = pipeline
        self._tips = tips
        self._parse_line = parse_line
        self._import_chunk = import_chunk
        self._clock = clock

    # -- sources ----------------------------------------------------------------------------------------------

    async def CreateSource(
        self, request: source_pb2.CreateSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.CreateSourceResponse:
        try:
            source = registry.new_source(request.source, self._clock())
            stored = await self._store.create_source(source, _caller(context))
        except CollectorError as err:
            await _abort(context, err)
        return source_pb2.CreateSourceResponse(source=stored)

    async def GetSource(
        self, request: source_pb2.GetSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.GetSourceResponse:
        try:
            source = await self._store.get_source(_required_id(request.id))
        except CollectorError as err:
            await _abort(context, err)
        return source_pb2.GetSourceResponse(source=source)

    async def ListSources(
        self, request: source_pb2.ListSourcesRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.ListSourcesResponse:
        paused = request.paused if request.HasField("paused") else None
        try:
            size = registry.page_size_of(request.page_size)
            after = registry.decode_page_token(request.page_token, request.kind, paused)
            found = await self._store.list_sources(after_id=after, limit=size + 1, kind=request.kind, paused=paused)
        except CollectorError as err:
            await _abort(context, err)
        page = found[:size]
        token = registry.encode_page_token(page[-1].id, request.kind, paused) if len(found) > size else ""
        return source_pb2.ListSourcesResponse(sources=page, next_page_token=token)

    async def UpdateSource(
        self, request: source_pb2.UpdateSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.UpdateSourceResponse:
        now = self._clock()
        paths = list(request.update_mask.paths)
        try:
            source = await self._store.change_source(
                _required_id(request.source.id, "source.id"),
                lambda stored: registry.updated_source(stored, request.source, request.update_mask, now),
                _caller(context),
                "source.update",
                {"fields": paths or ["*"]},
            )
        except CollectorError as err:
            await _abort(context, err)
        return source_pb2.UpdateSourceResponse(source=source)

    async def DeleteSource(
        self, request: source_pb2.DeleteSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.DeleteSourceResponse:
        try:
            await self._store.delete_source(_required_id(request.id), _caller(context), registry.check_mutable)
        except CollectorError as err:
            await _abort(context, err)
        return source_pb2.DeleteSourceResponse()

    async def PauseSource(
        self, request: source_pb2.PauseSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.PauseSourceResponse:
        source = await self._set_paused(request.id, True, context, {"reason": request.reason})
        return source_pb2.PauseSourceResponse(source=source)

    async def ResumeSource(
        self, request: source_pb2.ResumeSourceRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.ResumeSourceResponse:
        source = await self._set_paused(request.id, False, context, {})
        return source_pb2.ResumeSourceResponse(source=source)

    async def _set_paused(
        self, source_id: str, paused: bool, context: grpc.aio.ServicerContext, details: dict[str, Any]
    ) -> source_pb2.Source:
        now = self._clock()

        def change(stored: source_pb2.Source) -> source_pb2.Source:
            registry.check_mutable(stored)
            stored.paused = paused
            stored.updated_at.FromDatetime(now)
            return stored

        try:
            return await self._store.change_source(
                _required_id(source_id),
                change,
                _caller(context),
                "source.pause" if paused else "source.resume",
                details,
                due_now=not paused,
            )
        except CollectorError as err:
            await _abort(context, err)

    # -- tips and imports -------------------------------------------------------------------------------------

    async def SubmitTip(
        self, request: source_pb2.SubmitTipRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.SubmitTipResponse:
        try:
            return await self._tips.submit(request, _caller(context))
        except CollectorError as err:
            await _abort(context, err)
        except (KafkaError, KafkaHelperError) as err:
            await _unavailable(context, "tip", err, self._kafka_retry_after_s)

    async def GetTip(
        self, request: source_pb2.GetTipRequest, context: grpc.aio.ServicerContext
    ) -> source_pb2.GetTipResponse:
        try:
            view = await self._tips.view(_required_id(request.id), _caller(context), request.reason)
            if view is None:
                raise NotFound("tip", request.id)
        except CollectorError as err:
            await _abort(context, err)
        return source_pb2.GetTipResponse(tip=tip_message(view))

    async def ImportPosts(
        self, request_iterator: AsyncIterator[source_pb2.ImportPostsRequest], context: grpc.aio.ServicerContext
    ) -> source_pb2.ImportPostsResponse:
        caller = _caller(context)
        tally = _ImportTally()
        sources: dict[str, source_pb2.Source] = {}
        chunk: list[tuple[int, str, post_pb2.Post | Rejected]] = []
        index = 0
        # One chunk is enriched and acknowledged while the next is read from the stream; chunks finish in order.
        in_flight: asyncio.Task[None] | None = None
        try:
            async for request in request_iterator:
                source_id = request.source_id or registry.IMPORT_SOURCE_ID
                # A stream names one source nearly always: known ones are taken without a coroutine per item.
                source = sources.get(source_id) or await self._import_source(source_id, sources)
                # A jsonl_lines batch is its lines one after the other: each line is an item with its own index.
                attributed = source.id  # read once per message, not per line (a protobuf string read makes a str)
                for item in self._import_items(request, source, index):
                    index += 1
                    chunk.append((index, attributed, item))
                    if len(chunk) >= self._import_chunk:
                        if in_flight is not None:
                            await in_flight
                        in_flight = asyncio.create_task(self._ingest_chunk(chunk, tally))
                        chunk = []
            if in_flight is not None:
                await in_flight
                in_flight = None
            await self._ingest_chunk(chunk, tally)
        except CollectorError as err:
            await _settle(in_flight)
            await self._finish_import(caller, tally, index, failed=str(err))
            await _abort(context, err)
        except (KafkaError, KafkaHelperError) as err:
            await _settle(in_flight)
            await self._finish_import(caller, tally, index, failed=repr(err))
            await _unavailable(context, "import", err, self._kafka_retry_after_s)
        except BaseException:
            if in_flight is not None:
                in_flight.cancel()  # the client went away (cancelled call): its chunk is not answered anyway
            raise
        total = await self._finish_import(caller, tally, index)
        summary = source_pb2.ImportSummary(
            accepted=total.accepted, duplicate=total.duplicate, rejected=total.rejected, rejections=tally.rejections
        )
        return source_pb2.ImportPostsResponse(summary=summary)

    async def _import_source(self, source_id: str, cache: dict[str, source_pb2.Source]) -> source_pb2.Source:
        source = cache.get(source_id)
        if source is None:
            source = await self._store.find_source(source_id)
            if source is None:
                raise NotFound("source", source_id)
            if source.kind == common_pb2.SOURCE_KIND_MANUAL_TIP:
                raise InvalidArgument.of("source_id", "tips come in through SubmitTip, not ImportPosts")
            cache[source_id] = source
        return source

    def _import_items(
        self, request: source_pb2.ImportPostsRequest, source: source_pb2.Source, before: int
    ) -> Iterator[post_pb2.Post | Rejected]:
        """The items of one message (one, or a batch's lines), numbered from ``before + 1``, parsed as taken."""
        which = request.WhichOneof("item")
        if which == "jsonl_lines":
            lines = request.jsonl_lines.lines
            if len(lines) > MAX_BATCH_LINES:
                # The gateway refuses such a message already; a direct caller gets the same answer here.
                raise InvalidArgument.of("jsonl_lines.lines", f"at most {MAX_BATCH_LINES} items, got {len(lines)}")
            collected_at = self._clock()
            for offset, line in enumerate(lines, start=before + 1):
                yield self._parsed_line(line, source, offset, collected_at)
        elif which == "jsonl_line":
            yield self._parsed_line(request.jsonl_line, source, before + 1, self._clock())
        else:
            yield self._import_item(request, source, before + 1)

    def _parsed_line(
        self, line: str, source: source_pb2.Source, index: int, collected_at: datetime
    ) -> post_pb2.Post | Rejected:
        try:
            return self._parse_line(line, source, line_number=index, collected_at=collected_at)
        except ValueError as err:  # the source's field map, not the line, is wrong
            raise FailedPrecondition(f"source {source.id!r} cannot parse JSON Lines: {err}") from err

    def _import_item(
        self, request: source_pb2.ImportPostsRequest, source: source_pb2.Source, index: int
    ) -> post_pb2.Post | Rejected:
        if request.WhichOneof("item") == "post":
            return imported_post(request.post, source)
        return Rejected(
            reason=post_pb2.DEAD_LETTER_REASON_INVALID,
            message="import item has neither post nor jsonl_line nor jsonl_lines",
            payload=request.SerializeToString(),
            source_id=source.id,
            origin=f"item {index}",
        )

    async def _ingest_chunk(self, chunk: list[tuple[int, str, post_pb2.Post | Rejected]], tally: _ImportTally) -> None:
        if not chunk:
            return
        # Each item was parsed here from its own line (or copied from its request): nothing reads it afterwards.
        report = await self._pipeline.ingest([item for _, _, item in chunk], owned=True)
        for (index, source_id, _), result in zip(chunk, report.results, strict=True):
            tally.add(source_id, index, result.outcome, result.rejected)

    async def _finish_import(
        self, caller: Caller, tally: _ImportTally, items: int, *, failed: str | None = None
    ) -> IngestSummary:
        total = tally.summary()
        try:
            for source_id in tally.per_source:
                await self._store.record_import(source_id, tally.summary(source_id))
            details: dict[str, Any] = {
                "items": items,
                "accepted": total.accepted,
                "duplicate": total.duplicate,
                "rejected": total.rejected,
                "sources": sorted(tally.per_source),
            }
            if failed is not None:
                details["failed"] = failed[:500]
            await self._store.audit(caller, "posts.import", ",".join(sorted(tally.per_source)) or "-", details)
        except Exception:  # the posts are in Kafka already; bookkeeping must not turn success into failure
            _log.exception("cannot record the import in the source registry")
        return total


async def _settle(task: asyncio.Task[None] | None) -> None:
    """Let a chunk still in flight finish (its posts count in the audit), whatever its outcome."""
    if task is not None and not task.done():
        await asyncio.gather(task, return_exceptions=True)


def _caller(context: grpc.aio.ServicerContext) -> Caller:
    """The verified caller (the credential interceptor ran before this handler)."""
    return current_caller()


def _required_id(value: str, field_name: str = "id") -> str:
    if not value:
        raise InvalidArgument.of(field_name, "required")
    return value


async def _abort(context: grpc.aio.ServicerContext, err: CollectorError) -> NoReturn:
    await abort(context, err)


async def _unavailable(context: grpc.aio.ServicerContext, what: str, err: Exception, retry_after_s: float) -> NoReturn:
    _log.warning("%s failed on Kafka: %s", what, err)
    await abort(context, Unavailable(f"Kafka did not acknowledge the {what}; retry", retry_delay_s=retry_after_s))
