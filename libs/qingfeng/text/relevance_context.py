"""Relevance in cascade context (涉腐相关度 of a repost): a post's own score, or what it inherits from its parent.

A repost is scored on its own words first (:class:`~qingfeng.text.relevance.RelevanceScorer`). In context:

- a post with **evidence of its own** keeps its own score and reasons, whatever its parent says; evidence includes
  negative evidence (a ``suppressed:<rule>`` reason: 豆腐, a jockey's 落马), so a hard negative stays at 0;
- a **bare repost** (no words of its own: "转发微博", "", an emoticon, a mention, a quoted ``//@`` chain only)
  forwards its parent's content and nothing else: it carries its parent's in-context score whole;
- a **reaction** (words of its own, none of them evidence: "呵呵", "人类已无法理解", "终于干掉了") inherits through
  the fitted map of ``lexicons/relevance_context.yaml``: the share of such reactions found relevant, by their
  parent's in-context score, on the calibrate half of the hand-labelled posts (``bench/relevance_calibrate.py
  --context``). The labels judge a reaction on its own words, and most reactions under a relevant post are not
  relevant themselves, so the map is low: a threshold on the in-context score still means what it says;
- a post whose parent is unknown, or scores 0 in context, keeps its own score.

The parent's in-context score is the caller's to keep (the chain is followed through it: a bare repost of a bare
repost of a relevant post inherits that post's score). Every inherited score carries one ``context:*`` reason that
names the parent and, in its evidence, the parent's own strongest reason. Pure functions: no I/O but the loader.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from qingfeng.safe_yaml import SafeYamlError, load_yaml
from qingfeng.text.conversion import normalize_for_hash
from qingfeng.text.lexicon import LexiconError
from qingfeng.text.relevance import Reason, Relevance, calibrate

__all__ = [
    "BARE",
    "BUILTIN_CONTEXT",
    "NO_REACTION",
    "REACTION",
    "CascadeContext",
    "ContextPolicy",
    "builtin_context_policy",
    "is_bare",
    "load_context_policy",
    "own_words",
    "relevance_in_context",
]

BUILTIN_CONTEXT = Path(__file__).resolve().parent / "lexicons" / "relevance_context.yaml"
BARE = "context:bare_repost"
REACTION = "context:reaction"

# A quoted repost chain runs from the first "//@" to the end: the words of the posts above, not this one's.
_CHAIN = re.compile(r"//\s*@.*$", re.S)
# Default repost texts that normalize_for_hash keeps (it removes 转发微博 only).
_DEFAULTS = frozenset({"转发", "轉發", "repost", "rt"})


def own_words(text: str) -> str:
    """The words a post adds: without its quoted ``//@`` chain, URLs, mentions, 转发微博, emoticons, spaces and
    punctuation (lower-case, simplified)."""
    return normalize_for_hash(_CHAIN.sub("", text))


def is_bare(text: str) -> bool:
    """True when a post adds no words of its own (a plain forward)."""
    words = own_words(text)
    return not words or words in _DEFAULTS


@dataclass(frozen=True, slots=True)
class ContextPolicy:
    """How a reaction without evidence inherits: parent in-context score -> its score (monotone, linear between
    knots); ``source`` says where the map was fitted."""

    version: str
    reaction_knots: tuple[tuple[float, float], ...]
    source: str = ""


NO_REACTION = ContextPolicy("none", ((0.0, 0.0), (1.0, 0.0)), "reactions inherit nothing")


def _origin(parent: Relevance, parent_id: str) -> str:
    """Where the parent's score comes from, in a few words: its own strongest reason, or for a parent that
    inherited, the origin it names (so that a long chain's reason stays one line)."""
    for reason in parent.reasons:
        if reason.criterion.startswith("context:") and len(reason.evidence) > 1:
            return reason.evidence[1]
        if reason.weight > 0:
            return f"post {parent_id or '?'}: {reason.criterion} {'、'.join(reason.evidence[:3])}".strip()
    return f"post {parent_id or '?'}"


def relevance_in_context(
    own: Relevance,
    parent: Relevance | None,
    *,
    bare: bool,
    parent_id: str = "",
    policy: ContextPolicy | None = None,
) -> Relevance:
    """The in-context relevance of a post whose own relevance is ``own``; ``parent`` is its parent's in-context
    relevance (None when the post has no parent or it is not known), ``bare`` whether the post adds no words
    (:func:`is_bare` of its text); ``policy`` the reaction map (default: the built-in file's).

    An inherited score has one reason, ``context:bare_repost`` or ``context:reaction``, whose weight is the score
    and whose evidence is ("inherits from parent <id>: <its score> …", "post <origin id>: <origin's reason>")."""
    if own.reasons or parent is None or parent.score <= 0.0:
        return own  # own evidence (positive or negative) wins; nothing to inherit
    if policy is None:
        policy = builtin_context_policy()
    origin = _origin(parent, parent_id)
    version = f"{own.policy_version}+context:{policy.version}"
    head = f"inherits from parent {parent_id or '?'}: {parent.score:.4g}"
    if bare:
        why = f"{head}, as a repost without words of its own"
        return Relevance(parent.score, (Reason(BARE, parent.score, (why, origin)),), version, parent.raw)
    score = round(calibrate(policy.reaction_knots, parent.score), 4)
    if score <= 0.0:
        return own
    why = f"{head} -> {score:.4g}, the share of reactions without evidence found relevant under such a parent"
    return Relevance(score, (Reason(REACTION, score, (why, origin)),), version, parent.raw)


class CascadeContext:
    """In-context relevance of the posts of cascades, each computed once and kept (for an evaluation or a replay;
    a long-running caller bounds its own memory).

    ``own_of(post_id)`` gives a post's own relevance and whether it is bare; ``parent_of(post_id)`` its parent's id,
    or None when it has none or the parent may not be used (unknown, or posted after it: no future leakage).
    """

    __slots__ = ("_memo", "_own_of", "_parent_of", "policy")

    def __init__(
        self,
        own_of: Callable[[str], tuple[Relevance, bool]],
        parent_of: Callable[[str], str | None],
        policy: ContextPolicy | None = None,
    ) -> None:
        self._own_of = own_of
        self._parent_of = parent_of
        self.policy = builtin_context_policy() if policy is None else policy
        self._memo: dict[str, Relevance] = {}

    def score(self, post_id: str) -> Relevance:
        """The post's in-context relevance, following its chain up to the first post with evidence (or the top)."""
        known = self._memo.get(post_id)
        if known is not None:
            return known
        chain: list[tuple[str, Relevance, bool]] = []
        seen: set[str] = set()
        top: str | None = post_id
        # walk up while the posts have no evidence of their own (a loop of ids ends the walk like a missing parent)
        while top is not None and top not in self._memo and top not in seen:
            own, bare = self._own_of(top)
            chain.append((top, own, bare))
            seen.add(top)
            top = None if own.reasons else self._parent_of(top)
        parent = self._memo.get(top) if top is not None else None
        parent_id = top or ""
        for pid, own, bare in reversed(chain):
            parent = relevance_in_context(own, parent, bare=bare, parent_id=parent_id, policy=self.policy)
            self._memo[pid] = parent
            parent_id = pid
        assert parent is not None  # the chain holds post_id itself
        return parent


# -- the policy file ---------------------------------------------------------------------------------------------

_STRICT = ConfigDict(extra="forbid", frozen=True)
Unit = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Fit(BaseModel):
    model_config = _STRICT

    method: Literal["isotonic"]
    fitted_at: Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")]
    labels: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    labels_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    split: Literal["calibrate"]
    posts: int = Field(ge=1)
    relevant: int = Field(ge=0)


class _ContextFile(BaseModel):
    model_config = _STRICT

    kind: Literal["relevance_context"]
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    fit: _Fit
    reaction_knots: list[tuple[Unit, Unit]] = Field(min_length=2, max_length=100)

    @field_validator("reaction_knots")
    @classmethod
    def _monotone(cls, knots: list[tuple[float, float]]) -> list[tuple[float, float]]:
        xs, ys = [x for x, _ in knots], [y for _, y in knots]
        if xs[0] != 0.0 or xs[-1] != 1.0 or any(b <= a for a, b in itertools.pairwise(xs)):
            raise ValueError("knots run from 0 to 1 in strictly increasing parent scores")
        if any(b < a for a, b in itertools.pairwise(ys)):
            raise ValueError("inherited scores must not decrease as the parent's score rises")
        return knots


@lru_cache(maxsize=1)
def builtin_context_policy() -> ContextPolicy:
    """The built-in reaction map (``lexicons/relevance_context.yaml``), or :data:`NO_REACTION` without the file."""
    return load_context_policy(BUILTIN_CONTEXT) if BUILTIN_CONTEXT.is_file() else NO_REACTION


def load_context_policy(path: str | Path = BUILTIN_CONTEXT) -> ContextPolicy:
    """Read and validate a context file; a :class:`~qingfeng.text.lexicon.LexiconError` names the file and field."""
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
        doc = _ContextFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise LexiconError(name, field, first["msg"]) from exc
    fit = doc.fit
    source = (
        f"{fit.method} fit {fit.fitted_at} on {fit.labels} (sha256 {fit.labels_sha256[:12]}, split {fit.split}, "
        f"{fit.relevant}/{fit.posts} reactions relevant)"
    )
    return ContextPolicy(doc.version, tuple((float(x), float(y)) for x, y in doc.reaction_knots), source)
