"""QF_GRADER_HORIZON_S: how long idle events and their posts' ids stay in the grader's memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
from services.grader.app import engine_config
from services.grader.core import Grader
from services.grader.core.model import PostView
from services.grader.settings import GraderSettings

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def _post(post_id: str, at: datetime) -> PostView:
    return PostView(
        id=post_id, created_at=at, text="某局长涉嫌受贿被带走调查，网友热议此事后续进展如何", author_id=post_id
    )


def test_the_default_horizon_is_seven_days_and_the_setting_reaches_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert engine_config(GraderSettings()).clustering.horizon_seconds == 7 * 86400
    monkeypatch.setenv("QF_GRADER_HORIZON_S", "600")
    assert engine_config(GraderSettings()).clustering.horizon_seconds == 600
    monkeypatch.setenv("QF_GRADER_LOST_PARENTS", "true")
    assert engine_config(GraderSettings()).clustering.horizon_seconds == 600, "kept with the lost-parents preset"


def test_a_horizon_below_a_minute_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QF_GRADER_HORIZON_S", "5")
    with pytest.raises(ValidationError, match="horizon_s"):
        GraderSettings()


def test_a_short_horizon_forgets_idle_events(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QF_GRADER_HORIZON_S", "600")
    engine = Grader(load_policy_file(DEFAULT_POLICY), engine_config(GraderSettings()))
    engine.process(_post("p1", T0))
    assert "p1" in engine.clusterer.posts
    engine.process(_post("p2", T0 + timedelta(hours=1)))
    assert "p1" not in engine.clusterer.posts, "an event idle for an hour is gone under a 10-minute horizon"
