"""Relevance of a post to corruption public opinion (涉腐相关度): a probability in 0..1 with its reasons.

The criteria, their weights, the negative contexts and the calibration are data (``lexicons/relevance.yaml`` and
the category weights of the term lexicons); this module only applies them, in three steps:

1. negative contexts: a term near a context word that gives it another meaning (落马 of a jockey, 腐败 of food,
   官员 of another country) is dropped, and a ``suppressed:<rule>`` reason (weight 0) says which and why;
2. each criterion that fires contributes a weight w and a reason (``official_conduct``: an official or a holder of
   public power named with a word about conduct, found in the text); the raw score is the noisy-or
   ``1 - Π(1 - w)``: bounded by 1, monotone in every criterion, and order-independent;
3. the raw score goes through the policy's calibration, a monotone piecewise-linear map fitted on labelled posts
   (``bench/relevance_calibrate.py``), so that a threshold on the score is a threshold on observed precision. A
   post with no evidence scores 0: a score is never given without a reason.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace

from qingfeng.text._trie import compile_terms
from qingfeng.text.lexicon import Lexicons, Suppression
from qingfeng.text.tagging import Tags, TermHit

__all__ = ["Reason", "Relevance", "RelevanceScorer", "calibrate"]


@dataclass(frozen=True, slots=True)
class Reason:
    """One criterion that fired: its name, the weight it contributed and the words that triggered it."""

    criterion: str
    weight: float
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Relevance:
    """The calibrated score (0..1, four decimals) and every reason behind it, strongest first."""

    score: float
    reasons: tuple[Reason, ...]
    policy_version: str
    raw: float = 0.0
    """The noisy-or of the reasons' weights, before calibration."""


def _terms(hits: tuple[TermHit, ...], category: str | None = None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.term for h in hits if category is None or h.category == category))


def calibrate(knots: tuple[tuple[float, float], ...], raw: float) -> float:
    """The knots' piecewise-linear map at ``raw`` (identity without knots); monotone when the knots are."""
    if not knots:
        return raw
    i = bisect_right(knots, (raw, 2.0))
    if i == 0:
        return knots[0][1]
    if i == len(knots):
        return knots[-1][1]
    (x0, y0), (x1, y1) = knots[i - 1], knots[i]
    return y0 + (y1 - y0) * (raw - x0) / (x1 - x0)


class _Suppressor:
    """Drops the hits that a negative context explains away, with one reason per rule that fired."""

    __slots__ = ("_rules",)

    def __init__(self, rules: tuple[Suppression, ...]) -> None:
        self._rules: dict[str, list[Suppression]] = {}
        for rule in rules:
            for term in rule.terms:
                self._rules.setdefault(term, []).append(rule)

    def _context(self, hit: TermHit, text: str) -> tuple[str, str] | None:
        """(rule, why) of the first rule that silences ``hit``, or None."""
        for rule in self._rules.get(hit.term, ()):
            start = 0 if rule.window == 0 else max(0, hit.start - rule.window)
            end = len(text) if rule.window == 0 else hit.start + len(hit.term) + rule.window
            around = text[start:end]
            word = next((w for w in rule.context if w in around), None)
            if rule.near and word is not None:
                return rule.id, word
            if not rule.near and word is None:
                return rule.id, "no context"
        return None

    def apply(self, tags: Tags, text: str) -> tuple[Tags, list[Reason]]:
        if not text or not self._rules:
            return tags, []
        fired: dict[str, dict[str, None]] = {}
        kept: dict[str, tuple[TermHit, ...]] = {}
        for kind in ("corruption", "officials", "offline"):
            hits: tuple[TermHit, ...] = getattr(tags, kind)
            survivors = []
            for hit in hits:
                found = self._context(hit, text) if hit.term in self._rules else None
                if found is None:
                    survivors.append(hit)
                else:
                    fired.setdefault(found[0], {})[f"{hit.term}~{found[1]}"] = None
            if len(survivors) != len(hits):
                kept[kind] = tuple(survivors)
        if not fired:
            return tags, []
        reasons = [Reason(f"suppressed:{rule}", 0.0, tuple(evidence)) for rule, evidence in fired.items()]
        tags = replace(
            tags,
            corruption=kept.get("corruption", tags.corruption),
            officials=kept.get("officials", tags.officials),
            offline=kept.get("offline", tags.offline),
        )
        return tags, reasons


class RelevanceScorer:
    """Scores :class:`~qingfeng.text.tagging.Tags` with the policy and category weights of a lexicon set."""

    __slots__ = (
        "_corruption_weights",
        "_cues",
        "_holders",
        "_nothing",
        "_official_weights",
        "_offline_weights",
        "_policy",
        "_suppressor",
    )

    def __init__(self, lexicons: Lexicons) -> None:
        self._policy = lexicons.relevance
        self._corruption_weights = {c.id: c.weight for c in lexicons.corruption.categories.values()}
        self._official_weights = {c.id: c.weight for c in lexicons.officials.categories.values()}
        self._offline_weights = {c.id: c.weight for c in lexicons.offline.categories.values()}
        self._suppressor = _Suppressor(self._policy.suppress)
        # one trie-shaped regex each (leftmost-longest), like the taggers' vocabularies
        self._cues = compile_terms(self._policy.conduct_cues)
        self._holders = compile_terms(self._policy.conduct_holders)
        self._nothing = Relevance(0.0, (), self._policy.version)

    def score(self, tags: Tags, text: str = "") -> Relevance:
        """The relevance of a post with ``tags``; ``text`` (the simplified text they were found in) enables the
        negative contexts."""
        # Most posts name no holder of power (and no official) and skip the cue search.
        found = None if tags.officials or not text or self._holders is None else self._holders.search(text)
        holder = found.group() if found is not None else None
        if tags.is_empty and holder is None:
            return self._nothing
        tags, suppressed = self._suppressor.apply(tags, text)
        reasons = self._criteria(tags)
        if tags.officials:
            holder = tags.officials[0].term
        cue = self._cues.search(text) if holder is not None and self._cues is not None else None
        if holder is not None and cue is not None:
            reasons.append(Reason("official_conduct", self._policy.conduct_weight, (holder, cue.group())))
        remaining = 1.0
        for reason in reasons:
            remaining *= 1.0 - reason.weight
        reasons.sort(key=lambda r: -r.weight)
        kept = [Reason(r.criterion, round(r.weight, 4), r.evidence) for r in reasons if r.weight > 0]
        raw = round(1.0 - remaining, 4)
        score = round(calibrate(self._policy.calibration, raw), 4) if kept else 0.0
        return Relevance(score, (*kept, *suppressed), self._policy.version, raw)

    def _criteria(self, tags: Tags) -> list[Reason]:
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
        return reasons
