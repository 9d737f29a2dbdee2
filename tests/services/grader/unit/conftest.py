"""Fixtures of the grader's unit tests: the bundled policies and a synthetic post stream with its own clock."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, THREE_TIER_POLICY, load_policy_file
from services.grader.core import Alert, EventSnapshot, Grader, GraderConfig, Output, Policy, PostView

T0 = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def four_level() -> Policy:
    return load_policy_file(DEFAULT_POLICY)


@pytest.fixture(scope="session")
def three_level() -> Policy:
    return load_policy_file(THREE_TIER_POLICY)


@dataclass
class Feed:
    """Builds posts at controlled event times and runs them through a grader, keeping every output."""

    grader: Grader
    now: datetime = T0
    outputs: list[Output] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def post(self, after: timedelta = timedelta(0), **fields: Any) -> PostView:
        """Advance the clock by `after`, then build and process one post (defaults: a fresh author)."""
        self.now += after
        n = next(self._ids)
        values: dict[str, Any] = {"id": f"p{n}", "created_at": self.now, "author_id": f"u{n}", "author_followers": 100}
        values.update(fields)
        post = PostView(**values)
        self.outputs.extend(self.grader.process(post))
        return post

    def burst(self, count: int, every: timedelta, **fields: Any) -> list[PostView]:
        """`count` posts, one every `every`; callables in fields get the post's index."""
        made = []
        for i in range(count):
            values = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
            made.append(self.post(every, **values))
        return made

    def tick(self, after: timedelta) -> list[Output]:
        self.now += after
        out = self.grader.tick(self.now)
        self.outputs.extend(out)
        return out

    def alerts(self, event_id: str | None = None) -> list[Alert]:
        return [o for o in self.outputs if isinstance(o, Alert) and event_id in (None, o.event_id)]

    def last(self, event_id: str) -> EventSnapshot:
        return [o for o in self.outputs if isinstance(o, EventSnapshot) and o.event_id == event_id][-1]


@pytest.fixture
def feed(four_level: Policy) -> Callable[..., Feed]:
    """feed(policy=None, config=None) -> a Feed on a fresh grader (four-level policy by default)."""

    def make(policy: Policy | None = None, config: GraderConfig | None = None) -> Feed:
        return Feed(Grader(policy or four_level, config))

    return make
