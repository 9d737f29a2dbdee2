"""The learned layer of the relevance score: a logistic regression over the policy's criteria, a vocabulary of
cue families and a capped set of character n-grams, stored as validated data (``lexicons/relevance_model.yaml``).

The weights are fitted by ``bench/relevance_fit.py`` on the calibrate half of the hand-labelled posts only; the file
records the labels' SHA-256, the split and the cross-validated figures. This module only reads and applies them:

- a *criterion* feature is one of the rule scorer's criteria (``corruption:bribery_taking``, ``official``,
  ``official_conduct`` ...) firing on a post; its weight is fitted non-negative, so more rule evidence never lowers
  the score;
- a *cue* feature is a family of words written for this layer (``charity``: 红十字会, 郭美美, 善款 …), also
  non-negative;
- a *combination* feature (``combo:official_downfall``) fires when each of its groups of criteria and cue families
  has a member in the post (an official named, and a word about a downfall or a call to punish: 副局长 + 倒台); its
  weight is fitted non-negative. A cue family marked ``alone: false`` (``downfall``, ``punish_call``,
  ``officials_loose``) is context: it has no weight of its own and counts only through a combination, because on
  the calibrate half such words alone (干掉, 严惩, 的官) were as often about games, crime news or 官方 as about
  officials;
- an *n-gram* feature is a 2-3 character string picked on the calibrate half for how well it separates the labels
  (``当官``, ``豆腐``); its weight may be negative (context that makes another meaning likely).

One Aho-Corasick automaton (``ahocorasick_rs``, leftmost-longest, like the taggers) finds the cue words and n-grams in
one pass, so the evidence of every feature is the text that fired it; the trie-shaped regex of the same words gives
the same matches (the reference, and the fallback for a text the automaton cannot encode).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from qingfeng.safe_yaml import SafeYamlError, load_yaml
from qingfeng.text._trie import compile_terms, find_terms
from qingfeng.text.conversion import prepare
from qingfeng.text.lexicon import LexiconError

__all__ = [
    "BUILTIN_MODEL",
    "MARKER",
    "Combo",
    "Finder",
    "LearnedModel",
    "ModelFile",
    "combo_groups",
    "load_model",
    "matcher",
    "sigmoid",
]

BUILTIN_MODEL = Path(__file__).resolve().parent / "lexicons" / "relevance_model.yaml"
MARKER = "# fitted: written by bench/relevance_fit.py from the calibrate split; do not edit by hand."

_STRICT = ConfigDict(extra="forbid", frozen=True)
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Word = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^\S+$")]
Finite = Annotated[float, Field(ge=-20.0, le=20.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, le=20.0, allow_inf_nan=False)]
# a rule criterion: "official", "corruption:bribery_taking"
_CRITERION = re.compile(r"^[a-z_]+(:[a-z_]+)?$")


class CueFamily(BaseModel):
    """Words that say one thing about a post (``charity``: a charity's money; ``tigers``: 打老虎 slang)."""

    model_config = _STRICT

    label: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    words: list[Word] = Field(min_length=1, max_length=300)
    alone: bool = True
    """False: the family is context, counted only through a combination (``downfall`` words say little about
    corruption unless an official is named too); it has no weight of its own and is no evidence on its own."""


class Combo(BaseModel):
    """Two or more groups of features that say more together than apart (``official_downfall``: an official named
    and a word about a downfall): fires when every group has a member among the post's features. A member is a rule
    criterion (``official``) or a cue family (``cue:downfall``)."""

    model_config = _STRICT

    label: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    groups: list[list[Annotated[str, StringConstraints(min_length=1, max_length=60)]]] = Field(
        min_length=2, max_length=4
    )


class Fit(BaseModel):
    """Where the weights came from."""

    model_config = _STRICT

    fitted_at: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    labels: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    labels_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    split: Literal["calibrate"]
    posts: int = Field(ge=1)
    relevant: int = Field(ge=0)
    l2: float = Field(gt=0.0, le=10.0)
    cv_f1: float = Field(ge=0.0, le=1.0)
    """Best F1 of the out-of-fold predictions (event-grouped folds of the calibrate half)."""


class ModelFile(BaseModel):
    """``lexicons/relevance_model.yaml``."""

    model_config = _STRICT

    kind: Literal["relevance_model"]
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    policy_version: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    """The relevance policy whose criteria the weights were fitted on; another policy disables the model."""
    fit: Fit
    cues: dict[Name, CueFamily] = Field(default_factory=dict)
    combos: dict[Name, Combo] = Field(default_factory=dict)
    bias: Finite
    criteria: dict[str, NonNegative] = Field(default_factory=dict)
    cue_weights: dict[Name, NonNegative] = Field(default_factory=dict)
    combo_weights: dict[Name, NonNegative] = Field(default_factory=dict)
    ngrams: dict[str, Finite] = Field(default_factory=dict, max_length=1000)

    @field_validator("criteria")
    @classmethod
    def _criterion_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not _CRITERION.match(name):
                raise ValueError(f"{name!r} is not a criterion name (e.g. corruption:bribery_taking, official)")
        return value

    @field_validator("ngrams")
    @classmethod
    def _ngram_shape(cls, value: dict[str, float]) -> dict[str, float]:
        for gram in value:
            if not 2 <= len(gram) <= 3 or gram != prepare(gram) or any(c.isspace() for c in gram):
                raise ValueError(f"{gram!r}: an n-gram is 2-3 characters of simplified text without spaces")
        return value


_SHORT = 16
"""Below this many characters the regex is the quicker (calling the automaton costs ~0.5 µs; the regex ~0.08 µs a
character): most Weibo posts are shorter."""


class Finder:
    """Leftmost-longest, non-overlapping occurrences of a set of words: an Aho-Corasick DFA (several times faster
    than the regex on Chinese text), with the trie-shaped regex as the reference and the fallback for lone
    surrogates, which the automaton cannot encode."""

    __slots__ = ("_find", "_pattern", "words")

    def __init__(self, words: Iterable[str]) -> None:
        self.words: tuple[str, ...] = tuple(dict.fromkeys(w for w in words if w))
        self._pattern = compile_terms(self.words)
        self._find: Callable[[str], list[tuple[int, int, int]]] | None = find_terms(self.words) if self.words else None

    def all(self, text: str) -> list[str]:
        """Every occurrence, in text order."""
        if len(text) < _SHORT or self._find is None:
            return self._pattern.findall(text) if self._pattern is not None else []
        try:
            words = self.words
            return [words[i] for i, _, _ in self._find(text)]
        except UnicodeEncodeError:
            return self.regex_all(text)

    def first(self, text: str) -> str | None:
        """The first occurrence, or None."""
        if len(text) < _SHORT or self._find is None:
            # the regex stops at the first occurrence
            found = self._pattern.search(text) if self._pattern is not None else None
            return found.group() if found is not None else None
        hits = self.all(text)
        return hits[0] if hits else None

    def regex_all(self, text: str) -> list[str]:
        """The same occurrences found by the trie-shaped regex (the reference implementation)."""
        return [] if self._pattern is None else self._pattern.findall(text)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, x))))


