"""Relevance of a post to corruption public opinion (涉腐相关度): a score in 0..1 with its reasons.

The criteria and their weights are data (``lexicons/relevance.yaml`` and the category weights of the term
lexicons); this module only applies them. Each criterion that fires contributes a weight w and a reason; the
score is the noisy-or ``1 - Π(1 - w)``: bounded by 1, monotone in every criterion, and order-independent.
"""

from __future__ import annotations

from dataclasses import dataclass

from qingfeng.text.lexicon import Lexicons
from qingfeng.text.tagging import Tags, TermHit

__all__ = ["Reason", "Relevance", "RelevanceScorer"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One criterion that fired: its name, the weight it contributed and the words that triggered it."""

    criterion: str
    weight: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Relevance:
    """The score (0..1, four decimals) and every reason behind it, strongest first."""

    score: float
    reasons: tuple[Reason, ...]
    policy_version: str


def _terms(hits: tuple[TermHit, ...], category: str | None = None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.term for h in hits if category is None or h.category == category))


class RelevanceScorer:
    """Scores :class:`~qingfeng.text.tagging.Tags` with the policy and category weights of a lexicon set."""

    __slots__ = ("_corruption_weights", "_nothing", "_official_weights", "_offline_weights", "_policy")

    def __init__(self, lexicons: Lexicons) -> None:
        self._policy = lexicons.relevance
        self._corruption_weights = {c.id: c.weight for c in lexicons.corruption.categories.values()}
        self._official_weights = {c.id: c.weight for c in lexicons.officials.categories.values()}
        self._offline_weights = {c.id: c.weight for c in lexicons.offline.categories.values()}
        self._nothing = Relevance(0.0, (), self._policy.version)

    def score(self, tags: Tags) -> Relevance:
        """The relevance of a post with ``tags``."""
        if tags.is_empty:
            return self._nothing
        p = self._policy
        reasons: list[Reason] = []
        corrupt = bool(tags.corruption)
        for category in tags.corruption_categories:
            weight = self._corruption_weights[category] * p.corruption_scale
            reasons.append(Reason(f"corruption:{category}", weight, _terms(tags.corruption, category)))
        if tags.officials:
            seniority = max(self._official_weights[c] for c in tags.official_categories)
            titles = _terms(tags.officials)
            reasons.append(Reason("official", p.official * seniority, titles))
            if corrupt:
                reasons.append(Reason("official_corruption", p.official_corruption * seniority, titles))
        if tags.offline:
            strength = max(self._offline_weights[c] for c in tags.offline_categories)
            signals = _terms(tags.offline)
            reasons.append(Reason("offline", p.offline * strength, signals))
            if corrupt:
                reasons.append(Reason("offline_corruption", p.offline_corruption * strength, signals))
        if tags.regions:
            places = tuple(dict.fromkeys(h.name for h in tags.regions))
            reasons.append(Reason("region", p.region, places))
            if corrupt:
                reasons.append(Reason("region_corruption", p.region_corruption, places))
        remaining = 1.0
        for reason in reasons:
            remaining *= 1.0 - reason.weight
        reasons.sort(key=lambda r: -r.weight)
        kept = tuple(Reason(r.criterion, round(r.weight, 4), r.evidence) for r in reasons if r.weight > 0)
        return Relevance(round(1.0 - remaining, 4), kept, p.version)
