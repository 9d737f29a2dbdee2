"""Loading, validating and merging the lexicon files into one immutable :class:`Lexicons`.

The built-in files live in ``lexicons/`` (package data). Deployments extend them with extra files given by
path: an extra term file adds terms to existing categories or adds new categories, an extra region file adds
divisions or aliases, an extra stopword file adds stopwords, an extra relevance file replaces the policy.
Every file is validated when loaded; a :class:`LexiconError` names the file and the field at fault.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from qingfeng.safe_yaml import SafeYamlError, load_yaml
from qingfeng.text._schema import FILE_SCHEMAS, RegionFile, RelevanceFile, StopwordFile, TermFile
from qingfeng.text.conversion import prepare

__all__ = [
    "BUILTIN_FILES",
    "Category",
    "LexiconError",
    "Lexicons",
    "Region",
    "RegionLevel",
    "RelevancePolicy",
    "Suppression",
    "TermLexicon",
    "load_lexicons",
]

BUILTIN_FILES = (
    "corruption.yaml",
    "officials.yaml",
    "offline.yaml",
    "regions.yaml",
    "stopwords.yaml",
    "relevance.yaml",
)

RegionLevel = Literal["province", "prefecture", "county"]


class LexiconError(ValueError):
    """A lexicon file is unreadable or invalid. ``path`` and ``field`` say where."""

    def __init__(self, path: str, field: str, message: str) -> None:
        super().__init__(f"lexicon file {path}: field {field}: {message}")
        self.path = path
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Category:
    """One category of a term lexicon, e.g. corruption/bribery_taking (受贿)."""

    id: str
    label: str
    weight: float
    terms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TermLexicon:
    """All categories of one kind (corruption, official or offline)."""

    kind: str
    categories: Mapping[str, Category]
    exclude: tuple[str, ...] = ()
    """Phrases that shadow a shorter term they contain (matched, then dropped)."""

    def term_index(self) -> dict[str, str]:
        """term → category id."""
        return {term: cat.id for cat in self.categories.values() for term in cat.terms}


@dataclass(frozen=True, slots=True)
class Region:
    """An administrative division; level and parent follow from the GB/T 2260 code."""

    code: str
    name: str
    aliases: tuple[str, ...]

    @property
    def level(self) -> RegionLevel:
        if self.code.endswith("0000"):
            return "province"
        if self.code.endswith("00"):
            return "prefecture"
        return "county"

    @property
    def province_code(self) -> str:
        return self.code[:2] + "0000"

    @property
    def parent_code(self) -> str | None:
        """The enclosing division's code (prefecture of a county, province of a prefecture)."""
        level = self.level
        if level == "province":
            return None
        if level == "prefecture":
            return self.province_code
        return self.code[:4] + "00"


@dataclass(frozen=True, slots=True)
class Suppression:
    """A negative context: ``terms`` (normalised lexicon terms) mean something else within ``window`` characters
    of a ``context`` word (``window`` 0: anywhere in the text), or, with ``near`` false, away from all of them."""

    id: str
    terms: frozenset[str]
    context: tuple[str, ...]
    window: int
    near: bool = True


@dataclass(frozen=True, slots=True)
class RelevancePolicy:
    """Weights of the relevance criteria (see ``lexicons/relevance.yaml`` for their meaning)."""

    version: str
    corruption_scale: float
    official: float
    official_corruption: float
    offline: float
    offline_corruption: float
    region: float
    region_corruption: float
    suppress: tuple[Suppression, ...] = ()
    conduct_weight: float = 0.0
    conduct_holders: tuple[str, ...] = ()
    conduct_cues: tuple[str, ...] = ()
    """With an official's title or a holder named, a cue adds the criterion ``official_conduct``."""
    calibration: tuple[tuple[float, float], ...] = ()
    """(raw, probability) knots of the fitted monotone map; empty: the score is the raw noisy-or."""
    calibration_source: str = ""
    """Where the map came from: method, date, label file hash and counts."""


@dataclass(frozen=True, slots=True)
class Lexicons:
    """Everything the taggers and the relevance scorer need, merged from all files."""

    corruption: TermLexicon
    officials: TermLexicon
    offline: TermLexicon
    regions: Mapping[str, Region]
    region_exclude: tuple[str, ...]
    stopwords: frozenset[str]
    relevance: RelevancePolicy
    version: str
    """e.g. ``corruption@2025.11.0;official@…;+extra.yaml@3``: which vocabulary produced a tag."""


