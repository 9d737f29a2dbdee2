"""The enrichment and dedupe answer of the core, written into the ``Post`` message the pipeline produces.

The lexicon files name their own categories (``bribery_taking``, ``protest`` …); the contract (post.proto) has a
coarser, stable enum. The tables below map one onto the other; a category added by an extension lexicon that is not
listed maps to ``OTHER`` rather than failing, so extending the vocabulary never breaks collection.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from qingfeng.text import Region, Tags
from qingfeng.v1 import common_pb2, post_pb2

from services.collector.core import DedupeKind, EnrichedPost

__all__ = ["CORRUPTION_CATEGORIES", "OFFLINE_KINDS", "fill_post"]

_C = post_pb2.CorruptionCategory
CORRUPTION_CATEGORIES: Final[Mapping[str, post_pb2.CorruptionCategory.ValueType]] = {
    "general": _C.CORRUPTION_CATEGORY_OTHER,
    "embezzlement": _C.CORRUPTION_CATEGORY_EMBEZZLEMENT,
    "misappropriation": _C.CORRUPTION_CATEGORY_EMBEZZLEMENT,
    "bribery_taking": _C.CORRUPTION_CATEGORY_BRIBERY,
    "bribery_giving": _C.CORRUPTION_CATEGORY_BRIBERY,
    "extortion": _C.CORRUPTION_CATEGORY_BRIBERY,
    "abuse_of_power": _C.CORRUPTION_CATEGORY_ABUSE_OF_POWER,
    "dereliction": _C.CORRUPTION_CATEGORY_DERELICTION,
    "eight_rules": _C.CORRUPTION_CATEGORY_FOUR_WINDS,
    "conduct": _C.CORRUPTION_CATEGORY_PERSONAL_CONDUCT,
    "personnel": _C.CORRUPTION_CATEGORY_NEPOTISM,
    "illicit_wealth": _C.CORRUPTION_CATEGORY_ILLICIT_WEALTH,
    "discipline": _C.CORRUPTION_CATEGORY_OTHER,
}

_O = post_pb2.OfflineActionKind
OFFLINE_KINDS: Final[Mapping[str, post_pb2.OfflineActionKind.ValueType]] = {
    "gathering": _O.OFFLINE_ACTION_KIND_GATHERING,
    "petition": _O.OFFLINE_ACTION_KIND_PETITION,
    "protest": _O.OFFLINE_ACTION_KIND_MARCH,
    "blockade": _O.OFFLINE_ACTION_KIND_BLOCKADE,
    "labour": _O.OFFLINE_ACTION_KIND_STRIKE,
    "extreme": _O.OFFLINE_ACTION_KIND_OTHER,
}
# Terms whose kind is finer than their lexicon category (静坐 is listed under protest).
_OFFLINE_TERM_KINDS: Final[Mapping[str, post_pb2.OfflineActionKind.ValueType]] = {
    "静坐": _O.OFFLINE_ACTION_KIND_SIT_IN,
}
# Words that make an offline signal a plan rather than a report (明天去市政府门口静坐), looked for just before the term.
_PLAN_CUES: Final = (
    "明天", "明日", "后天", "今晚", "下周", "约好", "相约", "集合", "准备去", "将于", "计划", "号召", "一起去",
)  # fmt: skip
_PLAN_WINDOW: Final = 12

_LEVEL_ORDER: Final = {"county": 0, "prefecture": 1, "province": 2}

_DUPLICATE_KINDS: Final = {
    DedupeKind.EXACT: post_pb2.DUPLICATE_KIND_EXACT,
    DedupeKind.NEAR: post_pb2.DUPLICATE_KIND_NEAR,
}


def fill_post(post: post_pb2.Post, enriched: EnrichedPost, regions: Mapping[str, Region]) -> None:
    """Write ``enriched`` into ``post``: text_simplified, keywords, enrichment and dedupe.

    Regions already on ``post.enrichment`` (the source's or the tip's own 属地) are kept first; the regions named in
    the text follow, most specific first, then the provinces they imply. ``regions`` is the lexicon's code → region.
    """
    e = enriched.enrichment
    post.text_simplified = f"{enriched.title}\n{enriched.text}" if enriched.title else enriched.text
    keywords = post.keywords
    if keywords:
        del keywords[:]
    keywords.extend(e.keywords)
    # Most posts come without enrichment (no source regions): nothing to keep, nothing to clear.
    given: list[common_pb2.Region] = []
    if post.HasField("enrichment"):
        given = list(post.enrichment.regions)
        post.ClearField("enrichment")
    out = post.enrichment
    tags = e.tags
    if tags.corruption or tags.officials:
        _fill_terms(out, tags)
    if tags.offline:
        _fill_offline(out, tags, e.simplified)
    if given:
        out.regions.extend(given)
    if tags.region_codes:
        seen = {r.code for r in given}
        out.regions.extend(r for r in _tag_regions(tags, regions) if r.code not in seen)
    out.relevance = e.relevance.score
    if e.relevance.reasons:
        out.relevance_reasons.extend(
            common_pb2.Reason(criterion=r.criterion, value=r.weight, message="、".join(r.evidence))
            for r in e.relevance.reasons
        )
    out.lexicon_version = e.lexicon_version
    d = enriched.dedupe
    dedupe = post.dedupe
    if post.HasField("dedupe"):
        dedupe.Clear()
    dedupe.content_hash = d.content_hash
    dedupe.simhash = d.simhash or 0
    if d.duplicate_of is not None:
        dedupe.duplicate_of = d.duplicate_of
        dedupe.duplicate_kind = _DUPLICATE_KINDS.get(d.kind, post_pb2.DUPLICATE_KIND_UNSPECIFIED)
        dedupe.hamming_distance = d.distance or 0


def _fill_terms(out: post_pb2.Enrichment, tags: Tags) -> None:
    if tags.corruption:
        counts: dict[tuple[str, str], int] = {}
        for hit in tags.corruption:
            counts[(hit.term, hit.category)] = counts.get((hit.term, hit.category), 0) + 1
        out.corruption_terms.extend(
            post_pb2.TermMatch(
                term=term, category=CORRUPTION_CATEGORIES.get(category, _C.CORRUPTION_CATEGORY_OTHER), count=n
            )
            for (term, category), n in counts.items()
        )
    if tags.officials:
        titles = dict.fromkeys(hit.term for hit in tags.officials)
        out.official_titles.extend(post_pb2.OfficialMention(title=t) for t in titles)


def _fill_offline(out: post_pb2.Enrichment, tags: Tags, text: str) -> None:
    seen: dict[str, int] = {}
    for hit in tags.offline:
        planned = any(cue in text[max(0, hit.start - _PLAN_WINDOW) : hit.start] for cue in _PLAN_CUES)
        index = seen.get(hit.term)
        if index is not None:
            # One signal per term; planned wins when any mention of it is a plan.
            if planned:
                out.offline_signals[index].planned = True
            continue
        seen[hit.term] = len(out.offline_signals)
        kind = _OFFLINE_TERM_KINDS.get(hit.term) or OFFLINE_KINDS.get(hit.category, _O.OFFLINE_ACTION_KIND_OTHER)
        out.offline_signals.append(post_pb2.OfflineSignal(kind=kind, term=hit.term, planned=planned))


def _tag_regions(tags: Tags, regions: Mapping[str, Region]) -> list[common_pb2.Region]:
    if not tags.region_codes:
        return []
    known = [regions[c] for c in tags.region_codes if c in regions]
    known.sort(key=lambda r: (r.code != tags.primary_region, _LEVEL_ORDER[r.level], r.code))
    return [common_pb2.Region(code=r.code, name=r.name) for r in known]
