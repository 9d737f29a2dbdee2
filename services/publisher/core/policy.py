"""The publisher's policies as the core sees them: templates, the sign-off chains, channels and checks.

They are built and validated from YAML by ``adapters/policy_yaml.py``; here they are plain frozen values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services.publisher.core.model import Kind

__all__ = ["ChainStep", "ChannelRule", "Checks", "Clocks", "Policies", "SignOffPolicy", "Template"]


@dataclass(frozen=True)
class Template:
    id: str
    kind: Kind
    display_name: str
    # With {placeholders} filled from the case's facts.
    title: str
    body: str


@dataclass(frozen=True)
class ChainStep:
    role: str
    # The rung of the role: opinion_office, deputy_standing_member, secretary, municipal_committee.
    official_level: str


@dataclass(frozen=True)
class Clocks:
    """Deadlines for a first release when the request carries none (DESIGN §3)."""

    golden_period: timedelta = timedelta(hours=2)
    refutation: timedelta = timedelta(hours=24)
    # Levels whose first release races the golden period.
    golden_levels: frozenset[str] = frozenset({"orange", "red"})


@dataclass(frozen=True)
class SignOffPolicy:
    version: str
    # level → ordered steps; every level of the scheme has a chain.
    chains: Mapping[str, tuple[ChainStep, ...]]
    clocks: Clocks = Clocks()


@dataclass(frozen=True)
class ChannelRule:
    id: str
    # Adapter kind: mastodon, weibo, webhook, feed.
    kind: str
    display_name: str
    account: str = ""
    enabled: bool = True
    # Longest "title + blank line + body" the channel takes, in characters.
    max_length: int = 2000
    # Forbidden on this channel in addition to the global list.
    forbidden_words: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checks:
    """What every release is checked for before publishing."""

    forbidden_words: tuple[str, ...] = ()
    # Official numbers that are published on purpose (hotlines): never masked.
    public_numbers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Policies:
    templates: Mapping[str, Template]
    signoff: SignOffPolicy
    channels: Mapping[str, ChannelRule]
    checks: Checks
    # Facts every template may use unless the case gives its own (e.g. 发布单位).
    template_defaults: Mapping[str, str] = field(default_factory=dict)

    def template_for(self, kind: Kind) -> Template | None:
        """The first template of this kind (file order), for drafts that name none."""
        return next((t for t in self.templates.values() if t.kind is kind), None)
