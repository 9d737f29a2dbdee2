"""JSON Lines files of posts, for replay and backfill (the format of ``shared/data/weibo_posts.jsonl``).

Each line is one JSON object. Keys are mapped to Post fields by a field map (Post field -> dotted JSON key); the
default reads the shared data set, and ``JsonlConfig.field_map`` overrides single entries. ``id`` is the item's
native id and ``parent_id`` the native id of what it reposts, both turned into Post ids of the same source. Every
bad line becomes a ``Rejected`` whose origin is ``file:line``; ``label`` and ``event_id`` (ground truth of the data
set) are never read.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import FetchState
from services.collector.sources._json import ShapeError, count, dig, ident, loads, opt_str
from services.collector.sources.base import Emit, Item, Outcome, SourceContext, new_post, post_id, rejected, set_time
from services.collector.sources.timeparse import parse_time

__all__ = ["DEFAULT_FIELD_MAP", "MAX_LINE_BYTES", "JsonlSource", "file_signature", "iter_jsonl", "parse_jsonl_line"]

MAX_LINE_BYTES = 1024 * 1024
_KIND = common_pb2.SOURCE_KIND_JSONL_IMPORT

# Post field -> JSON key. The shared data's keys where they differ from Post's names, Post's own names otherwise.
DEFAULT_FIELD_MAP: Mapping[str, str] = {
    "native_id": "id",
    "url": "url",
    "platform": "source",
    "title": "title",
    "text": "text",
    "created_at": "created_at",
    "author.id": "author",
    "author.name": "author_name",
    "author.followers": "followers",
    "author.is_media": "is_media",
    "author.is_verified": "is_verified",
    "reposts": "reposts",
    "comments": "comments",
    "likes": "likes",
    "views": "views",
    "parent_id": "parent_id",
    "language": "language",
    "media_urls": "media_urls",
}
_COUNTS = ("reposts", "comments", "likes", "views")
# Platform names in files, as the other sources spell them (Post.platform is counted per distinct value).
_PLATFORMS = {"weibo": "weibo.com", "sina weibo": "weibo.com"}


class _Fields(dict[str, str]):
    """A merged field map (Post field -> JSON key) that knows whether any key is dotted (checked once, not per line)."""

    __slots__ = ("flat",)

    def __init__(self, merged: Mapping[str, str]) -> None:
        super().__init__(merged)
        self.flat = not any("." in key for key in self.values())


_DEFAULT_FIELDS: Final = _Fields(DEFAULT_FIELD_MAP)


def _field_map(overrides: Mapping[str, str]) -> _Fields:
    if not overrides:  # nearly every line (ImportPosts parses line by line): the merged default, built once
        return _DEFAULT_FIELDS
    unknown = set(overrides) - set(DEFAULT_FIELD_MAP)
    if unknown:
        raise ValueError(f"field_map names unknown Post fields: {', '.join(sorted(unknown))}")
    return _Fields({**DEFAULT_FIELD_MAP, **overrides})


def _values(obj: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """Post field -> the line's value (None when absent): one comprehension instead of a call per field."""
    if type(obj) is dict and getattr(fields, "flat", False):  # dig's answer for a flat map, without its calls
        return {name: obj.get(key) for name, key in fields.items()}
    return {name: dig(obj, key) for name, key in fields.items()}


def _author(post: post_pb2.Post, values: Mapping[str, Any], fields: Mapping[str, str]) -> None:
    raw = values["author.id"]
    author = post.author
    if isinstance(raw, Mapping):  # a Post-shaped line: "author": {"id": …, "name": …, "followers": …}
        author.id = ident(raw.get("id"), "author.id")
        author.name = opt_str(raw.get("name"), "author.name")
        author.followers = count(raw.get("followers"), "author.followers")
        author.is_media = bool(raw.get("is_media"))
        author.is_verified = bool(raw.get("is_verified"))
        return
    if raw is not None:
        author.id = ident(raw, fields["author.id"])
    author.name = opt_str(values["author.name"], fields["author.name"])
    author.followers = count(values["author.followers"], fields["author.followers"])
    author.is_media = bool(values["author.is_media"])
    author.is_verified = bool(values["author.is_verified"])


def _to_post(
    obj: Mapping[str, Any], source: source_pb2.Source, fields: Mapping[str, str], collected_at: datetime
) -> post_pb2.Post:
    values = _values(obj, fields)
    native = ident(values["native_id"], fields["native_id"])
    raw_time = values["created_at"]
    if raw_time is None:
        raise ShapeError(f"{fields['created_at']} is missing")
    created_at = parse_time(str(raw_time))
    if created_at is None:
        raise ShapeError(f"{fields['created_at']} {raw_time!r} is not a time")
    text = values["text"]
    if not isinstance(text, str):  # "" is a repost without words of its own: valid
        raise ShapeError(f"{fields['text']} is missing or not a string")
    url = opt_str(values["url"], fields["url"])
    platform = opt_str(values["platform"], fields["platform"])
    platform = _PLATFORMS.get(platform.lower(), platform)
    post = new_post(source, native_id=native, url=url, collected_at=collected_at, platform=platform)
    post.title = opt_str(values["title"], fields["title"])
    post.text = text
    set_time(post.created_at, created_at)
    post.language = opt_str(values["language"], fields["language"])
    _author(post, values, fields)
    for name in _COUNTS:
        setattr(post, name, count(values[name], fields[name]))
    parent = values["parent_id"]
    if parent is not None:
        post.parent_id = post_id(_KIND, source.id, ident(parent, fields["parent_id"]))
    media = values["media_urls"]
    if isinstance(media, list):
        post.media_urls.extend(m for m in media if isinstance(m, str))
    return post


