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

With the learned layer (``lexicons/relevance_model.yaml``, see :mod:`qingfeng.text.relevance_model`; used when it
was fitted for the loaded policy's version) step 2 becomes a logistic regression: the raw score is
``sigmoid(bias + Σ weight)`` over the criteria that fired, the cue families, their combinations (an official named
with a word about a downfall) and the n-grams found, each reason's
weight is its contribution in log-odds (negative for an n-gram that points away), and the calibration map is fitted
on out-of-fold predictions of that model (``bench/relevance_fit.py``). A post where no criterion and no cue word
contributes scores 0, whatever its n-grams.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from qingfeng.text.lexicon import Lexicons, Suppression
from qingfeng.text.relevance_model import BUILTIN_MODEL, Finder, LearnedModel, load_model, sigmoid
from qingfeng.text.tagging import Tags, TermHit

__all__ = ["POOLED", "SCAN_WINDOW", "Reason", "Relevance", "RelevanceScorer", "calibrate", "pooled"]

SCAN_WINDOW = 300
"""Characters from the start in which the conduct holders and cues and the learned cue words and n-grams are looked
for: a Weibo post whole (none of the 57,576 shared posts is longer), the title and lead of a long text. The lexicon
terms are tagged in the whole text; these scans are bounded because each is a regex pass of only ~10 M characters/s
and the whole kernel's budget on long texts is 2 M characters/s."""


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
    """Before calibration: the learned model's probability, or without it the noisy-or of the reasons' weights."""


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


POOLED = "corruption"
"""A criterion of the learned layer that fires with any ``corruption:<category>``: the weight the categories share,
so that a category seen in few labelled posts (挪用, 索贿) still weighs what a corruption term weighs."""


def pooled(criteria: set[str]) -> set[str]:
    """The criteria of a post as the learned layer sees them: with :data:`POOLED` when a corruption term fired."""
    return criteria | {POOLED} if any(c.startswith("corruption:") for c in criteria) else criteria


@lru_cache(maxsize=1)
def _builtin_model() -> LearnedModel | None:
    return load_model(BUILTIN_MODEL) if BUILTIN_MODEL.is_file() else None


class RelevanceScorer:
    """Scores :class:`~qingfeng.text.tagging.Tags` with the policy and category weights of a lexicon set.

    ``model``: the learned layer (default: the built-in file); it applies only when fitted for the policy's version,
    so a replaced policy (an extension file) scores with its own weights alone. ``None`` disables it.
    """

    __slots__ = (
        "_corruption_weights",
        "_cues",
        "_holders",
        "_model",
        "_nothing",
        "_official_weights",
        "_offline_weights",
        "_policy",
        "_suppressor",
    )

    def __init__(self, lexicons: Lexicons, model: LearnedModel | Literal["builtin"] | None = "builtin") -> None:
        self._policy = lexicons.relevance
        if model == "builtin":
            model = _builtin_model()
        self._model = model if model is not None and model.policy_version == self._policy.version else None
        self._corruption_weights = {c.id: c.weight for c in lexicons.corruption.categories.values()}
        self._official_weights = {c.id: c.weight for c in lexicons.officials.categories.values()}
        self._offline_weights = {c.id: c.weight for c in lexicons.offline.categories.values()}
        self._suppressor = _Suppressor(self._policy.suppress)
        # one automaton each (leftmost-longest), like the taggers' vocabularies
        self._cues = Finder(self._policy.conduct_cues)
        self._holders = Finder(self._policy.conduct_holders)
        version = self._policy.version if self._model is None else f"{self._policy.version}+{self._model.version}"
        self._nothing = Relevance(0.0, (), version)

    @property
    def model(self) -> LearnedModel | None:
        """The learned layer in use, if any."""
        return self._model

    def score(self, tags: Tags, text: str = "") -> Relevance:
        """The relevance of a post with ``tags``; ``text`` (the simplified text they were found in) enables the
        negative contexts."""
        head = text[:SCAN_WINDOW]
        # Most posts name no holder of power (and no official) and skip the cue search.
        holder = None if tags.officials else self._holders.first(head)
        learned = self._model.matches(head) if self._model is not None else None
        # n-grams alone are no evidence (see _learned), nor context families alone: most posts stop here, before the
        # criteria are built
        if tags.is_empty and holder is None and not (learned and self._cue_evidence(learned)):
            return self._nothing
        tags, suppressed = self._suppressor.apply(tags, text)
        reasons = self._criteria(tags)
        if tags.officials:
            holder = tags.officials[0].term
        cue = self._cues.first(head) if holder is not None else None
        if holder is not None and cue is not None:
            reasons.append(Reason("official_conduct", self._policy.conduct_weight, (holder, cue)))
        if self._model is not None:
            return self._learned(self._model, reasons, learned or {}, suppressed)
        remaining = 1.0
        for reason in reasons:
            remaining *= 1.0 - reason.weight
        reasons.sort(key=lambda r: -r.weight)
        kept = [Reason(r.criterion, round(r.weight, 4), r.evidence) for r in reasons if r.weight > 0]
        raw = round(1.0 - remaining, 4)
        score = round(calibrate(self._policy.calibration, raw), 4) if kept else 0.0
        return Relevance(score, (*kept, *suppressed), self._nothing.policy_version, raw)

    def _cue_evidence(self, learned: dict[str, list[str]]) -> bool:
        """Whether the cue families found could give a score without any criterion: one with a weight of its own,
        or a combination of cue families alone (a context family such as 干掉 needs an official beside it)."""
        model = self._model
        if model is None:
            return False
        cues = {f: tuple(w) for f, w in learned.items() if f.startswith("cue:")}
        if any(model.cue_weights.get(f[4:], 0.0) > 0 for f in cues):
            return True
        return bool(cues) and bool(model.combined(cues))

    def _learned(
        self, model: LearnedModel, reasons: list[Reason], learned: dict[str, list[str]], suppressed: list[Reason]
    ) -> Relevance:
        """The logistic layer: every criterion, cue family and n-gram that fired adds its weight to the log-odds."""
        parts: list[Reason] = []
        terms: dict[str, None] = {}
        for reason in reasons:
            if reason.criterion.startswith("corruption:"):
                terms.update(dict.fromkeys(reason.evidence))
            weight = model.criteria.get(reason.criterion, 0.0)
            if weight:
                parts.append(Reason(reason.criterion, weight, reason.evidence))
        shared = model.criteria.get(POOLED, 0.0) if terms else 0.0
        if shared:
            parts.append(Reason(POOLED, shared, tuple(terms)))
        for feature, words in learned.items():
            weight = model.weight(feature)
            if weight:
                parts.append(Reason(feature, weight, tuple(words)))
        if model.combos and model.might_combine(learned):
            fired = {r.criterion: r.evidence for r in reasons}
            if terms:
                fired[POOLED] = tuple(terms)
            fired.update((f, tuple(w)) for f, w in learned.items() if f.startswith("cue:"))
            parts.extend(Reason(*combo) for combo in model.combined(fired))
        if not any(p.weight > 0 and not p.criterion.startswith("ngram:") for p in parts):
            # no criterion and no cue word speaks for relevance: no score without a reason (n-grams are context that
            # moves a score, not evidence on their own: 公园 of one labelled villa scandal is no reason)
            return replace(self._nothing, reasons=tuple(suppressed)) if suppressed else self._nothing
        logit = model.bias + sum(p.weight for p in parts)
        parts.sort(key=lambda r: -r.weight)
        raw = round(sigmoid(logit), 4)
        score = round(calibrate(self._policy.calibration, raw), 4)
        kept = tuple(Reason(p.criterion, round(p.weight, 4), p.evidence) for p in parts)
        return Relevance(score, (*kept, *suppressed), self._nothing.policy_version, raw)

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
