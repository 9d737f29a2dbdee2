"""Index templates owned by the code: settings, the Chinese analyzer, mappings and aliases per index family.

Naming, for prefix ``qingfeng`` and family ``posts``:
- concrete indices ``qingfeng-posts-000001``, ``-000002`` … (created by ``ensure_index`` and rollover);
- the index template ``qingfeng-posts`` matches ``qingfeng-posts-*`` so every rolled-over index gets the mapping;
- the write alias ``qingfeng-posts`` points at exactly one index with ``is_write_index``: writers use it;
- the read alias ``qingfeng-posts-read`` is attached by the template to every index of the family: readers use it.

Chinese analysis. No dictionary segmenter: neither ``analysis-ik`` nor ``analysis-smartcn`` ships with Elasticsearch,
and a dictionary misses the words that matter most here (names, places, new slang). Two built-in chains, both
behind the one analyzer name ``qf_cjk`` so mappings and queries never change:

- ``bigram`` (stock Elasticsearch, whose ``analysis-common`` module has the CJK filters): ``standard`` tokenizer
  (one token per Han character), ``cjk_width`` (folds full-width Latin and half-width katakana), ``lowercase``,
  ``cjk_bigram`` (adjacent Han characters become overlapping bigrams with positions). A two-character query such as
  受贿 is exactly one bigram: it matches 涉嫌受贿 but not 他受到表扬，贿选 (bigrams 受到, 贿选). Longer queries
  become bigram phrases that keep their order.
- ``unigram`` (the integration-test distribution of our local stack has no ``analysis-common`` module, so no CJK
  filters): ``standard`` tokenizer + ``lowercase``, one token per Han character with positions. A ``match_phrase``
  for 受贿 then requires 受 immediately followed by 贿: the same hits as with bigrams, scored less finely.

``ensure_index`` probes the cluster and picks ``bigram`` when it can. Query Chinese words with ``match_phrase``
(``queries.phrase_query``): it is exact under both chains, whereas a plain ``match`` is only precise under ``bigram``.

Words. Posts also carry ``words``: the collector's rjieba segmentation of ``text_simplified`` (title and text), one
space between words (``words.py``), indexed with the core ``whitespace`` analyzer (no module needed). A query is
segmented the same way and matched on ``words`` (a word is one token: 受贿 matches the word 受贿 but not 接受贿赂,
which is 接受 + 贿赂), while the per-character ``text_simplified`` keeps the recall of words the dictionary does not
know. Rank features (``rank_feature``) live in the ``mapper-extras`` module, which the local stack lacks, so ranking
boosts use ``function_score`` over plain numeric fields (``relevance``, ``reposts``, ``created_at``).

Mappings are ``dynamic: false``: a document field the mapping does not name is kept in ``_source`` but not indexed,
so a new field in a producer never breaks indexing nor grows the mapping behind our back.

Indexing cost (Elasticsearch is the largest CPU consumer of the suite on shared cores; ``bench/bench_es_cost.py``).
A post's original ``text`` is stored but not indexed: every search, filter and highlight reads ``text_simplified``
(title + text folded to simplified Chinese, so the same characters for most posts) and ``words``, and indexing the
original per character too cost 2-12 % of the node's CPU per post at the suite's rate for a field nothing queried
(template version 3; a query on ``text`` is now refused by Elasticsearch, not silently empty). Indices created
before keep their mapping (Elasticsearch refuses to un-index a field in place; see ``index._add_new_fields``) until
they roll over or are reindexed.

Posts are refreshed (made searchable) every ``POSTS_REFRESH_INTERVAL``, 5 s, instead of Elasticsearch's 1 s: each
refresh writes a small segment that merges then rewrite. At the soak's 2,315 posts/s, with or without the grader's
index role then updating each post's ``event_id``, 5 s cost the node 13-28 % less CPU per post. The price: a
post reaches search up to 5 s after it was indexed (nothing promises sooner; tests and benchmarks that must see a
write refresh explicitly). Set on new indices by the template; an existing index keeps its own until an operator
runs ``PUT <prefix>-posts-read/_settings {"index.refresh_interval": "5s"}`` (or any other value). Events keep the
default: few writes, and the console lists them as they change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "ANALYZER",
    "EVENTS",
    "FAMILIES",
    "POSTS",
    "POSTS_REFRESH_INTERVAL",
    "WORDS_ANALYZER",
    "CjkMode",
    "IndexFamily",
    "IndexNames",
    "analyzer_definition",
    "index_settings",
    "template_body",
]

ANALYZER: Final = "qf_cjk"

# Core Elasticsearch's whitespace analyzer: the words were cut by the collector, the index only splits on spaces.
WORDS_ANALYZER: Final = "whitespace"

CjkMode = Literal["bigram", "unigram"]

# Bumped when the mapping changes incompatibly; recorded in the template's _meta for operators.
# 3: posts' ``text`` stored, no longer indexed, and posts refreshed every 5 s (see the module docstring).
_TEMPLATE_VERSION: Final = 3

# How soon an indexed post is searchable (see the module docstring): Elasticsearch CPU per post against freshness.
POSTS_REFRESH_INTERVAL: Final = "5s"

_KEYWORD: Final[Mapping[str, Any]] = {"type": "keyword"}
_LONG: Final[Mapping[str, Any]] = {"type": "long"}
_DATE: Final[Mapping[str, Any]] = {"type": "date"}
_BOOL: Final[Mapping[str, Any]] = {"type": "boolean"}
_FLOAT: Final[Mapping[str, Any]] = {"type": "float"}
# Chinese text searched by words; no keyword copy (long bodies are never aggregated).
_TEXT: Final[Mapping[str, Any]] = {"type": "text", "analyzer": ANALYZER}
# Short Chinese text that is also sorted, aggregated or matched exactly (titles, names).
_TEXT_KW: Final[Mapping[str, Any]] = {
    "type": "text",
    "analyzer": ANALYZER,
    "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
}
# Segmented words (see the module docstring); offsets let the highlighter mark whole words.
_WORDS: Final[Mapping[str, Any]] = {"type": "text", "analyzer": WORDS_ANALYZER, "index_options": "offsets"}
_UNINDEXED: Final[Mapping[str, Any]] = {"type": "keyword", "index": False, "doc_values": False}
# Text kept in _source for readers but never searched: no postings, no norms, no analysis at index time.
_STORED_TEXT: Final[Mapping[str, Any]] = {"type": "text", "index": False}


@dataclass(frozen=True)
class IndexFamily:
    """A family of indices sharing one template: name, mapping properties, and whether it rolls over."""

    name: str
    properties: Mapping[str, Any]
    # Posts roll over (append-mostly, grow without bound). Events are upserted by id and must stay in one index,
    # or the read alias would return an old snapshot of the same event from an older index.
    rolls_over: bool
    # ``index.refresh_interval`` of the family's indices; None leaves Elasticsearch's default (1 s, skipped while
    # nobody searches the shard).
    refresh_interval: str | None = None


@dataclass(frozen=True)
class IndexNames:
    """The names derived from a prefix and a family (see the module docstring)."""

    prefix: str
    family: str

    @property
    def template(self) -> str:
        return f"{self.prefix}-{self.family}"

    @property
    def pattern(self) -> str:
        return f"{self.prefix}-{self.family}-*"

    @property
    def write_alias(self) -> str:
        return f"{self.prefix}-{self.family}"

    @property
    def read_alias(self) -> str:
        return f"{self.prefix}-{self.family}-read"

    @property
    def first_index(self) -> str:
        # Six digits: the format rollover increments, so the second index is -000002.
        return f"{self.prefix}-{self.family}-000001"


POSTS: Final = IndexFamily(
    name="posts",
    rolls_over=True,
    refresh_interval=POSTS_REFRESH_INTERVAL,
    properties={
        "id": _KEYWORD,
        "source_id": _KEYWORD,
        "source_kind": _KEYWORD,
        "native_id": _KEYWORD,
        "url": _KEYWORD,
        "platform": _KEYWORD,
        "author": {
            "properties": {
                "id": _KEYWORD,
                "name": _TEXT_KW,
                "followers": _LONG,
                "is_media": _BOOL,
                "is_verified": _BOOL,
            }
        },
        "title": _TEXT_KW,
        # The original text, as posted: returned to readers, not searched (``text_simplified`` is).
        "text": _STORED_TEXT,
        # title + text in simplified Chinese: the field searches use.
        "text_simplified": _TEXT,
        # title + text_simplified cut into words by the collector, space-separated (see the module docstring).
        "words": _WORDS,
        "keywords": _KEYWORD,
        "created_at": _DATE,
        "collected_at": _DATE,
        "reposts": _LONG,
        "comments": _LONG,
        "likes": _LONG,
        "views": _LONG,
        "parent_id": _KEYWORD,
        "root_id": _KEYWORD,
        "language": _KEYWORD,
        "media_urls": _UNINDEXED,
        # Enrichment, flattened so filters and aggregations need no nested queries.
        "corruption_terms": _KEYWORD,
        "corruption_categories": _KEYWORD,
        "official_titles": _KEYWORD,
        "region_codes": _KEYWORD,
        "region_names": _KEYWORD,
        "offline_actions": _KEYWORD,
        "relevance": _FLOAT,
        "lexicon_version": _KEYWORD,
        # Dedupe fingerprints (simhash as 16 hex digits: an unsigned 64-bit value does not fit a signed long).
        "content_hash": _KEYWORD,
        "simhash": _KEYWORD,
        "duplicate_of": _KEYWORD,
        "event_id": _KEYWORD,
    },
)

EVENTS: Final = IndexFamily(
    name="events",
    rolls_over=False,
    properties={
        "id": _KEYWORD,
        "title": _TEXT_KW,
        "keywords": _KEYWORD,
        "first_seen_at": _DATE,
        "last_seen_at": _DATE,
        "post_count": _LONG,
        "level": _KEYWORD,
        "previous_level": _KEYWORD,
        "rising": _BOOL,
        "scheme": _KEYWORD,
        "policy_version": _KEYWORD,
        "reasons": _TEXT,
        "region_codes": _KEYWORD,
        "region_names": _KEYWORD,
        "merged_into": _KEYWORD,
        "representative_post_ids": _KEYWORD,
        "offline_risk": _FLOAT,
        "velocity": _FLOAT,
        "reposts": _LONG,
        "comments": _LONG,
        "version": _LONG,
        "updated_at": _DATE,
    },
)

FAMILIES: Final[Mapping[str, IndexFamily]] = {f.name: f for f in (POSTS, EVENTS)}


def analyzer_definition(cjk: CjkMode = "bigram") -> dict[str, Any]:
    """The ``qf_cjk`` custom analyzer for the given chain (see the module docstring)."""
    filters = ["cjk_width", "lowercase", "cjk_bigram"] if cjk == "bigram" else ["lowercase"]
    return {"type": "custom", "tokenizer": "standard", "filter": filters}


def index_settings(*, shards: int = 1, replicas: int = 0, cjk: CjkMode = "bigram") -> dict[str, Any]:
    """Index settings with the ``qf_cjk`` analyzer. One shard: our volumes are small and it keeps scoring exact."""
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "analysis": {"analyzer": {ANALYZER: analyzer_definition(cjk)}},
    }


def template_body(
    family: IndexFamily, names: IndexNames, *, shards: int = 1, replicas: int = 0, cjk: CjkMode = "bigram"
) -> dict[str, Any]:
    """Keyword arguments for ``indices.put_index_template`` for one family under one prefix."""
    settings = index_settings(shards=shards, replicas=replicas, cjk=cjk)
    if family.refresh_interval is not None:
        settings["refresh_interval"] = family.refresh_interval
    return {
        "name": names.template,
        "index_patterns": [names.pattern],
        # Above the built-in templates (priority 100 for logs-*-* etc.) so ours always wins for our pattern.
        "priority": 200,
        "template": {
            "settings": settings,
            "mappings": {"dynamic": False, "properties": dict(family.properties)},
            "aliases": {names.read_alias: {}},
        },
        "meta": {"owner": "qingfeng", "family": family.name, "template_version": _TEMPLATE_VERSION, "cjk": cjk},
        "version": _TEMPLATE_VERSION,
    }
