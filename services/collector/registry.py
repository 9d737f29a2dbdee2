"""The rules of the source registry: what a valid source is, its defaults, updates by field mask, page tokens.

No I/O: ``server.py`` calls these between decoding a request and storing the result. Every rule violated by a
request is reported at once (``InvalidArgument`` with one ``FieldViolation`` each), so a client fixes its request in
one round trip.

Two built-in sources exist in every registry and cannot be changed or deleted: ``import`` (posts streamed through
ImportPosts without a source id) and ``manual-tip`` (posts made from SubmitTip). They are stored paused, because the
scheduler has nothing to fetch for them; their status still counts what came in through them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

from google.protobuf.field_mask_pb2 import FieldMask
from qingfeng.v1 import common_pb2, source_pb2

from services.collector.errors import FailedPrecondition, FieldViolation, InvalidArgument, InvalidPageToken

__all__ = [
    "BUILTIN_SOURCES",
    "DEFAULT_PAGE_SIZE",
    "IMPORT_SOURCE_ID",
    "MAX_PAGE_SIZE",
    "TIP_SOURCE_ID",
    "check_mutable",
    "decode_page_token",
    "encode_page_token",
    "new_source",
    "page_size_of",
    "updated_source",
]

K = common_pb2.SourceKind
IMPORT_SOURCE_ID: Final = "import"
TIP_SOURCE_ID: Final = "manual-tip"

DEFAULT_PAGE_SIZE: Final = 50
MAX_PAGE_SIZE: Final = 500

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_REGION_CODE = re.compile(r"^\d{6}$")
_MAX_NAME_CHARS: Final = 200
_MIN_INTERVAL: Final = timedelta(seconds=30)
_MAX_INTERVAL: Final = timedelta(days=7)
_DEFAULT_INTERVAL: Final = timedelta(minutes=15)
_DEFAULT_RPS: Final = 1.0
_MAX_RPS: Final = 50.0
_DEFAULT_ATTEMPTS: Final = 3
_MAX_ATTEMPTS: Final = 10
_MAX_LIST_PAGES: Final = 100
_MAX_API_PAGE_SIZE: Final = 200

# Which member of the config oneof each kind uses; None: the kind has no configuration of its own.
_CONFIG: Final[Mapping[int, str | None]] = {
    K.SOURCE_KIND_RSS: "rss",
    K.SOURCE_KIND_HTML: "html",
    K.SOURCE_KIND_WEIBO_API: "weibo_api",
    K.SOURCE_KIND_MASTODON: "mastodon",
    K.SOURCE_KIND_JSONL_IMPORT: "jsonl",
    K.SOURCE_KIND_MANUAL_TIP: None,
}
# Kinds whose config must be present (RSS works with none).
_CONFIG_REQUIRED: Final = frozenset({K.SOURCE_KIND_HTML, K.SOURCE_KIND_WEIBO_API, K.SOURCE_KIND_MASTODON})
_NEEDS_URL: Final = frozenset({K.SOURCE_KIND_RSS, K.SOURCE_KIND_HTML, K.SOURCE_KIND_WEIBO_API, K.SOURCE_KIND_MASTODON})
_ROBOTS_BY_DEFAULT: Final = frozenset({K.SOURCE_KIND_RSS, K.SOURCE_KIND_HTML})
_ID_PREFIX: Final[Mapping[int, str]] = {
    K.SOURCE_KIND_RSS: "rss",
    K.SOURCE_KIND_HTML: "html",
    K.SOURCE_KIND_WEIBO_API: "weibo",
    K.SOURCE_KIND_MASTODON: "mastodon",
    K.SOURCE_KIND_JSONL_IMPORT: "jsonl",
}
_WRITABLE: Final = frozenset(
    {
        "name",
        "url",
        "schedule_interval",
        "max_requests_per_second",
        "max_attempts",
        "respect_robots_txt",
        "default_regions",
        "rss",
        "html",
        "weibo_api",
        "mastodon",
        "jsonl",
    }
)
_CONFIG_FIELDS: Final = frozenset(name for name in _CONFIG.values() if name is not None)


def _builtin(source_id: str, kind: common_pb2.SourceKind.ValueType, name: str) -> source_pb2.Source:
    return source_pb2.Source(id=source_id, kind=kind, name=name, paused=True)


BUILTIN_SOURCES: Final = (
    _builtin(IMPORT_SOURCE_ID, K.SOURCE_KIND_JSONL_IMPORT, "导入 (ImportPosts)"),
    _builtin(TIP_SOURCE_ID, K.SOURCE_KIND_MANUAL_TIP, "人工线索 (SubmitTip)"),
)
_BUILTIN_IDS: Final = frozenset(s.id for s in BUILTIN_SOURCES)


def new_source(requested: source_pb2.Source, now: datetime) -> source_pb2.Source:
    """The source CreateSource stores: checked, defaults filled, id generated when empty, timestamps set."""
    source = source_pb2.Source()
    source.CopyFrom(requested)
    for output_only in ("status", "created_at", "updated_at"):
        source.ClearField(output_only)
    violations: list[FieldViolation] = []
    if not source.id:
        source.id = f"{_ID_PREFIX.get(source.kind, 'source')}-{secrets.token_hex(4)}"
    elif not _ID.match(source.id):
        violations.append(FieldViolation("source.id", "lower-case letters, digits and '-', at most 63 characters"))
    elif source.id in _BUILTIN_IDS:
        violations.append(FieldViolation("source.id", f"{source.id!r} is reserved for the built-in source"))
    if source.kind == K.SOURCE_KIND_MANUAL_TIP:
        violations.append(FieldViolation("source.kind", "manual tips come in through SubmitTip, not a source"))
    violations += _problems(source)
    if violations:
        raise InvalidArgument(violations)
    _apply_defaults(source)
    if source.kind in _ROBOTS_BY_DEFAULT:
        # On by default for crawled sites (proto3 cannot tell "unset" from false); UpdateSource can turn it off.
        source.respect_robots_txt = True
    source.created_at.FromDatetime(now)
    source.updated_at.FromDatetime(now)
    return source


def updated_source(
    stored: source_pb2.Source, patch: source_pb2.Source, mask: FieldMask, now: datetime
) -> source_pb2.Source:
    """``stored`` with the fields named by ``mask`` taken from ``patch`` (every writable field when it is empty)."""
    check_mutable(stored)
    violations: list[FieldViolation] = []
    if patch.kind not in (K.SOURCE_KIND_UNSPECIFIED, stored.kind):
        violations.append(FieldViolation("source.kind", "the kind of a source cannot change"))
    paths = list(mask.paths)
    for path in paths:
        if path.split(".", 1)[0] not in _WRITABLE:
            violations.append(FieldViolation("update_mask", f"{path!r} is not a writable field of Source"))
    if paths and not violations and not mask.IsValidForDescriptor(source_pb2.Source.DESCRIPTOR):
        violations.append(FieldViolation("update_mask", f"unknown field path in {paths}"))
    if violations:
        raise InvalidArgument(violations)
    if not paths:
        own_config = _CONFIG.get(stored.kind)
        paths = sorted((_WRITABLE - _CONFIG_FIELDS) | ({own_config} if own_config else set()))
    merged = source_pb2.Source()
    merged.CopyFrom(stored)
    FieldMask(paths=paths).MergeMessage(patch, merged, replace_message_field=True, replace_repeated_field=True)
    problems = _problems(merged)
    if problems:
        raise InvalidArgument(problems)
    _apply_defaults(merged)
    merged.updated_at.FromDatetime(now)
    return merged


def check_mutable(source: source_pb2.Source) -> None:
    """Built-in sources cannot be updated, paused, resumed or deleted."""
    if source.id in _BUILTIN_IDS:
        raise FailedPrecondition(f"{source.id!r} is a built-in source and cannot be changed")


def _apply_defaults(source: source_pb2.Source) -> None:
    if not source.HasField("schedule_interval"):
        source.schedule_interval.FromTimedelta(_DEFAULT_INTERVAL)
    if source.max_requests_per_second == 0:
        source.max_requests_per_second = _DEFAULT_RPS
    if source.max_attempts == 0:
        source.max_attempts = _DEFAULT_ATTEMPTS


def _problems(source: source_pb2.Source) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    kind = source.kind
    if kind == K.SOURCE_KIND_UNSPECIFIED or kind not in _CONFIG:
        out.append(FieldViolation("source.kind", "required"))
    config = source.WhichOneof("config")
    expected = _CONFIG.get(kind)
    if config is not None and config != expected:
        out.append(FieldViolation(f"source.{config}", f"does not match kind {common_pb2.SourceKind.Name(kind)}"))
    elif config is None and kind in _CONFIG_REQUIRED:
        out.append(FieldViolation(f"source.{expected}", "required for this kind"))
    name = source.name.strip()
    if not name:
        out.append(FieldViolation("source.name", "required"))
    elif len(name) > _MAX_NAME_CHARS:
        out.append(FieldViolation("source.name", f"at most {_MAX_NAME_CHARS} characters"))
    if kind in _NEEDS_URL:
        parts = urlsplit(source.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            out.append(FieldViolation("source.url", "an http:// or https:// URL is required for this kind"))
    elif source.url:
        out.append(FieldViolation("source.url", "must be empty for this kind"))
    if source.HasField("schedule_interval"):
        interval = source.schedule_interval.ToTimedelta()
        if not _MIN_INTERVAL <= interval <= _MAX_INTERVAL:
            out.append(FieldViolation("source.schedule_interval", f"between {_MIN_INTERVAL} and {_MAX_INTERVAL}"))
    if not 0 <= source.max_requests_per_second <= _MAX_RPS:
        out.append(FieldViolation("source.max_requests_per_second", f"between 0 (default) and {_MAX_RPS}"))
    if not 0 <= source.max_attempts <= _MAX_ATTEMPTS:
        out.append(FieldViolation("source.max_attempts", f"between 0 (default) and {_MAX_ATTEMPTS}"))
    for i, region in enumerate(source.default_regions):
        if not _REGION_CODE.match(region.code):
            out.append(FieldViolation(f"source.default_regions[{i}].code", "a six-digit GB/T 2260 code"))
    out += _config_problems(source, config if config == expected else None)
    return out


def _config_problems(source: source_pb2.Source, config: str | None) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if config == "html":
        html = source.html
        for field in ("item_selector", "link_selector", "body_selector"):
            if not getattr(html, field).strip():
                out.append(FieldViolation(f"source.html.{field}", "required"))
        if not 0 <= html.pagination.max_pages <= _MAX_LIST_PAGES:
            out.append(FieldViolation("source.html.pagination.max_pages", f"between 0 and {_MAX_LIST_PAGES}"))
        if html.encoding and not _known_encoding(html.encoding):
            out.append(FieldViolation("source.html.encoding", f"unknown encoding {html.encoding!r}"))
    elif config == "weibo_api":
        api = source.weibo_api
        if not api.keywords and not api.user_ids:
            out.append(FieldViolation("source.weibo_api", "give keywords or user_ids"))
        if not 0 <= api.page_size <= _MAX_API_PAGE_SIZE:
            out.append(FieldViolation("source.weibo_api.page_size", f"between 0 and {_MAX_API_PAGE_SIZE}"))
    elif config == "mastodon":
        masto = source.mastodon
        if not masto.hashtags and not masto.accounts and not masto.local_timeline:
            out.append(FieldViolation("source.mastodon", "give hashtags, accounts or local_timeline"))
        for i, tag in enumerate(masto.hashtags):
            if not tag or tag.startswith("#"):
                out.append(FieldViolation(f"source.mastodon.hashtags[{i}]", "a hashtag without '#'"))
    elif config == "jsonl" and not source.jsonl.path.strip():
        out.append(FieldViolation("source.jsonl.path", "required"))
    return out


def _known_encoding(name: str) -> bool:
    try:
        codecs.lookup(name)
    except LookupError:
        return False
    return True


def page_size_of(requested: int) -> int:
    """The page size to use for ``requested`` (0 = default); negative is an error."""
    if requested < 0:
        raise InvalidArgument.of("page_size", "must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _query_key(kind: int, paused: bool | None) -> str:
    return f"{kind}:{'' if paused is None else int(paused)}"


def encode_page_token(after_id: str, kind: int, paused: bool | None) -> str:
    """An opaque token for the page after ``after_id`` of the query (kind, paused)."""
    raw = json.dumps({"after": after_id, "q": _query_key(kind, paused)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_page_token(token: str, kind: int, paused: bool | None) -> str:
    """The id after which the page starts ("" for the first page); ``InvalidPageToken`` for a foreign token."""
    if not token:
        return ""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidPageToken() from None
    if (
        not isinstance(body, dict)
        or body.get("q") != _query_key(kind, paused)
        or not isinstance(body.get("after"), str)
    ):
        raise InvalidPageToken()
    after: str = body["after"]
    return after
