"""The tip key and submitter reads: rotation with several keys, re-encryption of old tips, and the audited read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from qingfeng.settings import DatabaseSettings
from qingfeng.storage import create_engine, read_audit, session_factory, verify_chain
from qingfeng.v1 import source_pb2
from sqlalchemy import select

from services.collector.adapters.sql import SqlStore, tips_table
from services.collector.adapters.tip_rekey import reencrypt_tips
from services.collector.callers import Caller
from services.collector.errors import FailedPrecondition, InvalidArgument
from services.collector.settings import CollectorSettings
from services.collector.tips import TipCipher, TipDesk, generate_tip_key, parse_tip_keys
from tests.services.collector.fakes import FakeProducer as Sink
from tests.services.collector.harness import NOW, migrated_store, pipeline_over
from tests.services.collector.unit.test_tips import INFORMANT, OFFICER, SECRET_NAME, tip

REPO = Path(__file__).resolve().parents[4]
OLD, NEW = generate_tip_key(), generate_tip_key()


def _anonymous(text: str, key: str) -> source_pb2.SubmitTipRequest:
    request = tip(text=text, idempotency_key=key)
    request.ClearField("submitter")
    return request


def _cipher(*keys: str) -> TipCipher:
    return TipCipher([SecretStr(k) for k in keys])


def _key_of(token: bytes) -> str:
    """Which of OLD / NEW made ``token`` (each alone tried)."""
    found = [name for name, key in (("old", OLD), ("new", NEW)) if _opens(key, token)]
    assert len(found) == 1, found
    return found[0]


def _opens(key: str, token: bytes) -> bool:
    try:
        Fernet(key.encode()).decrypt(token)
    except Exception:
        return False
    return True


class Db:
    def __init__(self, url: str, store: SqlStore) -> None:
        self.url, self.store = url, store

    async def ciphertexts(self) -> dict[str, bytes]:
        engine = create_engine(DatabaseSettings(url=SecretStr(self.url)))
        try:
            async with session_factory(engine)() as session:
                rows = (await session.execute(select(tips_table.c.id, tips_table.c.submitter_ciphertext))).all()
        finally:
            await engine.dispose()
        return {tip_id: bytes(token) for tip_id, token in rows if token is not None}

    async def audit(self) -> tuple[list[Any], bool]:
        engine = create_engine(DatabaseSettings(url=SecretStr(self.url)))
        try:
            async with session_factory(engine)() as session:
                return list(await read_audit(session)), (await verify_chain(session)).ok
        finally:
            await engine.dispose()

    def desk(self, cipher: TipCipher | None, store: Any = None) -> TipDesk:
        return TipDesk(store or self.store, pipeline_over(Sink()), cipher, clock=lambda: NOW)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    async with migrated_store(tmp_path / "tips.db") as (url, store):
        yield Db(url, store)


def test_key_lists_newest_first() -> None:
    text = f"# rotated 2026-11\n{NEW}\n\n{OLD}  # retire after rekey\n"
    assert parse_tip_keys(text) == [NEW, OLD]
    assert parse_tip_keys(f"{NEW},{OLD}") == [NEW, OLD]
    cipher = TipCipher(SecretStr(f"{NEW},{OLD}"))
    assert cipher.key_count == 2 and _key_of(cipher.encrypt(source_pb2.TipSubmitter(name="x"))) == "new"


def test_a_bad_key_is_named_by_position_not_value() -> None:
    with pytest.raises(ValueError, match="key 2 of 2") as err:
        TipCipher(SecretStr(f"{NEW}\nnot-a-key-at-all"))
    assert "not-a-key-at-all" not in str(err.value)
    with pytest.raises(ValueError, match="holds no key"):
        TipCipher(SecretStr("# nothing\n"))


def test_several_keys_from_the_key_file(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "collector_tip_key"
    key_file.parent.mkdir()
    key_file.write_text(f"{NEW}\n{OLD}\n")
    key = CollectorSettings(tip_key_file=key_file).resolved_tip_key()
    assert key is not None and TipCipher(key).key_count == 2


async def test_rotation_old_tips_still_open_and_new_tips_use_the_new_key(db: Db) -> None:
    before = await db.desk(_cipher(OLD)).submit(tip(idempotency_key="a"), INFORMANT)
    (old_token,) = (await db.ciphertexts()).values()
    assert _key_of(old_token) == "old"

    rotated = db.desk(_cipher(NEW, OLD))  # the new key first, the old one still there to read old tips
    after = await rotated.submit(tip(idempotency_key="b", text="另一条线索：某局长违规"), INFORMANT)
    tokens = await db.ciphertexts()
    assert _key_of(tokens[before.tip_id]) == "old" and _key_of(tokens[after.tip_id]) == "new"
    for tip_id in (before.tip_id, after.tip_id):
        view = await rotated.view(tip_id, OFFICER, reason="核查")
        assert view is not None and view.submitter is not None and view.submitter.name == SECRET_NAME

    # Without the old key the old tip cannot be opened: a clear error, no submitter, nothing audited for it.
    only_new = db.desk(_cipher(NEW))
    with pytest.raises(FailedPrecondition, match="cannot be decrypted"):
        await only_new.view(before.tip_id, OFFICER, reason="核查")


async def test_rekey_moves_old_tips_to_the_new_key_and_is_audited(db: Db) -> None:
    first = await db.desk(_cipher(OLD)).submit(tip(idempotency_key="a"), INFORMANT)
    second = await db.desk(_cipher(OLD)).submit(tip(idempotency_key="b", text="第二条线索内容"), INFORMANT)
    unsubmitted = await db.desk(_cipher(OLD)).submit(_anonymous("匿名线索内容", "c"), INFORMANT)
    engine = create_engine(DatabaseSettings(url=SecretStr(db.url)))
    try:
        report = await reencrypt_tips(session_factory(engine), _cipher(NEW, OLD), actor="ops-rekey", page_size=1)
        again = await reencrypt_tips(session_factory(engine), _cipher(NEW), actor="ops-rekey")
    finally:
        await engine.dispose()
    assert (report.seen, report.rotated, report.current, report.unreadable) == (2, 2, 0, 0)
    tokens = await db.ciphertexts()
    assert set(tokens) == {first.tip_id, second.tip_id} and unsubmitted.tip_id not in tokens
    assert {_key_of(t) for t in tokens.values()} == {"new"}
    # The old key can go now.
    view = await db.desk(_cipher(NEW)).view(first.tip_id, OFFICER, reason="核查")
    assert view is not None and view.submitter is not None and view.submitter.name == SECRET_NAME
    assert (again.seen, again.rotated, again.current) == (2, 0, 2)
    records, chain_ok = await db.audit()
    rekeys = [r for r in records if r.action == "tip.key.rotate"]
    assert [(r.actor, r.details["rotated"]) for r in rekeys] == [("ops-rekey", 2), ("ops-rekey", 0)]
    assert chain_ok


def test_rekey_command_runs_without_the_rest_of_the_suite(tmp_path: Path) -> None:
    """`python -m services.collector.rekey` on an empty database: no Kafka, no gRPC, one JSON line."""
    key_file = tmp_path / "tip.key"
    key_file.write_text(f"{NEW}\n{OLD}\n")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "QF_COLLECTOR_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}",
        "QF_COLLECTOR_TIP_KEY_FILE": str(key_file),
    }
    env.pop("QF_COLLECTOR_TIP_KEY", None)
    migrate = (
        "import asyncio; from qingfeng.storage import run_migrations; from services.collector.app import MIGRATIONS,"
        f" VERSION_TABLE; asyncio.run(run_migrations('sqlite+aiosqlite:///{tmp_path / 'empty.db'}', MIGRATIONS,"
        " VERSION_TABLE))"
    )
    subprocess.run([sys.executable, "-c", migrate], env=env, cwd=REPO, check=True, timeout=120)
    done = subprocess.run(
        [sys.executable, "-m", "services.collector.rekey"], env=env, cwd=REPO, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout) == {"keys": 2, "seen": 0, "rotated": 0, "current": 0, "unreadable": 0}


async def test_a_submitter_read_needs_a_reason_and_is_audited_with_it(db: Db) -> None:
    desk = db.desk(_cipher(NEW))
    submitted = await desk.submit(tip(), INFORMANT)
    for reason in ("", "   "):
        with pytest.raises(InvalidArgument) as err:
            await desk.view(submitted.tip_id, OFFICER, reason=reason)
        assert [v.field for v in err.value.violations] == ["reason"]
    with pytest.raises(InvalidArgument, match="at most 500"):
        await desk.view(submitted.tip_id, OFFICER, reason="x" * 501)
    # Without the role: no reason needed, the submitter stays hidden, nothing decrypted, nothing audited.
    hidden = await desk.view(submitted.tip_id, INFORMANT)
    assert hidden is not None and hidden.submitter is None
    shown = await desk.view(submitted.tip_id, OFFICER, reason="  案件 2024-17：核实举报人身份  ")
    assert shown is not None and shown.submitter is not None
    records, chain_ok = await db.audit()
    assert chain_ok
    assert [r.action for r in records] == ["tip.submit", "tip.submitter.read"]
    read = records[1]
    assert (read.actor, read.agency, read.target) == ("case-officer", "case_management", submitted.tip_id)
    assert read.details["reason"] == "案件 2024-17：核实举报人身份"
    assert read.details["roles"] == ["see_submitter"] and read.details["post_id"] == submitted.post.id
    assert SECRET_NAME not in json.dumps(read.details, ensure_ascii=False)  # the audit says who read, not whom


async def test_every_decryption_is_one_record(db: Db) -> None:
    desk = db.desk(_cipher(NEW))
    submitted = await desk.submit(tip(), INFORMANT)
    anonymous = await desk.submit(_anonymous("无举报人信息的线索", "d"), INFORMANT)
    other = Caller("lead-2", "discipline_commission", frozenset({"see_submitter"}))
    await desk.view(submitted.tip_id, OFFICER, reason="第一次")
    await desk.view(submitted.tip_id, other, reason="第二次")
    await desk.view(anonymous.tip_id, OFFICER, reason="无举报人")  # nothing to decrypt: no read record
    records, _ = await db.audit()
    reads = [(r.actor, r.agency, r.details["reason"]) for r in records if r.action == "tip.submitter.read"]
    assert reads == [("case-officer", "case_management", "第一次"), ("lead-2", "discipline_commission", "第二次")]


class _AuditDown:
    """The store with an audit log that cannot take a record."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    async def get_tip(self, tip_id: str) -> Any:
        return await self._store.get_tip(tip_id)

    async def audit(self, caller: Caller, action: str, target: str, details: Mapping[str, Any]) -> None:
        raise ConnectionError("audit log unavailable")


async def test_no_audit_record_no_submitter(db: Db) -> None:
    submitted = await db.desk(_cipher(NEW)).submit(tip(), INFORMANT)
    desk = db.desk(_cipher(NEW), store=_AuditDown(db.store))
    with pytest.raises(ConnectionError):
        await desk.view(submitted.tip_id, OFFICER, reason="核查")
