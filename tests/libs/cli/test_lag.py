"""`qingfeng status` shows each consumer group's lag read from Kafka, also when no process of the suite runs."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from qingfeng.cli import lag
from qingfeng.cli.main import main

from tests.libs.test_metrics import Lagging, kafka_settings, lagging  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration


async def test_group_lags_are_end_minus_committed(lagging: Lagging, kafka_bootstrap: str) -> None:  # noqa: F811
    topic, group = await lagging(25, 7)
    [found] = await lag.group_lags(kafka_bootstrap, [group], topic_prefix=topic)
    assert found.partitions == {(topic, 0): (7, 25)}
    assert found.total == 18


async def test_status_prints_the_lag_while_the_suite_is_down(
    lagging: Lagging,  # noqa: F811
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic, group = await lagging(12, 5)
    monkeypatch.setenv("QF_STATE_DIR", str(tmp_path))  # no process of the suite runs there
    # `main` runs its own event loop (asyncio.run): call it from a thread, away from this test's loop.
    code = await asyncio.to_thread(
        main, ["status", "--kafka", kafka_bootstrap, "--group", group, "--group", "never-used", "--topic-prefix", topic]
    )
    out = capsys.readouterr().out
    assert code == 1  # the processes are down; the lag is still known
    assert "collector    down" in out
    lines = [line.split() for line in out.splitlines()]
    assert [group, topic, "lag", "7", "(p0", "7)"] in lines
    assert ["never-used", "-", "(no", "committed", "offsets)"] in lines


def test_an_unreachable_kafka_is_said_not_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    assert lag.print_lags("127.0.0.1:1", ["grader"], sys.stdout) == 1
    assert "unknown: Kafka did not answer" in capsys.readouterr().out
