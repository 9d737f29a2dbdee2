"""The grading policy: a typed, validated model built from plain data (a parsed YAML or JSON document).

`parse_policy(data)` checks every field and raises `PolicyInvalid` with *all* the problems found, each
naming its field by path (``levels[1].criteria[0].threshold``); the YAML adapter adds line numbers.
Nothing partial is ever returned, so an invalid policy can never replace the active one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import LEVEL_RANK, LEVELS

__all__ = [
    "METRICS",
    "OPS",
    "SCHEMES",
    "Criterion",
    "Level",
    "Policy",
    "PolicyInvalid",
    "PolicyIssue",
    "Rising",
    "parse_duration",
    "parse_policy",
]

METRICS: frozenset[str] = frozenset(
    {
        "posts", "reposts", "comments", "likes", "distinct_authors", "velocity", "acceleration",
        "top_author_reach", "sources", "platforms", "media_involved", "regional_scope",
        "offline_posts", "offline_risk", "relevance",
    }
)  # fmt: skip
OPS: frozenset[str] = frozenset({">=", ">", "<=", "<", "==", "!="})
SCHEMES: frozenset[str] = frozenset({"four_color", "three_tier"})
# The three-tier scheme grades into blue/yellow/orange only (qingfeng.v1.LevelScheme).
_SCHEME_MAX_RANK = {"four_color": LEVEL_RANK["red"], "three_tier": LEVEL_RANK["orange"]}
_SCOPES = {"local": 1, "provincial": 2, "national": 3}
_KIND = "grading-policy"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_WINDOW_SECONDS = 7 * 86400.0
# No duration of a policy means more than a century; past it one is a typo, and adding it to an event time overflows
# datetime (``cooldown: 99999999999d`` was accepted and crashed the engine at the first cool-down).
MAX_DURATION_SECONDS = 36_500 * 86400.0


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy: the field path and what is wrong with it."""

    path: str
    message: str


class PolicyInvalid(ValueError):
    """The policy was rejected; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("; ".join(f"{i.path}: {i.message}" if i.path else i.message for i in self.issues))


@dataclass(frozen=True, slots=True)
class Criterion:
    """`metric` over `window` compared by `op` with `threshold`, e.g. posts[1h] >= 100."""

    metric: str
    window: str
    op: str
    threshold: float


@dataclass(frozen=True, slots=True)
class Level:
    """One rung of the scheme: when it applies, and who must acknowledge it by when.

    The level applies when every `require` criterion holds and the `criteria` hold per `match`
    ("all", "any" or "at_least" with `at_least`). With no criteria at all it always applies.
    """

    name: str
    label: str
    warning_level: str
    match: str
    at_least: int
    require: tuple[Criterion, ...]
    criteria: tuple[Criterion, ...]
    report_to: str = ""
    ack_within_seconds: float | None = None
    ack_next_working_day: bool = False
    first_response_within_seconds: float | None = None

    @property
    def rank(self) -> int:
        """Canonical severity rank (see model.LEVEL_RANK)."""
        return LEVEL_RANK[self.warning_level]


@dataclass(frozen=True, slots=True)
class Rising:
    """Flag an event as rising when its growth over `window`, extrapolated `horizon_seconds` ahead,
    would reach a higher level."""

    window: str
    horizon_seconds: float
    # Below this many posts in the window there is no trend to extrapolate.
    min_posts: int = 5


@dataclass(frozen=True, slots=True)
class Policy:
    """A versioned grading policy. Levels are ordered by increasing severity."""

    name: str
    version: str
    scheme: str
    windows: tuple[tuple[str, float], ...]
    lateness_seconds: float
    top_authors: int
    cooldown_seconds: float
    golden_period_seconds: float
    refute_within_seconds: float
    rising: Rising
    levels: tuple[Level, ...]
    description: str = ""

    def label_for(self, level: str) -> str:
        """Display label of a canonical level: the policy level at or just below it ("" for none)."""
        rank = LEVEL_RANK[level]
        label = ""
        for lv in self.levels:
            if lv.rank <= rank:
                label = lv.label
        return label

    def level_named(self, name: str) -> Level | None:
        """The policy level with this name or canonical level."""
        return next((lv for lv in self.levels if name in (lv.name, lv.warning_level)), None)


def parse_duration(value: object) -> float | None:
    """'90s', '10m', '1h30m', '2d' or a number of seconds -> seconds; None when malformed, negative, not finite or
    longer than ``MAX_DURATION_SECONDS``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, int) and not 0 <= value <= MAX_DURATION_SECONDS:  # float() of 400 digits overflows
            return None
        return _bounded(float(value))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return _bounded(total) if pos == len(text) else None