@dataclass(frozen=True, slots=True)
class LearnedModel:
    """The fitted weights and the one-pass matcher of cue words and n-grams."""

    version: str
    policy_version: str
    bias: float
    criteria: dict[str, float]
    cue_weights: dict[str, float]
    ngrams: dict[str, float]
    combos: tuple[tuple[str, float, tuple[frozenset[str], ...]], ...]
    """(name, weight, groups) of the combinations with a weight: each group a set of criteria and ``cue:<family>``."""
    gates: tuple[frozenset[str] | None, ...]
    """Per combination, its first group made of cue families only (None: every group holds a criterion)."""
    feature_of: dict[str, str]
    """Matched string -> feature name (``cue:<family>`` or ``ngram:<gram>``)."""
    finder: Finder
    source: str

    def weight(self, feature: str) -> float:
        """The weight of a feature the matcher found (``cue:<family>`` or ``ngram:<gram>``)."""
        kind, _, name = feature.partition(":")
        return self.cue_weights.get(name, 0.0) if kind == "cue" else self.ngrams.get(name, 0.0)

    def matches(self, text: str) -> dict[str, list[str]]:
        """Feature name -> the distinct strings of ``text`` that fired it, in text order."""
        found: dict[str, list[str]] = {}
        hits = self.finder.all(text)
        if not hits:  # most posts
            return found
        feature_of = self.feature_of
        for hit in hits:
            words = found.setdefault(feature_of[hit], [])
            if hit not in words:
                words.append(hit)
        return found

    def might_combine(self, learned: dict[str, list[str]]) -> bool:
        """False when no combination can fire because one of its groups is made of cue families only and none of
        them is among the features ``learned`` found (most posts: the check that spares building the criteria map)."""
        return any(gate is None or not gate.isdisjoint(learned) for gate in self.gates)

    def combined(self, fired: dict[str, tuple[str, ...]]) -> list[tuple[str, float, tuple[str, ...]]]:
        """(``combo:<name>``, weight, evidence) of every combination whose groups all have a member in ``fired``
        (feature -> its words); the evidence is the words of the first member found in each group."""
        out = []
        for name, weight, groups in self.combos:
            evidence: list[str] = []
            for group in groups:
                member = next((f for f in fired if f in group), None)
                if member is None:
                    break
                evidence.extend(w for w in fired[member] if w not in evidence)
            else:
                out.append((f"combo:{name}", weight, tuple(evidence)))
        return out


