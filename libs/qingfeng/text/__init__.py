"""Chinese text kernel: conversion, segmentation, vocabulary tagging, relevance and fingerprints.

Typical use, once per process::

    enricher = Enricher(extra_lexicons=settings.extra_lexicons)
    result = enricher.enrich(post_text)
    result.tags.corruption_categories, result.tags.primary_region, result.relevance.score
"""

from qingfeng.text.conversion import (
    content_hash,
    normalize_for_hash,
    normalize_width,
    prepare,
    strip_noise,
    to_simplified,
)
from qingfeng.text.enrichment import STAGE_BATCH, STAGED_MIN_CHARS, Enricher, Enrichment, default_enricher, enrich
from qingfeng.text.fingerprint import MAX_FINGERPRINT_CHARS, SimhashIndex, hamming, simhash64, simhash64_many
from qingfeng.text.lexicon import (
    Category,
    LexiconError,
    Lexicons,
    Region,
    RegionLevel,
    RelevancePolicy,
    TermLexicon,
    load_lexicons,
)
from qingfeng.text.relevance import Reason, Relevance, RelevanceScorer
from qingfeng.text.segment import Segmenter
from qingfeng.text.tagging import RegionHit, Tagger, Tags, TermHit

__all__ = [
    "MAX_FINGERPRINT_CHARS",
    "STAGED_MIN_CHARS",
    "STAGE_BATCH",
    "Category",
    "Enricher",
    "Enrichment",
    "LexiconError",
    "Lexicons",
    "Reason",
    "Region",
    "RegionHit",
    "RegionLevel",
    "Relevance",
    "RelevancePolicy",
    "RelevanceScorer",
    "Segmenter",
    "SimhashIndex",
    "Tagger",
    "Tags",
    "TermHit",
    "TermLexicon",
    "content_hash",
    "default_enricher",
    "enrich",
    "hamming",
    "load_lexicons",
    "normalize_for_hash",
    "normalize_width",
    "prepare",
    "simhash64",
    "simhash64_many",
    "strip_noise",
    "to_simplified",
]
