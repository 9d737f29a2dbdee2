"""The operators' dead-letter command: lists a failed publication, replays it (audited), refuses a live one."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qingfeng.storage.audit import read_audit

from services.publisher.core.model import PublicationStatus
from tests.conftest import REPO_ROOT
from tests.services.publisher.fakes import channel_error
from tests.services.publisher.harness import DIRECTOR, harness

pytestmark = pytest.mark.asyncio


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"QF_PUBLISHER_DATABASE__URL": db_url, "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "services.publisher.deadletters", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


async def test_list_and_replay_a_dead_letter(tmp_path: Path) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    async with harness(db_url) as h:
        draft = await h.approved_draft(channel_ids=("weibo-qingfeng",))
        h.channels["weibo-qingfeng"].failures = [channel_error("UNAUTHORISED", "401 token revoked")]
        [pub] = await h.publisher.publish(DIRECTOR, draft.id, [])
        await h.worker.run_once()

        listed = _cli(db_url, "list")
        assert listed.returncode == 0, listed.stderr
        assert pub.id in listed.stdout and "401 token revoked" in listed.stdout and "case=case-1" in listed.stdout

        replayed = _cli(db_url, "replay", pub.id, "--operator", "ops-li")
        assert replayed.returncode == 0, replayed.stderr
        assert (await h.publisher.get_publication(pub.id))[0].status is PublicationStatus.PENDING
        async with h.store.transaction() as s:
            last = (await read_audit(s, limit=1000))[-1]
        assert (last.action, last.actor, last.agency) == ("publication.replay", "ops-li", "channel_operator")

        # The CLI replayed on the real clock: the worker's settable clock must not be behind it (it starts at a fixed
        # instant, 2026-11-30 08:00 UTC, which the real clock has passed).
        h.clock.now = max(h.clock.now, datetime.now(UTC))
        await h.worker.run_once()
        assert (await h.publisher.get_publication(pub.id))[0].status is PublicationStatus.PUBLISHED
        again = _cli(db_url, "replay", pub.id, "--operator", "ops-li")
        assert again.returncode == 1 and "only failed publications are replayed" in again.stderr
