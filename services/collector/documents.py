"""The posts-index document of a ``Post``, built straight into the JSON line of a bulk request.

Documents hold the post's proto-JSON fields (proto field names) plus the flattened fields the posts template indexes
(``corruption_categories``, ``region_codes``, ``relevance``, ``duplicate_of`` …), which ``gateway/documents.py``
reads back, and ``words``: ``text_simplified`` cut into words by the same splitter the gateway cuts queries with
(``qingfeng.elastic.words``), so search can match and rank whole Chinese words. They are built by hand rather
than with ``json_format.MessageToDict``, which is several times slower and would make indexing the bottleneck of
the end-to-end rate.

The indexer sends the bytes (``DocumentBuilder.line``): ``orjson`` over a mapping whose parts that repeat across
posts are shared rather than rebuilt. Nineteen posts in twenty have no tags, no regions and no relevance reasons,
so their ``enrichment`` object is one ``orjson.Fragment`` (its JSON, made once per serialised enrichment: one per
relevance and lexicon version for them) and their flattened fields one shared mapping of empty lists. Before, each
document was a tree of about twenty fresh dicts and lists, and building them cost the indexer more than
serialising them and most of its garbage collector's work (issue 12). The bytes are those ``orjson.dumps`` made of
the former dicts, key order included (tests/services/collector/unit/test_document_line.py, and every shared post by
digest). ``post_document`` is those bytes read back, for callers that want the mapping.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import orjson
from google.protobuf import timestamp_pb2
from google.protobuf.descriptor import FileDescriptor
from qingfeng.elastic.words import WordSplitter, default_splitter
from qingfeng.v1 import common_pb2, post_pb2

__all__ = ["DocumentBuilder", "post_document"]


def _names(file: FileDescriptor, enum: str) -> dict[int, str]:
    # Enum value -> name as a plain dict: ``Name()`` goes through the descriptor on every call.
    return {value.number: value.name for value in file.enum_types_by_name[enum].values}


_SOURCE_KIND: Final = _names(common_pb2.DESCRIPTOR, "SourceKind")
_CATEGORY: Final = _names(post_pb2.DESCRIPTOR, "CorruptionCategory")
_OFFLINE: Final = _names(post_pb2.DESCRIPTOR, "OfflineActionKind")
_DUPLICATE: Final = _names(post_pb2.DESCRIPTOR, "DuplicateKind")

# Shared by every document of a post without them: nothing mutates a document before it is serialised.
_EMPTY: Final[tuple[()]] = ()

# Timestamp.ToJsonString's valid range (years 1..9999); outside it the slow path raises as it always did.
_MIN_SECONDS: Final = -62_135_596_800
_MAX_SECONDS: Final = 253_402_300_799
_EPOCH: Final = datetime(1970, 1, 1)
_DAY: Final = 86_400
# Memo bounds, each cleared when full so memory stays bounded whatever the input: the words of texts seen recently
# (reposts and copies repeat; about 16 MB of text at most), the "YYYY-MM-DDT" of days, the enrichments seen
# recently (per serialised Enrichment).
_WORDS_MAX_CHARS: Final = 4_000_000
_DAYS_MAX: Final = 8192
_PLAIN_MAX: Final = 4096
# "HH:MM:" of each minute of a day and "SS" of each second: a time of day is two lookups, not three formats.
_MINUTES: Final = tuple(f"{m // 60:02d}:{m % 60:02d}:" for m in range(1440))
_SECONDS: Final = tuple(f"{s:02d}" for s in range(60))


def _json_time(seconds: int, nanos: int) -> str:
    """``Timestamp.ToJsonString`` of (seconds, nanos), the same text, without the message and its validity check."""
    if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos).ToJsonString()  # raises, as it did before
    text = (_EPOCH + timedelta(0, seconds)).isoformat()
    return text + _fraction(nanos)


def _fraction(nanos: int) -> str:
    # ToJsonString's fraction: none, or 3, 6 or 9 digits, whichever is the shortest exact one.
    if nanos == 0:
        return "Z"
    if nanos % 1_000_000 == 0:
        return f".{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f".{nanos // 1_000:06d}Z"
    return f".{nanos:09d}Z"


class DocumentBuilder:
    """Builds documents with memos: the words of a text seen recently, the date of a day, the JSON of an
    enrichment. Each is a pure function of its key (one splitter per builder), so a hit gives what a miss would.
    """

    __slots__ = ("_days", "_last", "_last_nanos", "_last_seconds", "_plain", "_splitter", "_words", "_words_chars")

    def __init__(self, splitter: WordSplitter) -> None:
        self._splitter = splitter
        self._words: dict[str, str] = {}
        self._words_chars = 0
        self._days: dict[int, str] = {}
        self._plain: dict[bytes, tuple[orjson.Fragment, dict[str, Any]]] = {}
        # The last time written: a batch's posts share their collected_at.
        self._last_seconds = self._last_nanos = 0
        self._last = ""

    def words(self, text: str) -> str:
        words = self._words.get(text)
        if words is None:
            words = self._splitter.field(text)
            if self._words_chars + len(text) > _WORDS_MAX_CHARS:
                self._words.clear()
                self._words_chars = 0
            self._words[text] = words
            self._words_chars += len(text)
        return words

    def time(self, stamp: timestamp_pb2.Timestamp) -> str:
        """``stamp.ToJsonString()``: the day's date from a memo, the time of day from two tables."""
        seconds = stamp.seconds
        nanos = stamp.nanos
        if seconds == self._last_seconds and nanos == self._last_nanos and self._last:
            return self._last
        if not (_MIN_SECONDS <= seconds <= _MAX_SECONDS and 0 <= nanos < 1_000_000_000):
            return _json_time(seconds, nanos)  # raises, as ToJsonString does
        day, rest = divmod(seconds, _DAY)
        date = self._days.get(day)
        if date is None:
            date = (_EPOCH + timedelta(day)).isoformat()[:11]  # "YYYY-MM-DDT"
            if len(self._days) >= _DAYS_MAX:
                self._days.clear()
            self._days[day] = date
        minutes, secs = divmod(rest, 60)
        text = date + _MINUTES[minutes] + _SECONDS[secs] + ("Z" if nanos == 0 else _fraction(nanos))
        self._last_seconds, self._last_nanos, self._last = seconds, nanos, text
        return text

    def line(self, post: post_pb2.Post, event_id: str | None = None) -> bytes:
        """The document of ``post`` as the JSON bytes of its bulk line; with ``event_id`` (the grader's assignment,
        ``services.collector.event_ids``) that field last, so the post is indexed once with its event. Without it
        the bytes are those of before (a merge then keeps whatever event id the document has)."""
        doc = self._document(post)
        if event_id:
            doc["event_id"] = event_id
        return orjson.dumps(doc)

    def _document(self, post: post_pb2.Post) -> dict[str, Any]:
        # Each protobuf field is read once: an attribute of a upb message costs far more than a local.
        d = post.dedupe
        content_hash = d.content_hash
        simhash = d.simhash
        duplicate_of = d.duplicate_of
        text_simplified = post.text_simplified
        enrichment, flat = self._enrichment(post.enrichment)
        doc: dict[str, Any] = {
            "id": post.id,
            "source_id": post.source_id,
            "source_kind": _SOURCE_KIND.get(post.source_kind, ""),
            "native_id": post.native_id,
            "url": post.url,
            "platform": post.platform,
            "title": post.title,
            "text": post.text,
            "text_simplified": text_simplified,
            "words": self.words(text_simplified),
            # a slice of a repeated field is a list (what orjson writes for a tuple too), made in one call
            "keywords": post.keywords[:],
            "reposts": post.reposts,
            "comments": post.comments,
            "likes": post.likes,
            "views": post.views,
            "parent_id": post.parent_id,
            "root_id": post.root_id,
            "language": post.language,
            "media_urls": post.media_urls[:],
            "enrichment": enrichment,
            "dedupe": {
                "content_hash": content_hash,
                "simhash": str(simhash),
                "duplicate_of": duplicate_of,
                "duplicate_kind": _DUPLICATE.get(d.duplicate_kind, ""),
                "hamming_distance": d.hamming_distance,
            },
            # Flattened for filters and aggregations (the template's mapping).
            **flat,
            "content_hash": content_hash,
            "simhash": f"{simhash:016x}",
            "duplicate_of": duplicate_of,
        }
        if post.HasField("author"):
            author = post.author
            doc["author"] = {
                "id": author.id,
                "name": author.name,
                "followers": author.followers,
                "is_media": author.is_media,
                "is_verified": author.is_verified,
            }
        if post.HasField("created_at"):
            doc["created_at"] = self.time(post.created_at)
        if post.HasField("collected_at"):
            doc["collected_at"] = self.time(post.collected_at)
        return doc

    def _enrichment(self, e: post_pb2.Enrichment) -> tuple[Any, dict[str, Any]]:
        """The enrichment as proto-JSON (an ``orjson.Fragment``) and its flattened fields, remembered per the
        enrichment's serialised bytes: a pure function of the message, and equal messages serialise alike (no map
        fields), so a hit gives what building it would. Most posts share a handful of enrichments (untagged, one
        relevance and lexicon version), and the key is one call where testing the five repeated fields for
        emptiness made a container object each."""
        key = e.SerializeToString()
        known = self._plain.get(key)
        if known is None:
            nested, flat = _tagged(e, e.relevance, e.lexicon_version)
            known = (orjson.Fragment(orjson.dumps(nested)), flat)
            if len(self._plain) >= _PLAIN_MAX:
                self._plain.clear()
            self._plain[key] = known
        return known


