"""``GraderService`` over gRPC: protobuf in, the engine's owner in the middle, protobuf or a status out.

Reads (GetEvent, ListEvents, ExplainGrade) look at the events in memory (ListEvents filters and pages them in
``listing.py``, with signed page tokens), at the engine's clock (event time);
events that went idle beyond the clustering horizon are only in the events index (search them through the
gateway); ListEventGrades reads each event's level history from the database (``history.py``). Commands
(UpdatePolicy, OverrideLevel) go through ``EngineOwner.command``: stored with their audit record (the caller
verified by the credential interceptor, ``qingfeng.rpc.current_caller``) before their alerts are published. An
invalid policy is answered with its errors and changes nothing. Override TTLs count in event time, like every
window and cool-down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

import grpc
from qingfeng.rpc import Caller, current_caller
from qingfeng.rpc.errors import abort, status_of
from qingfeng.v1 import common_pb2, event_pb2, event_pb2_grpc

from services.grader.active_policy import ActivePolicy, policy_record
from services.grader.adapters.policy_yaml import PolicyError, PolicyLoadError, load_policy
from services.grader.convert import grade_proto, level_enum, level_name, metrics_proto, reason_proto, scheme_enum
from services.grader.convert import timestamp as ts_proto
from services.grader.core import EventSnapshot, Grader, Output
from services.grader.errors import (
    ConcurrentModification,
    GraderError,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from services.grader.history import list_changes
from services.grader.listing import EventPageTokens, list_events
from services.grader.ports import AuditEntry, PolicyRecord, StateStore
from services.grader.state import EngineOwner

__all__ = ["GraderServicer", "status_of"]

_log = logging.getLogger(__name__)

_AGENCIES: Final = {name: number for name, number in common_pb2.Agency.items()}


def _actor(principal: str, agency: str | None) -> common_pb2.Actor:
    number = _AGENCIES.get(f"AGENCY_{(agency or '').upper()}", common_pb2.AGENCY_UNSPECIFIED)
    return common_pb2.Actor(id=principal, display_name=principal, agency=number)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: GraderError) -> NoReturn:
    await abort(context, err)


def _policy_proto(record: PolicyRecord, *, activated: bool) -> event_pb2.GradingPolicy:
    out = event_pb2.GradingPolicy(
        version=record.version,
        yaml=record.yaml,
        scheme=scheme_enum(record.scheme),  # type: ignore[arg-type]
        sha256=record.sha256,
    )
    if activated and record.activated_at is not None:
        out.activated_at.CopyFrom(ts_proto(record.activated_at))
        out.activated_by.CopyFrom(_actor(record.activated_by, record.agency))
    return out


def _errors_proto(errors: Iterable[PolicyError]) -> list[event_pb2.PolicyError]:
    return [event_pb2.PolicyError(line=e.line, column=e.column, field=e.field, message=e.message) for e in errors]


def _version_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^version\s*:", line):
            return number
    return 0


class GraderServicer(event_pb2_grpc.GraderServiceServicer):
    """The gRPC face of the grader (see the module docstring)."""

    def __init__(
        self,
        owner: EngineOwner,
        store: StateStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        page_tokens: EventPageTokens | None = None,
    ) -> None:
        self._owner = owner
        self._store = store
        self._clock = clock
        self._page_tokens = page_tokens or EventPageTokens()

    async def _guard(self, context: grpc.aio.ServicerContext[Any, Any], call: Any) -> Any:
        try:
            return await call()
        except GraderError as err:
            await _abort(context, err)

    # -- events --------------------------------------------------------------------------------------------------

    async def GetEvent(self, request: event_pb2.GetEventRequest, context: Any) -> event_pb2.GetEventResponse:
        async def call() -> event_pb2.GetEventResponse:
            return event_pb2.GetEventResponse(event=self._owner.render_event(self._snapshot(request.id, "id")))

        result: event_pb2.GetEventResponse = await self._guard(context, call)
        return result

    async def ListEvents(self, request: event_pb2.ListEventsRequest, context: Any) -> event_pb2.ListEventsResponse:
        async def call() -> event_pb2.ListEventsResponse:
            page, token = list_events(self._owner.engine.snapshots(), request, self._page_tokens)
            return event_pb2.ListEventsResponse(
                events=[self._owner.render_event(s) for s in page], next_page_token=token
            )

        result: event_pb2.ListEventsResponse = await self._guard(context, call)
        return result

    async def ExplainGrade(
        self, request: event_pb2.ExplainGradeRequest, context: Any
    ) -> event_pb2.ExplainGradeResponse:
        async def call() -> event_pb2.ExplainGradeResponse:
            snapshot = self._snapshot(request.event_id, "event_id")
            explanation = self._owner.engine.explain(snapshot.event_id)
            return event_pb2.ExplainGradeResponse(
                grade=grade_proto(explanation.grade),
                evaluations=[
                    event_pb2.CriterionEvaluation(reason=reason_proto(r), matched=m) for r, m in explanation.evaluations
                ],
                metrics=[metrics_proto(m) for m in explanation.metrics],
                policy_level=level_enum(explanation.policy_level),  # type: ignore[arg-type]
                summary=_summary(snapshot),
            )

        result: event_pb2.ExplainGradeResponse = await self._guard(context, call)
        return result

    async def ListEventGrades(
        self, request: event_pb2.ListEventGradesRequest, context: Any
    ) -> event_pb2.ListEventGradesResponse:
        async def call() -> event_pb2.ListEventGradesResponse:
            live = bool(request.event_id) and self._owner.engine.event(request.event_id) is not None
            changes = await list_changes(self._owner.history, request.event_id, live=live)
            return event_pb2.ListEventGradesResponse(changes=changes)

        result: event_pb2.ListEventGradesResponse = await self._guard(context, call)
        return result

    def _snapshot(self, event_id: str, field: str) -> EventSnapshot:
        if not event_id:
            raise InvalidArgument.of(field, "is required")
        snapshot = self._owner.engine.event(event_id)
        if snapshot is None:
            raise NotFound("event", event_id, f"event {event_id!r} is not live in the grader (search the index)")
        return snapshot

    # -- policy --------------------------------------------------------------------------------------------------

    async def GetPolicy(self, request: event_pb2.GetPolicyRequest, context: Any) -> event_pb2.GetPolicyResponse:
        async def call() -> event_pb2.GetPolicyResponse:
            active = self._active()
            if not request.version or request.version == active.record.version:
                return event_pb2.GetPolicyResponse(policy=_policy_proto(active.record, activated=True))
            record = await self._store.policy(request.version)
            if record is None:
                raise NotFound("policy", request.version)
            return event_pb2.GetPolicyResponse(policy=_policy_proto(record, activated=True))

        result: event_pb2.GetPolicyResponse = await self._guard(context, call)
        return result

    async def ValidatePolicy(
        self, request: event_pb2.ValidatePolicyRequest, context: Any
    ) -> event_pb2.ValidatePolicyResponse:
        try:
            policy = load_policy(request.yaml)
        except PolicyLoadError as err:
            return event_pb2.ValidatePolicyResponse(valid=False, errors=_errors_proto(err.errors))
        record = policy_record(request.yaml, policy)
        return event_pb2.ValidatePolicyResponse(valid=True, policy=_policy_proto(record, activated=False))

    async def UpdatePolicy(
        self, request: event_pb2.UpdatePolicyRequest, context: Any
    ) -> event_pb2.UpdatePolicyResponse:
        caller = current_caller()

        async def call() -> event_pb2.UpdatePolicyResponse:
            return await self._update_policy(request, caller)

        result: event_pb2.UpdatePolicyResponse = await self._guard(context, call)
        return result

    async def _update_policy(
        self, request: event_pb2.UpdatePolicyRequest, caller: Caller
    ) -> event_pb2.UpdatePolicyResponse:
        try:
            policy = load_policy(request.yaml)
        except PolicyLoadError as err:
            return event_pb2.UpdatePolicyResponse(errors=_errors_proto(err.errors), applied=False)
        active = self._active()
        expected = request.expected_active_version
        if expected and expected != active.record.version:
            raise ConcurrentModification(f"active policy is {active.record.version}, not {expected}")
        if policy.version == active.record.version or await self._store.policy(policy.version) is not None:
            message = f"version {policy.version!r} was already activated; a changed policy needs a new version"
            error = PolicyError(_version_line(request.yaml), 1, "version", message)
            return event_pb2.UpdatePolicyResponse(errors=_errors_proto([error]), applied=False)
        if request.dry_run:
            proposed = policy_record(request.yaml, policy)
            changes = _changes(self._owner.engine.dry_run(policy))
            return event_pb2.UpdatePolicyResponse(policy=_policy_proto(proposed, activated=False), changes=changes)
        record = policy_record(request.yaml, policy, activated_at=self._clock(), activated_by=caller.principal,
                               agency=caller.agency)  # fmt: skip
        rows: list[Any] = []
        previous = active.record.version

        def mutate(engine: Grader) -> list[Output]:
            current = self._active().record.version
            if current != previous or (expected and expected != current):
                raise ConcurrentModification(f"active policy changed to {current} meanwhile")
            rows.extend(engine.dry_run(policy))
            return engine.set_policy(policy)

        audit = AuditEntry(
            actor=caller.principal,
            agency=caller.agency,
            action="policy.update",
            target=policy.version,
            details={"previous": previous, "sha256": record.sha256, "scheme": policy.scheme},
        )
        await self._owner.command(mutate, audit, policy=ActivePolicy(record, policy))
        _log.info("policy %s activated by %s (was %s)", policy.version, caller.principal, previous)
        return event_pb2.UpdatePolicyResponse(
            policy=_policy_proto(record, activated=True), changes=_changes(rows), applied=True
        )

    def _active(self) -> ActivePolicy:
        active = self._owner.active
        if active is None:
            raise Unavailable("the grader has no active policy yet")
        return active

    # -- overrides -----------------------------------------------------------------------------------------------

    async def OverrideLevel(
        self, request: event_pb2.OverrideLevelRequest, context: Any
    ) -> event_pb2.OverrideLevelResponse:
        caller = current_caller()

        async def call() -> event_pb2.OverrideLevelResponse:
            return await self._override(request, caller)

        result: event_pb2.OverrideLevelResponse = await self._guard(context, call)
        return result

    async def _override(
        self, request: event_pb2.OverrideLevelRequest, caller: Caller
    ) -> event_pb2.OverrideLevelResponse:
        snapshot = self._snapshot(request.event_id, "event_id")
        level: str | None = None
        if request.level != common_pb2.WARNING_LEVEL_UNSPECIFIED:
            level = level_name(request.level)
            if level is None:
                raise InvalidArgument.of("level", f"unknown level {request.level}")
        reason = request.reason.strip()
        if not reason:
            raise InvalidArgument.of("reason", "is required (it is audited and shown with the grade)")
        ttl: timedelta | None = None
        if request.HasField("ttl"):
            ttl = request.ttl.ToTimedelta()
            if ttl <= timedelta(0):
                raise InvalidArgument.of("ttl", "must be positive")
        now = self._clock()
        event_id = snapshot.event_id

        def mutate(engine: Grader) -> list[Output]:
            expires = engine.clock_at + ttl if ttl is not None and engine.clock_at is not None else None
            try:
                return engine.override(event_id, level, reason, caller.principal, now, expires)
            except KeyError as err:
                raise NotFound("event", event_id) from err
            except ValueError as err:
                raise InvalidArgument.of("level", str(err)) from err

        audit = AuditEntry(
            actor=caller.principal,
            agency=caller.agency,
            action="event.override" if level is not None else "event.override_cleared",
            target=event_id,
            details={
                "level": level,
                "reason": reason,
                "ttl_s": ttl.total_seconds() if ttl else None,
                "level_before": snapshot.level,
            },
        )
        await self._owner.command(mutate, audit)
        return event_pb2.OverrideLevelResponse(event=self._owner.render_event(self._snapshot(event_id, "event_id")))


def _changes(rows: Iterable[Any]) -> list[event_pb2.LevelChange]:
    return [
        event_pb2.LevelChange(
            event_id=r.event_id,
            event_title=r.title,
            old_level=level_enum(r.old_level),  # type: ignore[arg-type]
            new_level=level_enum(r.new_level),  # type: ignore[arg-type]
        )
        for r in rows
        if r.old_level != r.new_level
    ]


def _summary(s: EventSnapshot) -> str:
    g = s.grade
    label = g.label or "未达预警"
    parts = [
        f"事件「{s.title or s.event_id}」当前为{label}（依据政策 {g.policy_version}），共 {s.post_count} 条相关帖文。"
    ]
    reasons = [r.message for r in g.reasons if r.criterion not in ("override", "cooldown")]
    if reasons:
        parts.append("依据：" + "；".join(reasons) + "。")
    if g.override is not None:
        parts.append(f"该级别由 {g.override.by} 人工调整：{g.override.reason}。")
    if g.hold_until is not None:
        parts.append(f"处于降级冷却期，保持当前级别至 {g.hold_until.isoformat()}。")
    if s.rising:
        parts.append("增长势头显示可能在黄金期内升级，请提前研判。")
    return "".join(parts)
