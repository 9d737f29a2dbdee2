"""Search hits back into protobuf: an Elasticsearch ``_source`` into a ``Post`` or an ``Event``.

Writers store the message's proto-JSON fields (``json_format.MessageToDict`` with proto field names) plus the
flattened fields the templates index (``corruption_terms``, ``region_codes``, ``relevance``, ``duplicate_of`` …).
Reading is forgiving, field by field: one odd field (an epoch-millisecond time, an enum in lower case) costs that
field, never the hit, because a search that fails on one old document is worse than a hit with a blank field.
When a writer stored only the flattened enrichment, the parts of it that can be rebuilt are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from qingfeng.v1 import common_pb2, event_pb2, post_pb2

__all__ = ["event_from_source", "post_from_source"]

_log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)


def _coerce(field: FieldDescriptor, value: Any) -> Any:
    """Repair the value shapes writers plausibly produce that proto-JSON does not accept."""
    message, enum = field.message_type, field.enum_type
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if message is not None and message.full_name == "google.protobuf.Timestamp" and is_number:
        # Epoch milliseconds, Elasticsearch's own date format.
        return _millis_to_rfc3339(value)
    if enum is not None:
        known = enum.values_by_name
        # WarningLevel -> WARNING_LEVEL_, the buf naming rule every enum of the contract follows.
        first = enum.values[0].name
        prefix = first[: -len("UNSPECIFIED")] if first.endswith("UNSPECIFIED") else ""

        def fix(item: Any) -> Any:
            if isinstance(item, str) and item not in known and f"{prefix}{item.upper()}" in known:
                return f"{prefix}{item.upper()}"
            return item

        return [fix(item) for item in value] if isinstance(value, list) else fix(value)
    return value


def _millis_to_rfc3339(value: float) -> str:
    stamp = Timestamp()
    stamp.FromMilliseconds(int(value))
    return stamp.ToJsonString()


def _parse(source: Mapping[str, Any], message: M) -> M:
    """Fill ``message`` from the keys of ``source`` that are its fields; skip (and log) fields that do not parse."""
    fields = message.DESCRIPTOR.fields_by_name
    for key, raw in source.items():
        field: FieldDescriptor | None = fields.get(key)  # type: ignore[assignment]  # upb and python descriptors
        if field is None or raw is None:
            continue
        value = _coerce(field, raw)
        try:
            json_format.ParseDict({key: value}, message, ignore_unknown_fields=True)
        except (json_format.ParseError, TypeError, ValueError) as exc:
            message.ClearField(key)
            _log.debug("search hit field %s skipped: %s", key, exc, extra={"doc_id": source.get("id")})
    return message


def _strings(source: Mapping[str, Any], key: str) -> list[str]:
    value = source.get(key)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return []


def _regions(source: Mapping[str, Any]) -> list[common_pb2.Region]:
    codes, names = _strings(source, "region_codes"), _strings(source, "region_names")
    if len(names) != len(codes):
        names = [""] * len(codes)
    return [common_pb2.Region(code=c, name=n) for c, n in zip(codes, names, strict=True)]


def post_from_source(source: Mapping[str, Any]) -> post_pb2.Post:
    """The post an indexed document describes."""
    post = _parse(source, post_pb2.Post())
    if "enrichment" not in source:
        enrichment = post.enrichment
        enrichment.corruption_terms.extend(post_pb2.TermMatch(term=t) for t in _strings(source, "corruption_terms"))
        enrichment.official_titles.extend(
            post_pb2.OfficialMention(title=t) for t in _strings(source, "official_titles")
        )
        enrichment.regions.extend(_regions(source))
        relevance = source.get("relevance")
        if isinstance(relevance, int | float) and not isinstance(relevance, bool):
            enrichment.relevance = float(relevance)
        if isinstance(source.get("lexicon_version"), str):
            enrichment.lexicon_version = source["lexicon_version"]
    if "dedupe" not in source:
        if isinstance(source.get("content_hash"), str):
            post.dedupe.content_hash = source["content_hash"]
        if isinstance(source.get("duplicate_of"), str):
            post.dedupe.duplicate_of = source["duplicate_of"]
        simhash = source.get("simhash")
        if isinstance(simhash, str):
            try:
                post.dedupe.simhash = int(simhash, 16)
            except ValueError:
                _log.debug("search hit simhash %r is not hex", simhash, extra={"doc_id": source.get("id")})
    return post


def event_from_source(source: Mapping[str, Any]) -> event_pb2.Event:
    """The event an indexed document describes."""
    event = _parse(source, event_pb2.Event())
    if "regions" not in source:
        event.regions.extend(_regions(source))
    return event
