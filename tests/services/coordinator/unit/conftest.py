"""Fixtures of the coordinator's unit tests: the bundled policies and alert builders on a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.coordinator.adapters.policy_yaml import (
    DEFAULT_DIRECTORY,
    DEFAULT_PLAYBOOKS,
    POLICY_DIR,
    load_directory,
    load_playbooks,
    load_routing,
)
from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import Level
from services.coordinator.core.policy import Directory, Playbooks, RoutingPolicy

# A Tuesday, 10:00 in Beijing.
T0 = datetime(2026, 6, 2, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def routing() -> RoutingPolicy:
    return load_routing(POLICY_DIR / "routing.yaml")


@pytest.fixture(scope="session")
def three_tier() -> RoutingPolicy:
    return load_routing(POLICY_DIR / "routing_three_tier.yaml")


@pytest.fixture(scope="session")
def playbooks() -> Playbooks:
    return load_playbooks(DEFAULT_PLAYBOOKS)


@pytest.fixture(scope="session")
def directory() -> Directory:
    return load_directory(DEFAULT_DIRECTORY)


def alert(
    level: Level,
    *,
    seq: int = 1,
    prev: Level = Level.NONE,
    event: str = "ev-1",
    at: datetime = T0,
    relevance: float | None = 0.9,
    rumour: bool = False,
) -> AlertView:
    reasons: list[tuple[str, float]] = []
    if relevance is not None:
        reasons.append(("relevance", relevance))
    if rumour:
        reasons.append(("rumour", 1.0))
    return AlertView(
        f"{event}:{seq}", event, seq, prev, level, "某局长违规收礼", at, (("330100", "杭州市"),), tuple(reasons)
    )
