"""`qingfeng audit verify` detects one tampered audit record and names it; `qingfeng policy validate` covers the
coordinator's policy files (run as the console script, as an operator would)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from qingfeng.cli.audit import verify_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.coordinator.adapters.policy_yaml import POLICY_DIR
from services.coordinator.core.cases import AlertView
from services.coordinator.core.model import Level
from services.coordinator.handling import Handling

from ..conftest import T0, FakeClock

REPO = Path(__file__).resolve().parents[4]
QINGFENG = [sys.executable, "-m", "qingfeng.cli.main"]


async def _seed(handling: Handling, clock: FakeClock) -> None:
    for n, level in enumerate((Level.YELLOW, Level.ORANGE, Level.RED)):
        alert = AlertView(f"ev-{n}:1", f"ev-{n}", 1, Level.NONE, level, "标题", T0, (), (("relevance", 0.9),))
        await handling.on_alert(alert, clock.now)


async def test_tampering_one_record_is_detected(
    handling: Handling, engine: AsyncEngine, coordinator_db_url: str, clock: FakeClock
) -> None:
    await _seed(handling, clock)
    ok, records, line = await verify_url(coordinator_db_url)
    assert ok and records >= 6 and line.startswith("OK")
    async with engine.begin() as conn:
        row = (await conn.execute(text("SELECT action, target FROM audit_log WHERE seq = 4"))).one()
        await conn.execute(text("UPDATE audit_log SET target = 'cases/forged' WHERE seq = 4"))
    ok, _, line = await verify_url(coordinator_db_url)
    assert not ok
    assert "first broken record is seq 4" in line and "cases/forged" in line and row.action in line


async def test_deleted_record_is_detected(
    handling: Handling, engine: AsyncEngine, coordinator_db_url: str, clock: FakeClock
) -> None:
    await _seed(handling, clock)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    ok, _, line = await verify_url(coordinator_db_url)
    assert not ok and "seq 2 (missing)" in line


def test_console_script_exit_codes(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*QINGFENG, "audit", "verify", "--database", "sqlite+aiosqlite:///" + str(tmp_path / "none" / "x.db")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert missing.returncode == 2 and "cannot read the audit log" in missing.stderr
    good = subprocess.run(
        [*QINGFENG, "policy", "validate", str(POLICY_DIR / "routing.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert good.returncode == 0 and good.stdout.startswith("OK coordinator-routing")
    bad = tmp_path / "routing.yaml"
    bad.write_text((POLICY_DIR / "routing.yaml").read_text(encoding="utf-8").replace("threshold: 0.5", "threshold: 2"))
    result = subprocess.run(
        [*QINGFENG, "policy", "validate", str(bad)], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert result.returncode == 1 and "corruption.threshold" in result.stdout
