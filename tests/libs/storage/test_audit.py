from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from qingfeng.storage import AuditRecord, ChainCheck, append_audit, audit_tables, read_audit, verify_chain
from qingfeng.storage.audit import GENESIS_HASH, record_hash
from sqlalchemy import MetaData, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

_log, _head = audit_tables(MetaData())


async def _append_five(sessions: async_sessionmaker[AsyncSession]) -> list[AuditRecord]:
    records = []
    for n in range(1, 6):
        async with sessions() as session, session.begin():
            records.append(
                await append_audit(
                    session,
                    actor=f"user-{n}",
                    agency="police_cyber" if n % 2 else None,
                    action="case.assign",
                    target=f"case-{n}",
                    details={"level": "orange", "批示": "请公安网安核查", "n": n, "ratio": 0.5},
                )
            )
    return records


async def _verify(sessions: async_sessionmaker[AsyncSession]) -> ChainCheck:
    async with sessions() as session:
        return await verify_chain(session)


async def test_chain_links_and_verifies(sessions: async_sessionmaker[AsyncSession]) -> None:
    assert await _verify(sessions) == ChainCheck(True, None)  # an empty log is a valid chain
    written = await _append_five(sessions)

    assert [r.seq for r in written] == [1, 2, 3, 4, 5]
    assert written[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(written))
    async with sessions() as session:
        assert await read_audit(session) == written
        assert [r.seq for r in await read_audit(session, after_seq=3, limit=1)] == [4]
    ok, first_bad = await _verify(sessions)
    assert ok and first_bad is None
    async with sessions() as session:
        assert await verify_chain(session, page_size=2) == ChainCheck(True, None)


async def test_hash_is_over_the_canonical_record() -> None:
    at = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    fields = {"seq": 1, "at": at, "actor": "a", "agency": None, "action": "x", "target": "t", "prev_hash": "0" * 64}
    assert record_hash(**fields, details={"b": 1, "a": "受贿"}) == record_hash(**fields, details={"a": "受贿", "b": 1})
    assert record_hash(**fields, details={"a": 1}) != record_hash(**fields, details={"a": 2})
    assert record_hash(**fields, details={}) != record_hash(**{**fields, "prev_hash": "1" * 64}, details={})


@pytest.mark.parametrize(
    "change",
    [
        {"details": {"level": "blue"}},
        {"actor": "someone-else"},
        {"at": datetime(2020, 1, 1, tzinfo=UTC)},
        {"agency": "propaganda"},
    ],
    ids=["details", "actor", "at", "agency"],
)
async def test_tampering_with_a_record_is_found_at_its_seq(
    sessions: async_sessionmaker[AsyncSession], change: dict[str, object]
) -> None:
    await _append_five(sessions)
    async with sessions() as session, session.begin():
        await session.execute(update(_log).where(_log.c.seq == 3).values(**change))
    assert await _verify(sessions) == ChainCheck(False, 3)


async def test_rehashing_a_tampered_record_breaks_the_next_link(sessions: async_sessionmaker[AsyncSession]) -> None:
    written = await _append_five(sessions)
    third = written[2]
    forged = record_hash(
        seq=3, at=third.at, actor=third.actor, agency=third.agency, action=third.action, target=third.target,
        details={"level": "blue"}, prev_hash=third.prev_hash,
    )  # fmt: skip
    async with sessions() as session, session.begin():
        await session.execute(update(_log).where(_log.c.seq == 3).values(details={"level": "blue"}, hash=forged))
    assert await _verify(sessions) == ChainCheck(False, 4)


@pytest.mark.parametrize(("removed", "first_bad"), [(2, 2), (5, 5)], ids=["middle", "last"])
async def test_removed_records_are_found(
    sessions: async_sessionmaker[AsyncSession], removed: int, first_bad: int
) -> None:
    await _append_five(sessions)
    async with sessions() as session, session.begin():
        await session.execute(delete(_log).where(_log.c.seq == removed))
    assert await _verify(sessions) == ChainCheck(False, first_bad)


async def test_records_slipped_in_past_the_head_are_found(sessions: async_sessionmaker[AsyncSession]) -> None:
    written = await _append_five(sessions)
    last = written[-1]
    async with sessions() as session, session.begin():
        await session.execute(
            _log.insert().values(
                seq=6, at=last.at, actor="x", agency=None, action="y", target="z", details={},
                prev_hash=last.hash, hash="f" * 64,
            )
        )  # fmt: skip
    assert await _verify(sessions) == ChainCheck(False, 6)


async def test_concurrent_appends_form_one_chain(sessions: async_sessionmaker[AsyncSession]) -> None:
    async def append(n: int) -> int:
        async with sessions() as session, session.begin():
            record = await append_audit(session, actor="worker", action="task.update", target=f"task-{n}")
            await asyncio.sleep(0.005)  # hold the transaction open so the others queue behind it
            return record.seq

    # Starting from an empty log: the first appends also race to create the head row.
    seqs = await asyncio.gather(*(append(n) for n in range(12)))
    assert sorted(seqs) == list(range(1, 13))
    assert await _verify(sessions) == ChainCheck(True, None)


async def test_rolled_back_append_leaves_no_gap(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        await append_audit(session, actor="a", action="x", target="t")
    async with sessions() as session:
        await append_audit(session, actor="a", action="y", target="t")
        await session.rollback()
    async with sessions() as session, session.begin():
        record = await append_audit(session, actor="a", action="z", target="t")
    assert record.seq == 2
    assert await _verify(sessions) == ChainCheck(True, None)


async def test_details_must_be_json_and_times_aware(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        with pytest.raises(TypeError):
            await append_audit(session, actor="a", action="x", target="t", details={"when": datetime.now(UTC)})
        with pytest.raises(ValueError, match="timezone"):
            await append_audit(session, actor="a", action="x", target="t", at=datetime(2025, 1, 1))