def combo_groups(combo_groups_raw: list[list[str]]) -> tuple[frozenset[str], ...]:
    """The groups of a combination as sets (what :meth:`LearnedModel.combined` and the fit test membership in)."""
    return tuple(frozenset(g) for g in combo_groups_raw)


def matcher(cues: dict[str, list[str]], ngrams: list[str], path: str = "<cues>") -> tuple[dict[str, str], Finder]:
    """(matched string -> feature name, the one-pass finder) for cue families and n-grams; what the fit and the
    scorer both use, so that a feature means the same at fit time and at run time."""
    feature_of: dict[str, str] = {}
    for family, words in cues.items():
        for i, raw in enumerate(words):
            word = prepare(raw)
            prior = feature_of.get(word)
            if prior is not None and prior != f"cue:{family}":
                raise LexiconError(path, f"cues.{family}.words[{i}]", f"{raw!r} is already a word of {prior}")
            feature_of[word] = f"cue:{family}"
    for gram in ngrams:
        # a cue word wins over an n-gram spelled alike: the family is the more specific reading
        feature_of.setdefault(gram, f"ngram:{gram}")
    return feature_of, Finder(feature_of)


def _build(model: ModelFile, path: str) -> LearnedModel:
    for family in model.cue_weights:
        if family not in model.cues:
            raise LexiconError(path, f"cue_weights.{family}", "no cue family of that name")
        if not model.cues[family].alone:
            raise LexiconError(path, f"cue_weights.{family}", "a family with alone: false has no weight of its own")
    for name in model.combo_weights:
        if name not in model.combos:
            raise LexiconError(path, f"combo_weights.{name}", "no combination of that name")
    for name, combo in model.combos.items():
        for g, group in enumerate(combo.groups):
            for k, member in enumerate(group):
                kind, _, family = member.partition(":")
                if kind == "cue" and family not in model.cues:
                    raise LexiconError(path, f"combos.{name}.groups[{g}][{k}]", "no cue family of that name")
                if kind != "cue" and not _CRITERION.match(member):
                    raise LexiconError(path, f"combos.{name}.groups[{g}][{k}]", "neither a criterion nor cue:<family>")
    feature_of, finder = matcher({f: c.words for f, c in model.cues.items()}, list(model.ngrams), path)
    combos = tuple(
        (name, weight, combo_groups(model.combos[name].groups)) for name, weight in model.combo_weights.items()
    )
    fit = model.fit
    source = (
        f"logistic fit {fit.fitted_at} on {fit.labels} (sha256 {fit.labels_sha256[:12]}, split {fit.split}, "
        f"{fit.relevant}/{fit.posts} relevant, l2 {fit.l2:g}, out-of-fold F1 {fit.cv_f1:.3f})"
    )
    return LearnedModel(
        version=model.version,
        policy_version=model.policy_version,
        bias=model.bias,
        criteria=dict(model.criteria),
        cue_weights=dict(model.cue_weights),
        ngrams=dict(model.ngrams),
        combos=combos,
        gates=tuple(next((g for g in c if all(m.startswith("cue:") for m in g)), None) for _, _, c in combos),
        feature_of=feature_of,
        finder=finder,
        source=source,
    )


def load_model(path: str | Path = BUILTIN_MODEL) -> LearnedModel:
    """Read and validate a model file; a :class:`~qingfeng.text.lexicon.LexiconError` names the file and field."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise LexiconError(name, "<file>", f"cannot read: {exc}") from exc
    try:
        data: Any = load_yaml(text, source=name)
    except SafeYamlError as exc:
        raise LexiconError(name, "<file>", str(exc)) from exc
    try:
        model = ModelFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise LexiconError(name, field, first["msg"]) from exc
    return _build(model, name)
