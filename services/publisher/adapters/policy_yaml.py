"""Load and validate the publisher's policy files (templates, sign-off chains, channels) with pydantic.

Every problem names the file, the line and the field (``signoff.yaml:7: chains.red[1].role: Field required``);
loading returns complete core values or raises ``PolicyLoadError`` listing every problem, never anything partial.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from qingfeng.safe_yaml import SafeYamlError, compose_yaml, load_yaml

from services.publisher.core.model import LEVELS, Kind
from services.publisher.core.policy import (
    ChainStep,
    ChannelRule,
    Checks,
    Clocks,
    Policies,
    SignOffPolicy,
    Template,
)

__all__ = [
    "CHANNELS_FILE",
    "POLICY_DIR",
    "SIGNOFF_FILE",
    "TEMPLATES_FILE",
    "PolicyError",
    "PolicyLoadError",
    "load_channels",
    "load_policies",
    "load_signoff",
    "load_templates",
]

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"
TEMPLATES_FILE = POLICY_DIR / "templates.yaml"
SIGNOFF_FILE = POLICY_DIR / "signoff.yaml"
CHANNELS_FILE = POLICY_DIR / "channels.yaml"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MAX_DURATION_S = 36_500 * 86400.0
_ID = r"^[a-z0-9][a-z0-9._-]{0,99}$"

NonEmpty = Annotated[str, Field(min_length=1)]
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class PolicyError:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class PolicyLoadError(ValueError):
    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = tuple(errors)
        super().__init__("invalid publisher policy\n" + "\n".join(str(e) for e in self.errors))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Template(_Model):
    id: Annotated[str, Field(pattern=_ID)]
    kind: Kind
    display_name: NonEmpty
    title: NonEmpty
    body: NonEmpty


class _Templates(_Model):
    kind: Literal["publisher-templates"]
    version: NonEmpty
    defaults: dict[NonEmpty, NonEmpty] = {}
    templates: Annotated[list[_Template], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_and_complete(self) -> _Templates:
        ids = [t.id for t in self.templates]
        if len(ids) != len(set(ids)):
            raise ValueError(f"template ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        missing = [k.value for k in Kind if k not in {t.kind for t in self.templates}]
        if missing:
            raise ValueError(f"every kind needs a template; none for {', '.join(missing)}")
        return self


class _Step(_Model):
    role: NonEmpty
    official_level: Literal["opinion_office", "deputy_standing_member", "secretary", "municipal_committee"]


def _duration(value: Any) -> timedelta:
    match = _DURATION.match(str(value))
    # A century at most: "99999999999d" overflowed timedelta (OverflowError, which pydantic does not report).
    seconds = float(match.group(1)) * _UNIT[match.group(2)] if match else math.inf
    if not seconds <= _MAX_DURATION_S:
        raise ValueError(f"a duration like 30m, 2h or 1d (at most 36500d), not {value!r}")
    return timedelta(seconds=seconds)


class _Clocks(_Model):
    golden_period: str = "2h"
    refutation: str = "24h"
    golden_levels: list[Literal["blue", "yellow", "orange", "red"]] = ["orange", "red"]

    @field_validator("golden_period", "refutation")
    @classmethod
    def _is_duration(cls, value: str) -> str:
        _duration(value)
        return value


class _SignOff(_Model):
    kind: Literal["publisher-signoff"]
    version: NonEmpty
    chains: dict[Literal["blue", "yellow", "orange", "red"], Annotated[list[_Step], Field(min_length=1)]]
    clocks: _Clocks = _Clocks()

    @model_validator(mode="after")
    def _every_level(self) -> _SignOff:
        missing = [level for level in LEVELS if level not in self.chains]
        if missing:
            raise ValueError(f"every level needs a chain; none for {', '.join(missing)}")
        for level, steps in self.chains.items():
            roles = [s.role for s in steps]
            if len(roles) != len(set(roles)):
                raise ValueError(f"chains.{level}: a role appears twice (one person cannot sign twice)")
        return self


class _Checks(_Model):
    forbidden_words: list[NonEmpty] = []
    public_numbers: list[Annotated[str, Field(pattern=r"^\+?\d{3,20}$")]] = []


class _Channel(_Model):
    id: Annotated[str, Field(pattern=_ID)]
    kind: Literal["mastodon", "weibo", "webhook", "feed"]
    display_name: NonEmpty
    account: str = ""
    enabled: bool = True
    max_length: Annotated[int, Field(ge=20, le=1_000_000)] = 2000
    forbidden_words: list[NonEmpty] = []
    options: dict[str, Any] = {}


class _Channels(_Model):
    kind: Literal["publisher-channels"]
    version: NonEmpty
    checks: _Checks = _Checks()
    channels: Annotated[list[_Channel], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> _Channels:
        ids = [c.id for c in self.channels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"channel ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        return self


def _marks(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = f"{path}.{key.value}" if path else str(key.value)
            out[child] = key.start_mark.line + 1
            _marks(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, f"{path}[{i}]", out)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line(path: str, marks: Mapping[str, int]) -> int:
    while path:
        if path in marks:
            return marks[path]
        shorter = re.sub(r"(\.[^.]+|\[\d+\]|^[^.\[\]]+)$", "", path)
        if shorter == path:  # not a path we can shorten: fall back to the document
            break
        path = shorter
    return marks.get("", 0)


_MAX_POLICY_BYTES = 256 * 1024


def _parse(text: str, source: str, model: type[_M]) -> _M:
    try:
        # Refuses anchors/aliases (no alias bombs), oversized and deeply nested documents: policy files are input.
        node = compose_yaml(text, source=source, max_bytes=_MAX_POLICY_BYTES)
        data = load_yaml(text, source=source, max_bytes=_MAX_POLICY_BYTES)
    except SafeYamlError as exc:
        raise PolicyLoadError([PolicyError(source, exc.line, "", f"not valid YAML: {exc.problem}")]) from None
    if node is None or not isinstance(data, dict):
        raise PolicyLoadError([PolicyError(source, 1, "", "the document must be a mapping")])
    marks: dict[str, int] = {}
    _marks(node, "", marks)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors():
            # Tagged/literal unions add the literal to the location; keep the field path.
            path = _path(tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))))
            errors.append(PolicyError(source, _line(path, marks), path, err["msg"]))
        raise PolicyLoadError(errors) from None


def load_templates(text: str, source: str = "templates.yaml") -> tuple[dict[str, Template], dict[str, str]]:
    """The templates by id, and the default facts."""
    parsed = _parse(text, source, _Templates)
    templates = {
        t.id: Template(id=t.id, kind=t.kind, display_name=t.display_name, title=t.title, body=t.body)
        for t in parsed.templates
    }
    return templates, dict(parsed.defaults)


def load_signoff(text: str, source: str = "signoff.yaml") -> SignOffPolicy:
    parsed = _parse(text, source, _SignOff)
    chains: dict[str, tuple[ChainStep, ...]] = {
        str(level): tuple(ChainStep(role=s.role, official_level=s.official_level) for s in steps)
        for level, steps in parsed.chains.items()
    }
    clocks = Clocks(
        golden_period=_duration(parsed.clocks.golden_period),
        refutation=_duration(parsed.clocks.refutation),
        golden_levels=frozenset(parsed.clocks.golden_levels),
    )
    return SignOffPolicy(version=parsed.version, chains=chains, clocks=clocks)


def load_channels(text: str, source: str = "channels.yaml") -> tuple[dict[str, ChannelRule], Checks]:
    parsed = _parse(text, source, _Channels)
    channels = {
        c.id: ChannelRule(
            id=c.id,
            kind=c.kind,
            display_name=c.display_name,
            account=c.account,
            enabled=c.enabled,
            max_length=c.max_length,
            forbidden_words=tuple(c.forbidden_words),
            options=dict(c.options),
        )
        for c in parsed.channels
    }
    checks = Checks(
        forbidden_words=tuple(parsed.checks.forbidden_words), public_numbers=frozenset(parsed.checks.public_numbers)
    )
    return channels, checks


def load_policies(
    templates: Path = TEMPLATES_FILE, signoff: Path = SIGNOFF_FILE, channels: Path = CHANNELS_FILE
) -> Policies:
    """All three files; every problem of every file in one PolicyLoadError."""
    errors: list[PolicyError] = []
    loaded: dict[str, Any] = {}
    for name, path, loader in (
        ("templates", templates, load_templates),
        ("signoff", signoff, load_signoff),
        ("channels", channels, load_channels),
    ):
        try:
            loaded[name] = loader(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            errors.append(PolicyError(str(path), 0, "", f"cannot read: {exc}"))
        except PolicyLoadError as exc:
            errors.extend(exc.errors)
    if errors:
        raise PolicyLoadError(errors)
    channel_rules, checks = loaded["channels"]
    template_map, defaults = loaded["templates"]
    return Policies(
        templates=template_map,
        signoff=loaded["signoff"],
        channels=channel_rules,
        checks=checks,
        template_defaults=defaults,
    )