def _field_of(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _read(path: str, text: str) -> tuple[str, BaseModel]:
    try:
        # The refusing loader every policy file goes through: an extra lexicon is deployment input. yaml.safe_load
        # kept the last of two categories with one key (silently dropping the first one's terms), and took any size.
        data: Any = load_yaml(text, source=path)
    except SafeYamlError as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise LexiconError(path, "<yaml>", f"not valid YAML: {exc.problem}{where}") from exc
    if not isinstance(data, dict):
        raise LexiconError(path, "<root>", "must be a mapping with a 'kind' and a 'version'")
    kind = data.get("kind")
    schema = FILE_SCHEMAS.get(kind) if isinstance(kind, str) else None
    if schema is None or not isinstance(kind, str):
        raise LexiconError(path, "kind", f"must be one of {sorted(FILE_SCHEMAS)}, got {kind!r}")
    if kind == "region":
        # Unquoted codes are read by YAML as ints; accept them rather than fail on a formality.
        for entry in data.get("regions") or ():
            if isinstance(entry, dict) and isinstance(entry.get("code"), int):
                entry["code"] = str(entry["code"])
    try:
        return kind, schema.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        details = "; ".join(f"{_field_of(e['loc'])}: {e['msg']}" for e in errors[:5])
        raise LexiconError(path, _field_of(first["loc"]), details) from exc


class _Builder:
    """Accumulates files in order, checking each against what is already loaded."""

    def __init__(self) -> None:
        self.terms: dict[str, dict[str, dict[str, Any]]] = {"corruption": {}, "official": {}, "offline": {}}
        # kind → normalised term → (category id, file) to report clashes with the file that defined it
        self.owner: dict[str, dict[str, tuple[str, str]]] = {"corruption": {}, "official": {}, "offline": {}}
        self.exclude: dict[str, dict[str, tuple[str, str]]] = {
            "corruption": {},
            "official": {},
            "offline": {},
            "region": {},
        }  # kind → phrase → (file, field)
        self.regions: dict[str, dict[str, Any]] = {}
        self.region_terms: dict[str, tuple[str, str]] = {}
        self.region_origin: dict[str, tuple[str, str]] = {}
        self.stopwords: set[str] = set()
        self.relevance: RelevanceFile | None = None
        self.relevance_path = "<builtin>"
        self.versions: list[str] = []

    def add(self, path: str, text: str, builtin: bool) -> None:
        kind, model = _read(path, text)
        version = getattr(model, "version", "?")
        self.versions.append(f"{kind}@{version}" if builtin else f"+{Path(path).name}@{version}")
        if isinstance(model, TermFile | RegionFile):
            for i, phrase in enumerate(model.exclude):
                self.exclude[model.kind].setdefault(prepare(phrase), (path, f"exclude[{i}]"))
        if isinstance(model, TermFile):
            self._add_terms(path, model)
        elif isinstance(model, RegionFile):
            self._add_regions(path, model)
        elif isinstance(model, StopwordFile):
            self.stopwords.update(prepare(w) for w in model.words)
        elif isinstance(model, RelevanceFile):
            self.relevance, self.relevance_path = model, path

    def _add_terms(self, path: str, model: TermFile) -> None:
        cats, owner = self.terms[model.kind], self.owner[model.kind]
        for cat_id, cat in model.categories.items():
            field = f"categories.{cat_id}"
            known = cats.get(cat_id)
            if known is None:
                for name in ("label", "weight"):
                    if getattr(cat, name) is None:
                        raise LexiconError(path, f"{field}.{name}", f"required for the new category {cat_id!r}")
                known = cats[cat_id] = {"label": cat.label, "weight": cat.weight, "terms": []}
            else:
                known["label"] = cat.label or known["label"]
                known["weight"] = known["weight"] if cat.weight is None else cat.weight
            for i, raw in enumerate(cat.terms):
                # Terms are normalised like the text they are matched against, so a traditional or
                # full-width term in an extension file still matches.
                term = prepare(raw)
                prior = owner.get(term)
                if prior is not None and prior[0] != cat_id:
                    raise LexiconError(
                        path,
                        f"{field}.terms[{i}]",
                        f"term {raw!r} is already in category {prior[0]!r} (from {prior[1]})",
                    )
                if prior is None:
                    owner[term] = (cat_id, path)
                    known["terms"].append(term)

    def _add_regions(self, path: str, model: RegionFile) -> None:
        for i, entry in enumerate(model.regions):
            field = f"regions[{i}]"
            known = self.regions.get(entry.code)
            name = prepare(entry.name)
            if known is None:
                known = self.regions[entry.code] = {"name": name, "aliases": []}
                self.region_origin[entry.code] = (path, field)
            elif known["name"] != name:
                raise LexiconError(
                    path, f"{field}.name", f"code {entry.code} is already named {known['name']!r}, not {entry.name!r}"
                )
            for j, raw in enumerate([entry.name, *entry.aliases]):
                term = prepare(raw)
                prior = self.region_terms.get(term)
                if prior is not None and prior[0] != entry.code:
                    where = f"{field}.name" if j == 0 else f"{field}.aliases[{j - 1}]"
                    raise LexiconError(path, where, f"{raw!r} already names region {prior[0]} (from {prior[1]})")
                if prior is None:
                    self.region_terms[term] = (entry.code, path)
                    if j > 0:
                        known["aliases"].append(term)

    def build(self) -> Lexicons:
        for code, (path, field) in self.region_origin.items():
            province = code[:2] + "0000"
            if province not in self.regions:
                raise LexiconError(path, f"{field}.code", f"province {province} of region {code} is not defined")
        for kind, phrases in self.exclude.items():
            terms = self.region_terms if kind == "region" else self.owner[kind]
            for phrase, (path, field) in phrases.items():
                if phrase in terms:
                    raise LexiconError(path, field, f"{phrase!r} is itself a {kind} term; it cannot also be excluded")
        if self.relevance is None:  # pragma: no cover - the built-in files always include one
            raise LexiconError("<builtin>", "relevance", "no relevance policy loaded")
        weights = self.relevance.weights
        calibration, conduct = self.relevance.calibration, self.relevance.conduct
        source = ""
        if calibration is not None:
            source = (
                f"{calibration.method} fit {calibration.fitted_at} on {calibration.labels} "
                f"(sha256 {calibration.labels_sha256[:12]}, split {calibration.split}, "
                f"{calibration.relevant}/{calibration.posts} relevant)"
            )
        return Lexicons(
            corruption=self._lexicon("corruption"),
            officials=self._lexicon("official"),
            offline=self._lexicon("offline"),
            regions={code: Region(code, r["name"], tuple(r["aliases"])) for code, r in sorted(self.regions.items())},
            region_exclude=tuple(self.exclude["region"]),
            stopwords=frozenset(self.stopwords),
            relevance=RelevancePolicy(
                version=self.relevance.version,
                **weights.model_dump(),
                suppress=self._suppressions(),
                conduct_weight=conduct.weight if conduct else 0.0,
                conduct_holders=tuple(dict.fromkeys(prepare(w) for w in conduct.holders)) if conduct else (),
                conduct_cues=tuple(dict.fromkeys(prepare(w) for w in conduct.cues)) if conduct else (),
                calibration=tuple(calibration.knots) if calibration is not None else (),
                calibration_source=source,
            ),
            version=";".join(self.versions),
        )

    def _suppressions(self) -> tuple[Suppression, ...]:
        assert self.relevance is not None
        known = {term for kind in ("corruption", "official", "offline") for term in self.owner[kind]}
        rules = []
        for i, rule in enumerate(self.relevance.suppress):
            terms = [prepare(t) for t in rule.terms]
            for j, term in enumerate(terms):
                if term not in known:
                    # A rule on a word no lexicon tags would silently never apply.
                    raise LexiconError(
                        self.relevance_path, f"suppress[{i}].terms[{j}]", f"{term!r} is not a term of any lexicon"
                    )
            context = tuple(dict.fromkeys(prepare(c) for c in rule.context))
            rules.append(Suppression(rule.id, frozenset(terms), context, rule.window, rule.when == "near"))
        return tuple(rules)

    def _lexicon(self, kind: str) -> TermLexicon:
        cats = {
            cat_id: Category(cat_id, c["label"], float(c["weight"]), tuple(c["terms"]))
            for cat_id, c in self.terms[kind].items()
        }
        return TermLexicon(kind, cats, tuple(self.exclude[kind]))


def load_lexicons(extra_paths: Sequence[str | Path] = ()) -> Lexicons:
    """Load the built-in lexicons, then each extra file in order. Raises :class:`LexiconError` on any problem."""
    builder = _Builder()
    root = importlib.resources.files("qingfeng.text") / "lexicons"
    for name in BUILTIN_FILES:
        resource = root / name
        builder.add(str(resource), resource.read_text(encoding="utf-8"), builtin=True)
    for extra in extra_paths:
        path = str(extra)
        try:
            text = Path(extra).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise LexiconError(path, "<file>", f"cannot read: {exc}") from exc
        builder.add(path, text, builtin=False)
    return builder.build()
