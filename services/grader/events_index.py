"""The events-index document of an ``Event`` (protobuf -> Elasticsearch): what ``gateway/documents.py`` reads back.

The document is the ``Event``'s proto-JSON fields (proto field names, enums by value name, times in RFC 3339,
durations as "3600s") plus the flattened fields the events template indexes: ``scheme``, ``policy_version``,
``reasons`` (the sentences), ``region_codes``/``region_names``, ``velocity`` (of the shortest window: the speed now),
``offline_risk`` (the highest of the windows), ``reposts``/``comments`` (of the event's whole life). Built by hand,
not with ``json_format.MessageToDict``, which is several times slower on the hot path; ``test_convert`` checks that
the gateway parses it back into the same ``Event``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Final

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.memo import Memo
from qingfeng.v1 import common_pb2, event_pb2

__all__ = ["event_document"]


def _enum_names(enum: Any) -> dict[int, str]:
    return {value.number: value.name for value in enum.DESCRIPTOR.values}


_WARNING_NAMES: Final = _enum_names(common_pb2.WarningLevel)
_OP_NAMES: Final = _enum_names(common_pb2.ComparisonOperator)
_SCHEME_NAMES: Final = _enum_names(common_pb2.LevelScheme)
_TIER_NAMES: Final = _enum_names(common_pb2.ThreeTierLevel)
_SCOPE_NAMES: Final = _enum_names(event_pb2.RegionalScope)


def _finite(value: float) -> float | None:
    # JSON (and Elasticsearch) has no inf/nan; proto-JSON would write them as strings the float mapping refuses.
    return value if math.isfinite(value) else None


def _ts(t: Timestamp) -> str:
    return _rfc3339(t.seconds, t.nanos)


@lru_cache(maxsize=4096)
def _rfc3339(seconds: int, nanos: int) -> str:
    # An event's times repeat (every window ends at the clock); ToJsonString is slow Python.
    return Timestamp(seconds=seconds, nanos=nanos).ToJsonString()


@lru_cache(maxsize=256)
def _duration_json(seconds: int, nanos: int) -> str:
    return Duration(seconds=seconds, nanos=nanos).ToJsonString()


def _reason_doc_of_bytes(wire: bytes) -> dict[str, Any]:
    return _reason_doc_of(common_pb2.Reason.FromString(wire))


# Documents of reasons by their wire bytes (an event's reasons repeat); shared, only ever serialised.
_REASON_DOCS: Memo[bytes, dict[str, Any]] = Memo(_reason_doc_of_bytes, 8192)


def _reason_doc(r: common_pb2.Reason) -> dict[str, Any]:
    return _REASON_DOCS[r.SerializeToString(deterministic=True)]


def _reason_doc_of(r: common_pb2.Reason) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "criterion": r.criterion,
        "value": _finite(r.value),
        "threshold": _finite(r.threshold),
        "op": _OP_NAMES.get(r.op, ""),
        "message": r.message,
        "level": _WARNING_NAMES.get(r.level, ""),
    }
    if r.HasField("window"):
        doc["window"] = _duration_json(r.window.seconds, r.window.nanos)
    return doc


def _grade_doc(g: event_pb2.Grade) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "level": _WARNING_NAMES.get(g.level, ""),
        "scheme": _SCHEME_NAMES.get(g.scheme, ""),
        "tier": _TIER_NAMES.get(g.tier, ""),
        "label": g.label,
        "policy_version": g.policy_version,
        "reasons": [_reason_doc(r) for r in g.reasons],
        "graded_at": _ts(g.graded_at),
    }
    if g.HasField("override"):
        o = g.override
        override: dict[str, Any] = {
            "level": _WARNING_NAMES.get(o.level, ""),
            "reason": o.reason,
            "actor": {"id": o.actor.id, "display_name": o.actor.display_name, "role": o.actor.role},
            "set_at": _ts(o.set_at),
        }
        if o.HasField("expires_at"):
            override["expires_at"] = _ts(o.expires_at)
        doc["override"] = override
    if g.HasField("hold_until"):
        doc["hold_until"] = _ts(g.hold_until)
    return doc


def _metrics_doc(m: event_pb2.EventMetrics) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "window_end": _ts(m.window_end),
        "posts": m.posts,
        "reposts": m.reposts,
        "comments": m.comments,
        "likes": m.likes,
        "distinct_authors": m.distinct_authors,
        "velocity": _finite(m.velocity),
        "acceleration": _finite(m.acceleration),
        "top_author_reach": m.top_author_reach,
        "sources": m.sources,
        "platforms": m.platforms,
        "media_involved": m.media_involved,
        "regional_scope": _SCOPE_NAMES.get(m.regional_scope, ""),
        "offline_risk": _finite(m.offline_risk),
    }
    if m.HasField("window"):
        doc["window"] = _duration_json(m.window.seconds, m.window.nanos)
    return doc


def event_document(e: event_pb2.Event) -> dict[str, Any]:
    """The events-index document of an event (see the module docstring)."""
    metrics = list(e.metrics)
    windowed = [m for m in metrics if m.HasField("window")]
    total = next((m for m in metrics if not m.HasField("window")), None)
    doc: dict[str, Any] = {
        "id": e.id,
        "title": e.title,
        "keywords": list(e.keywords),
        "first_seen_at": _ts(e.first_seen_at),
        "last_seen_at": _ts(e.last_seen_at),
        "post_count": e.post_count,
        "level": _WARNING_NAMES.get(e.level, ""),
        "previous_level": _WARNING_NAMES.get(e.previous_level, ""),
        "rising": e.rising,
        "grade": _grade_doc(e.grade),
        "metrics": [_metrics_doc(m) for m in metrics],
        "regions": [{"code": r.code, "name": r.name} for r in e.regions],
        "representative_post_ids": list(e.representative_post_ids),
        "version": e.version,
        "updated_at": _ts(e.updated_at),
        # Flattened for filters, sorting and full-text search (the events template's mapping).
        "scheme": _SCHEME_NAMES.get(e.grade.scheme, ""),
        "policy_version": e.grade.policy_version,
        "reasons": [r.message for r in e.grade.reasons],
        "region_codes": [r.code for r in e.regions],
        "region_names": [r.name for r in e.regions],
        "velocity": _finite(windowed[0].velocity) if windowed else 0.0,
        "offline_risk": _finite(max((m.offline_risk for m in metrics), default=0.0)),
        "reposts": total.reposts if total is not None else 0,
        "comments": total.comments if total is not None else 0,
    }
    if e.merged_into:
        doc["merged_into"] = e.merged_into
    return doc