def parse_jsonl_line(
    line: str | bytes,
    source: source_pb2.Source,
    *,
    collected_at: datetime,
    origin: str,
    field_map: Mapping[str, str] | None = None,
) -> Item:
    """One line to a Post, or a ``Rejected`` saying why not (origin is e.g. ``posts.jsonl:17``).

    Raises ``ValueError`` only for a ``field_map`` naming fields Post does not have (a configuration error).
    """
    return _parse_line(line, source, collected_at, origin, _field_map(field_map or {}))


def _parse_line(
    line: str | bytes, source: source_pb2.Source, collected_at: datetime, origin: str, fields: Mapping[str, str]
) -> Item:
    """``parse_jsonl_line`` with the field map already merged and checked (once per file, not per line)."""
    # A text line is encoded (its size in bytes, a rejection's payload) only when it could be over the limit (at most
    # 4 bytes a character) or is rejected: most lines are neither.
    raw = line if isinstance(line, bytes) or len(line) > _SAFE_LINE_CHARS else None
    if raw is not None and not isinstance(raw, bytes):
        raw = raw.encode("utf-8", errors="surrogatepass")
    if raw is not None and len(raw) > MAX_LINE_BYTES:
        message = f"line of {len(raw)} bytes is over the {MAX_LINE_BYTES}-byte limit"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_TOO_LARGE, message, raw, origin)
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as err:
        return rejected(source, post_pb2.DEAD_LETTER_REASON_ENCODING, f"not UTF-8: {err}", _bytes(line, raw), origin)
    try:
        obj = loads(text)  # lone surrogates become U+FFFD; too deep a nesting is a ValueError
    except ValueError as err:
        message = f"invalid JSON: {err}"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_MALFORMED, message, _bytes(line, raw), origin)
    if not isinstance(obj, dict):
        message = f"line is a JSON {type(obj).__name__}, expected an object"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_MALFORMED, message, _bytes(line, raw), origin)
    try:
        return _to_post(obj, source, fields, collected_at)
    except ShapeError as err:
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, str(err), _bytes(line, raw), origin)
    except (ValueError, OverflowError, TypeError) as err:  # one we did not foresee: this line only
        message = f"line could not be read: {type(err).__name__}: {err}"
        return rejected(source, post_pb2.DEAD_LETTER_REASON_INVALID, message, _bytes(line, raw), origin)


# A str line of at most this many characters has at most MAX_LINE_BYTES bytes in UTF-8 (surrogatepass included).
_SAFE_LINE_CHARS: Final = MAX_LINE_BYTES // 4


def _bytes(line: str | bytes, raw: bytes | None) -> bytes:
    """The line's bytes as a rejection carries them (``raw`` when they were made already)."""
    if raw is not None:
        return raw
    return line if isinstance(line, bytes) else line.encode("utf-8", errors="surrogatepass")


def _files(pattern: str) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(os.path.expanduser(pattern)) if Path(p).is_file())


def iter_jsonl(
    path: Path,
    source: source_pb2.Source,
    *,
    collected_at: datetime,
    field_map: Mapping[str, str] | None = None,
) -> Iterator[Item]:
    """Items of a file, one per non-blank line, read as a stream (a 50 000-line file never sits in memory)."""
    fields = _field_map(field_map or {})
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield _parse_line(stripped, source, collected_at, f"{path}:{number}", fields)


def _inside(file: Path, roots: tuple[Path, ...]) -> bool:
    """Whether ``file``, symlinks resolved, lies in one of ``roots`` (also resolved)."""
    real = file.resolve()
    return any(real.is_relative_to(root.resolve()) for root in roots)


def file_signature(files: list[Path]) -> str:
    """What changes when any of the files changes: the conditional-GET ETag of a file source."""
    digest = hashlib.sha1()
    for file in files:
        stat = file.stat()
        digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return f'"{digest.hexdigest()}"'


class JsonlSource:
    """``SourceAdapter`` for ``SOURCE_KIND_JSONL_IMPORT``: reads ``JsonlConfig.path`` (a path or glob) again only
    when a file changed since the last fetch; each read goes through dedupe downstream, so a re-read is harmless."""

    def __init__(self, context: SourceContext) -> None:
        self._ctx = context

    async def collect(self, source: source_pb2.Source, state: FetchState | None, emit: Emit) -> Outcome:
        pattern = source.jsonl.path
        if not pattern:
            return Outcome(error="jsonl source has no path")
        files = _files(pattern)
        if not files:
            return Outcome(error=f"no file matches {pattern!r}")
        outside = [f for f in files if not _inside(f, self._ctx.file_roots)]
        if outside:
            allowed = ", ".join(str(r) for r in self._ctx.file_roots) or "none (QF_COLLECTOR_FETCH__FILE_ROOTS)"
            return Outcome(error=f"refused: {str(outside[0])[:200]!r} is outside the directories allowed: {allowed}")
        emitted = 0
        try:
            signature = file_signature(files)
            if state is not None and state.etag == signature:
                return Outcome(not_modified=True)
            collected_at = self._ctx.now()
            for file in files:
                batch: list[Item] = []
                for item in iter_jsonl(file, source, collected_at=collected_at, field_map=source.jsonl.field_map):
                    batch.append(item)
                    if len(batch) >= self._ctx.batch_size:
                        await emit(batch)
                        emitted, batch = emitted + len(batch), []
                if batch:
                    await emit(batch)
                    emitted += len(batch)
        except OSError as err:
            return Outcome(error=f"cannot read {pattern!r}: {err}", emitted=emitted)
        except ValueError as err:  # a field_map naming unknown Post fields
            return Outcome(error=str(err))
        return Outcome(fetch_state=FetchState(etag=signature), emitted=emitted)
