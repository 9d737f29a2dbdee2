"""Elasticsearch for Qingfeng: client and readiness, index templates with a CJK analyzer, aliases, bulk writes.

Indices are created from templates owned by the code (``templates.py``), written through a write alias with the bulk
API and read through a read alias, so a family can roll over without its readers or writers noticing.
"""

from qingfeng.elastic.bulk import BulkFailure, BulkResult, Refresh, bulk_index
from qingfeng.elastic.client import ClusterHealth, create_client, health
from qingfeng.elastic.index import RolloverResult, delete_family, detect_cjk_mode, ensure_index, rollover
from qingfeng.elastic.queries import DEFAULT_TEXT_FIELDS, phrase_query
from qingfeng.elastic.templates import (
    ANALYZER,
    EVENTS,
    FAMILIES,
    POSTS,
    WORDS_ANALYZER,
    CjkMode,
    IndexFamily,
    IndexNames,
    analyzer_definition,
    index_settings,
    template_body,
)
from qingfeng.elastic.words import WordSplitter, default_splitter, join_fragment

__all__ = [
    "ANALYZER",
    "DEFAULT_TEXT_FIELDS",
    "EVENTS",
    "FAMILIES",
    "POSTS",
    "WORDS_ANALYZER",
    "BulkFailure",
    "BulkResult",
    "CjkMode",
    "ClusterHealth",
    "IndexFamily",
    "IndexNames",
    "Refresh",
    "RolloverResult",
    "WordSplitter",
    "analyzer_definition",
    "bulk_index",
    "create_client",
    "default_splitter",
    "delete_family",
    "detect_cjk_mode",
    "ensure_index",
    "health",
    "index_settings",
    "join_fragment",
    "phrase_query",
    "rollover",
    "template_body",
]
