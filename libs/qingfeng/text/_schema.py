"""Pydantic schemas of the lexicon files (one per ``kind``), used only to validate them at load.

The rest of the package works on the frozen dataclasses built from them in ``lexicon.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

__all__ = [
    "FILE_SCHEMAS",
    "CalibrationBlock",
    "ConductRule",
    "RegionEntry",
    "RegionFile",
    "RelevanceFile",
    "RelevanceWeights",
    "StopwordFile",
    "SuppressRule",
    "TermCategory",
    "TermFile",
]

_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

Term = Annotated[str, StringConstraints(min_length=1, max_length=32, strip_whitespace=True)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Weight = Annotated[float, Field(ge=0.0, le=1.0)]
CategoryId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]

_CODE = re.compile(r"^[1-9][0-9]{5}$")


def _reject_inner_space(terms: list[str]) -> list[str]:
    # A term with a space inside can never match: the text is matched as written, and a typo like
    # "公款 吃喝" would silently never fire.
    for term in terms:
        if any(ch.isspace() for ch in term):
            raise ValueError(f"term {term!r} contains whitespace")
    return terms


class TermCategory(BaseModel):
    """One category of a term lexicon. ``label`` and ``weight`` are required unless it extends a known one."""

    model_config = _STRICT

    label: str | None = Field(default=None, min_length=1)
    weight: Weight | None = None
    terms: list[Term] = Field(min_length=1)

    _check_terms = field_validator("terms")(_reject_inner_space)


class TermFile(BaseModel):
    """A term lexicon: corruption vocabulary, officials' titles or offline-action signals."""

    model_config = _STRICT

    kind: Literal["corruption", "official", "offline"]
    version: Version
    categories: dict[CategoryId, TermCategory] = Field(min_length=1)
    exclude: list[Term] = Field(default_factory=list)
    """Longer phrases that contain a term but do not mean it (被查出 "diagnosed" is not 被查 "investigated")."""

    _check_exclude = field_validator("exclude")(_reject_inner_space)


class RegionEntry(BaseModel):
    """One administrative division with its GB/T 2260 code."""

    model_config = _STRICT

    code: str
    name: Term
    aliases: list[Term] = Field(default_factory=list)

    @field_validator("code")
    @classmethod
    def _six_digits(cls, code: str) -> str:
        if not _CODE.match(code):
            raise ValueError(f"GB/T 2260 code must be six digits not starting with 0, got {code!r}")
        return code

    _check_aliases = field_validator("aliases")(_reject_inner_space)


class RegionFile(BaseModel):
    """A region lexicon: divisions with their codes and short names."""

    model_config = _STRICT

    kind: Literal["region"]
    version: Version
    regions: list[RegionEntry] = Field(default_factory=list)
    exclude: list[Term] = Field(default_factory=list)
    """Phrases that contain a place name but do not name the place (北京时间 is a time zone)."""

    _check_exclude = field_validator("exclude")(_reject_inner_space)


class StopwordFile(BaseModel):
    """Words never reported as keywords."""

    model_config = _STRICT

    kind: Literal["stopwords"]
    version: Version
    words: list[Term] = Field(min_length=1)


class RelevanceWeights(BaseModel):
    """Weights of the relevance criteria; their meaning is documented in ``relevance.yaml``."""

    model_config = _STRICT

    corruption_scale: Weight
    official: Weight
    official_corruption: Weight
    offline: Weight
    offline_corruption: Weight
    region: Weight
    region_corruption: Weight


class SuppressRule(BaseModel):
    """A negative context: near one of ``context``, a lexicon term in ``terms`` means something else (落马 of a
    jockey, 腐败 of food, 官员 of another country) and contributes nothing; the score gives it as a reason.
    With ``when: not_near`` the term counts only near a context word (表哥 is a cousin unless a watch is near)."""

    model_config = _STRICT

    id: CategoryId
    terms: list[Term] = Field(min_length=1)
    context: list[Term] = Field(min_length=1)
    when: Literal["near", "not_near"] = "near"
    window: int = Field(default=8, ge=0, le=200)
    """Characters either side of the term searched for a context word; 0 = the whole text."""

    _check_terms = field_validator("terms")(_reject_inner_space)
    _check_context = field_validator("context")(_reject_inner_space)


class ConductRule(BaseModel):
    """Officials' conduct: a holder of public power (an official's title, or one of ``holders``) named together
    with one of ``cues`` (a word about behaviour: 送礼, 名表, 恶心, 扶贫款 ...) contributes ``weight``. What turns
    a mention of 某局长 into a story about an official's behaviour when no corruption term is written."""

    model_config = _STRICT

    weight: Weight
    holders: list[Term] = Field(default_factory=list)
    cues: list[Term] = Field(min_length=1)

    _check_holders = field_validator("holders")(_reject_inner_space)
    _check_cues = field_validator("cues")(_reject_inner_space)


Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class CalibrationBlock(BaseModel):
    """A monotone map from the raw noisy-or score to a probability of relevance, fitted on labelled posts.

    ``knots`` are (raw, probability) pairs, raw strictly increasing from 0 to 1 and probability non-decreasing;
    a raw score between two knots is interpolated linearly. The other fields say where the fit came from.
    """

    model_config = _STRICT

    method: Literal["isotonic"]
    knots: list[tuple[Probability, Probability]] = Field(min_length=2, max_length=200)
    fitted_at: Version
    labels: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    """The label file the map was fitted on (path relative to the repository) ..."""
    labels_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    """... and its SHA-256, so a fit can be traced to the exact labels."""
    split: Version
    posts: int = Field(ge=1)
    relevant: int = Field(ge=0)

    @field_validator("knots")
    @classmethod
    def _monotone(cls, knots: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if knots[0][0] != 0.0 or knots[-1][0] != 1.0:
            first, last = knots[0][0], knots[-1][0]
            raise ValueError(f"the first knot's raw score must be 0 and the last's 1, got {first} and {last}")
        for i in range(1, len(knots)):
            (x0, y0), (x1, y1) = knots[i - 1], knots[i]
            if x1 <= x0:
                raise ValueError(f"knot {i}: raw scores must strictly increase ({x0} then {x1})")
            if y1 < y0:
                raise ValueError(f"knot {i}: probabilities must not decrease ({y0} then {y1})")
        return knots

    @model_validator(mode="after")
    def _counts(self) -> CalibrationBlock:
        if self.relevant > self.posts:
            raise ValueError(f"relevant ({self.relevant}) cannot exceed posts ({self.posts})")
        return self


class RelevanceFile(BaseModel):
    """The relevance policy."""

    model_config = _STRICT

    kind: Literal["relevance"]
    version: Version
    weights: RelevanceWeights
    suppress: list[SuppressRule] = Field(default_factory=list)
    conduct: ConductRule | None = None
    calibration: CalibrationBlock | None = None
    """Without one, the score is the raw noisy-or."""


FILE_SCHEMAS: dict[str, type[BaseModel]] = {
    "corruption": TermFile,
    "official": TermFile,
    "offline": TermFile,
    "region": RegionFile,
    "stopwords": StopwordFile,
    "relevance": RelevanceFile,
}