def _finite(number: float) -> bool:
    try:
        return math.isfinite(float(number))
    except OverflowError:
        return False


def _bounded(seconds: float) -> float | None:
    return seconds if 0.0 <= seconds <= MAX_DURATION_SECONDS else None  # NaN fails both comparisons


class _Reader:
    """Collects issues while reading plain data, so one run reports every problem."""

    def __init__(self) -> None:
        self.issues: list[PolicyIssue] = []

    def fail(self, path: str, message: str) -> None:
        self.issues.append(PolicyIssue(path, message))

    def mapping(self, value: object, path: str, known: set[str], required: set[str]) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.fail(path, "must be a mapping")
            return None
        for key in value:
            if key not in known:
                self.fail(_join(path, str(key)), f"unknown field (expected one of: {', '.join(sorted(known))})")
        for key in sorted(required - set(value)):
            self.fail(_join(path, key), "is required")
        return value

    def string(self, data: Mapping[str, Any], key: str, path: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if isinstance(value, int) and not isinstance(value, bool) and key == "version":
            return str(value)  # `version: 3` is a natural way to write it
        if not isinstance(value, str) or not value.strip():
            if key in data:  # a missing required key is reported by mapping()
                self.fail(_join(path, key), "must be a non-empty string")
            return default or ""
        return value.strip()

    def duration(self, data: Mapping[str, Any], key: str, path: str, default: float | None = None) -> float:
        if key not in data:
            if default is None:
                return 0.0
            return default
        seconds = parse_duration(data[key])
        if seconds is None:
            self.fail(_join(path, key), "must be a duration such as 30s, 10m, 2h or 1d, of at most 36500d")
            return 0.0
        return seconds

    def integer(self, data: Mapping[str, Any], key: str, path: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(_join(path, key), f"must be an integer >= {minimum}")
            return default
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_TOP_FIELDS = {
    "kind", "name", "version", "scheme", "description", "windows", "lateness", "top_authors",
    "cooldown", "golden_period", "refute_within", "rising", "levels",
}  # fmt: skip
_LEVEL_FIELDS = {
    "name", "label", "warning_level", "match", "require", "criteria", "report_to", "ack_within",
    "first_response_within",
}  # fmt: skip
_CRITERION_FIELDS = {"metric", "window", "op", "threshold"}


def parse_policy(data: object) -> Policy:
    """Build a Policy from plain data, or raise PolicyInvalid listing every problem."""
    r = _Reader()
    top = r.mapping(data, "", _TOP_FIELDS, {"kind", "name", "version", "scheme", "windows", "levels"})
    if top is None:
        raise PolicyInvalid(r.issues)
    if "kind" in top and top["kind"] != _KIND:
        r.fail("kind", f"must be {_KIND!r}")
    name = r.string(top, "name", "")
    version = r.string(top, "version", "")
    scheme = r.string(top, "scheme", "")
    if scheme and scheme not in SCHEMES:
        r.fail("scheme", f"must be one of {', '.join(sorted(SCHEMES))}")
    windows = _windows(r, top.get("windows"))
    declared = {w for w, _ in windows} | {"total"}
    rising_data = r.mapping(top.get("rising", {}), "rising", {"window", "horizon", "min_posts"}, set()) or {}
    rising_window = str(rising_data.get("window", windows[0][0] if windows else "total"))
    if rising_window not in declared or rising_window == "total":
        r.fail("rising.window", "must name one of the declared windows")
    golden = r.duration(top, "golden_period", "", 7200.0)
    rising = Rising(
        rising_window,
        r.duration(rising_data, "horizon", "rising", golden),
        r.integer(rising_data, "min_posts", "rising", 5, 1),
    )
    levels = _levels(r, top.get("levels"), declared, scheme)
    policy = Policy(
        name=name,
        version=version,
        scheme=scheme,
        windows=windows,
        lateness_seconds=r.duration(top, "lateness", "", 600.0),
        top_authors=r.integer(top, "top_authors", "", 5, 1),
        cooldown_seconds=r.duration(top, "cooldown", "", 1800.0),
        golden_period_seconds=golden,
        refute_within_seconds=r.duration(top, "refute_within", "", 86400.0),
        rising=rising,
        levels=levels,
        description=str(top.get("description", "")),
    )
    if r.issues:
        raise PolicyInvalid(r.issues)
    return policy


def _windows(r: _Reader, value: object) -> tuple[tuple[str, float], ...]:
    if not isinstance(value, list) or not value:
        r.fail("windows", "must be a non-empty list of durations such as [10m, 1h, 24h]")
        return ()
    out: list[tuple[str, float]] = []
    for i, item in enumerate(value):
        seconds = parse_duration(item) if isinstance(item, str) else None
        if seconds is None or seconds <= 0 or seconds > MAX_WINDOW_SECONDS:
            r.fail(f"windows[{i}]", "must be a duration string between 1s and 7d, e.g. 10m")
        elif any(name == item for name, _ in out):
            r.fail(f"windows[{i}]", "is declared twice")
        else:
            out.append((str(item), seconds))
    return tuple(sorted(out, key=lambda w: w[1]))


def _levels(r: _Reader, value: object, windows: set[str], scheme: str) -> tuple[Level, ...]:
    if not isinstance(value, list) or not value:
        r.fail("levels", "must be a non-empty list, least severe first")
        return ()
    out: list[Level] = []
    for i, item in enumerate(value):
        path = f"levels[{i}]"
        data = r.mapping(item, path, _LEVEL_FIELDS, {"name", "warning_level"})
        if data is None:
            continue
        warning = r.string(data, "warning_level", path)
        if warning not in LEVEL_RANK or warning == "none":
            if warning:
                r.fail(f"{path}.warning_level", f"must be one of {', '.join(LEVELS[1:])}")
            continue
        if scheme in _SCHEME_MAX_RANK and LEVEL_RANK[warning] > _SCHEME_MAX_RANK[scheme]:
            r.fail(f"{path}.warning_level", f"is above what the {scheme} scheme allows")
        if out and LEVEL_RANK[warning] <= out[-1].rank:
            r.fail(f"{path}.warning_level", "must be more severe than the previous level")
        level_name = r.string(data, "name", path)
        if any(lv.name == level_name for lv in out):
            r.fail(f"{path}.name", "is used by another level")
        require = _criteria(r, data.get("require", []), f"{path}.require", windows)
        criteria = _criteria(r, data.get("criteria", []), f"{path}.criteria", windows)
        match, at_least = _match(r, data.get("match", "all"), f"{path}.match", len(criteria))
        ack = data.get("ack_within")
        ack_seconds = None if ack in (None, "next_working_day") else r.duration(data, "ack_within", path)
        first = r.duration(data, "first_response_within", path) if "first_response_within" in data else None
        out.append(
            Level(
                name=level_name,
                label=r.string(data, "label", path, level_name),
                warning_level=warning,
                match=match,
                at_least=at_least,
                require=require,
                criteria=criteria,
                report_to=r.string(data, "report_to", path, ""),
                ack_within_seconds=ack_seconds,
                ack_next_working_day=ack == "next_working_day",
                first_response_within_seconds=first,
            )
        )
    return tuple(out)


def _match(r: _Reader, value: object, path: str, n: int) -> tuple[str, int]:
    if value in ("all", "any"):
        return str(value), 0
    if isinstance(value, Mapping) and set(value) == {"at_least"}:
        k = value["at_least"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max(n, 1):
            r.fail(f"{path}.at_least", f"must be an integer between 1 and the number of criteria ({n})")
            return "all", 0
        return "at_least", k
    r.fail(path, "must be all, any or {at_least: N}")
    return "all", 0


def _criteria(r: _Reader, value: object, path: str, windows: set[str]) -> tuple[Criterion, ...]:
    if not isinstance(value, list):
        r.fail(path, "must be a list of criteria")
        return ()
    out: list[Criterion] = []
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        data = r.mapping(item, p, _CRITERION_FIELDS, _CRITERION_FIELDS)
        if data is None or any(k not in data for k in _CRITERION_FIELDS):
            continue
        metric, window, op, threshold = data["metric"], data["window"], data["op"], data["threshold"]
        ok = True
        if metric not in METRICS:
            r.fail(f"{p}.metric", f"unknown metric {metric!r} (known: {', '.join(sorted(METRICS))})")
            ok = False
        if str(window) not in windows:
            r.fail(f"{p}.window", f"must be one of the declared windows or total, not {window!r}")
            ok = False
        if op not in OPS:
            r.fail(f"{p}.op", f"must be one of {' '.join(sorted(OPS))}")
            ok = False
        if metric == "regional_scope" and threshold in _SCOPES:
            threshold = _SCOPES[threshold]
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            r.fail(f"{p}.threshold", "must be a number")
            ok = False
        elif not _finite(threshold):  # NaN would never compare true; a 400-digit integer overflowed float()
            r.fail(f"{p}.threshold", "must be a finite number within float range")
            ok = False
        if ok:
            out.append(Criterion(str(metric), str(window), str(op), float(threshold)))
    return tuple(out)