def _tagged(e: post_pb2.Enrichment, relevance: float, lexicon_version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The enrichment as proto-JSON and its flattened fields, built in full."""
    terms = e.corruption_terms or _EMPTY
    titles = e.official_titles or _EMPTY
    regions = e.regions or _EMPTY
    signals = e.offline_signals or _EMPTY
    reasons = e.relevance_reasons or _EMPTY
    nested: dict[str, Any] = {
        "corruption_terms": [
            {"term": t.term, "category": _CATEGORY.get(t.category, ""), "count": t.count} for t in terms
        ],
        "official_titles": [
            {"title": o.title, "person_name": o.person_name, "organization": o.organization} for o in titles
        ],
        "regions": [{"code": r.code, "name": r.name} for r in regions],
        "offline_signals": [{"kind": _OFFLINE.get(s.kind, ""), "term": s.term, "planned": s.planned} for s in signals],
        "relevance": relevance,
        "relevance_reasons": [{"criterion": r.criterion, "value": r.value, "message": r.message} for r in reasons],
        "lexicon_version": lexicon_version,
    }
    if terms:
        term_list = nested["corruption_terms"]
        flat_terms = list(dict.fromkeys(t["term"] for t in term_list))
        categories = list(dict.fromkeys(t["category"] for t in term_list))
    else:
        flat_terms, categories = [], []
    if regions:
        region_list = nested["regions"]
        codes = [r["code"] for r in region_list]
        names = [r["name"] for r in region_list]
    else:
        codes, names = [], []
    flat: dict[str, Any] = {
        "corruption_terms": flat_terms,
        "corruption_categories": categories,
        "official_titles": [o["title"] for o in nested["official_titles"]] if titles else [],
        "region_codes": codes,
        "region_names": names,
        "offline_actions": list(dict.fromkeys(s["kind"] for s in nested["offline_signals"])) if signals else [],
        "relevance": relevance,
        "lexicon_version": lexicon_version,
    }
    return nested, flat


def post_document(post: post_pb2.Post, splitter: WordSplitter | None = None) -> dict[str, Any]:
    """The posts-index document of ``post`` as a mapping (the JSON the indexer sends, read back); ``splitter``: the
    process-wide one."""
    doc: dict[str, Any] = orjson.loads(builder(splitter or default_splitter()).line(post))
    return doc


@lru_cache(maxsize=4)
def builder(splitter: WordSplitter) -> DocumentBuilder:
    # One per splitter (in practice the process-wide one), so the memos last across batches and callers.
    return DocumentBuilder(splitter)
