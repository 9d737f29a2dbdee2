"""Manual tips: the submitter is encrypted at rest, shown only to see_submitter, and tips need a key at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from qingfeng.settings import DatabaseSettings
from qingfeng.storage import create_engine, read_audit, session_factory
from qingfeng.v1 import common_pb2, source_pb2
from sqlalchemy import select

from services.collector.adapters.sql import SqlStore, tips_table
from services.collector.callers import Caller
from services.collector.errors import FailedPrecondition, InvalidArgument
from services.collector.registry import TIP_SOURCE_ID
from services.collector.server import CollectorServicer
from services.collector.settings import CollectorSettings
from services.collector.tips import TipCipher, TipDesk, generate_tip_key
from tests.identity import as_caller
from tests.services.collector.fakes import FakeProducer as Sink
from tests.services.collector.harness import NOW, TOPICS, migrated_store, pipeline_over, serving

SECRET_NAME = "张三举报人"
SECRET_PHONE = "13800138000"
INFORMANT = Caller("collector-7", "opinion_office", frozenset({"informant"}))
OFFICER = Caller("case-officer", "case_management", frozenset({"see_submitter"}))


def tip(**fields: object) -> source_pb2.SubmitTipRequest:
    request = source_pb2.SubmitTipRequest(
        title="某镇党委书记违规操办婚宴",
        text="网友反映某镇党委书记为儿子操办婚宴，宴请上百桌，收受礼金",
        origin=source_pb2.TIP_ORIGIN_INFORMANT,
        regions=[common_pb2.Region(code="371302", name="兰山区")],
        submitter=source_pb2.TipSubmitter(name=SECRET_NAME, contact=SECRET_PHONE, organization="某街道"),
    )
    for key, value in fields.items():
        setattr(request, key, value)
    return request


class Desk:
    def __init__(self, desk: TipDesk, store: SqlStore, sink: Sink, url: str) -> None:
        self.desk, self.store, self.sink, self.url = desk, store, sink, url


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    async with migrated_store(tmp_path / "tips.db") as (url, store):
        sink = Sink()
        cipher = TipCipher(SecretStr(generate_tip_key()))
        yield Desk(TipDesk(store, pipeline_over(sink), cipher, clock=lambda: NOW), store, sink, url)


def test_cipher_round_trip_and_wrong_key() -> None:
    cipher = TipCipher(SecretStr(generate_tip_key()))
    submitter = source_pb2.TipSubmitter(name=SECRET_NAME, contact=SECRET_PHONE)
    token = cipher.encrypt(submitter)
    assert SECRET_NAME.encode() not in token and SECRET_PHONE.encode() not in token
    assert cipher.decrypt(token) == submitter
    with pytest.raises(ValueError, match="cannot be decrypted"):
        TipCipher(SecretStr(generate_tip_key())).decrypt(token)


def test_a_malformed_key_names_the_variable() -> None:
    with pytest.raises(ValueError, match="QF_COLLECTOR_TIP_KEY"):
        TipCipher(SecretStr("not-a-key"))


def test_key_from_file(tmp_path: Path) -> None:
    key_file = tmp_path / "tip.key"
    key = Fernet.generate_key().decode()
    key_file.write_text(key + "\n")
    resolved = CollectorSettings(tip_key_file=key_file).resolved_tip_key()
    assert resolved is not None and resolved.get_secret_value() == key
    assert CollectorSettings().resolved_tip_key() is None


async def test_a_tip_becomes_a_post_without_the_submitter(desk: Desk) -> None:
    response = await desk.desk.submit(tip(), INFORMANT)
    post = response.post
    assert post.source_id == TIP_SOURCE_ID and post.source_kind == common_pb2.SOURCE_KIND_MANUAL_TIP
    assert post.id.startswith("tip:manual-tip:tip-")
    assert post.enrichment.regions[0].code == "371302"
    [record] = [r for r in desk.sink.sent if r.topic == TOPICS.posts]
    payload = record.message.SerializeToString()
    for secret in (SECRET_NAME, SECRET_PHONE, "某街道"):
        assert secret.encode() not in payload
        assert secret not in str(record.extra_headers)


async def test_the_submitter_is_stored_encrypted_and_shown_only_to_see_submitter(desk: Desk) -> None:
    response = await desk.desk.submit(tip(), INFORMANT)
    tip_id = response.post.native_id
    engine = create_engine(DatabaseSettings(url=SecretStr(desk.url)))
    try:
        async with session_factory(engine)() as session:
            row = (await session.execute(select(tips_table))).one()
            audit = await read_audit(session)
    finally:
        await engine.dispose()
    stored = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode() for v in row)
    assert SECRET_NAME.encode() not in stored and SECRET_PHONE.encode() not in stored
    assert [(a.action, a.actor) for a in audit] == [("tip.submit", "collector-7")]
    assert SECRET_NAME not in str(audit[0].details) and audit[0].details["has_submitter"] is True

    hidden = await desk.desk.view(tip_id, INFORMANT)
    assert hidden is not None and hidden.submitter is None
    shown = await desk.desk.view(tip_id, OFFICER, reason="案件 2024-17 核实线索")
    assert shown is not None and shown.submitter is not None
    assert (shown.submitter.name, shown.submitter.contact) == (SECRET_NAME, SECRET_PHONE)


async def test_resubmitting_with_the_same_key_returns_the_first_result(desk: Desk) -> None:
    first = await desk.desk.submit(tip(idempotency_key="k-1"), INFORMANT)
    again = await desk.desk.submit(tip(idempotency_key="k-1", text="改过的内容也不会再产生新帖"), INFORMANT)
    assert again.post == first.post
    assert len([r for r in desk.sink.sent if r.topic == TOPICS.posts]) == 1
    other = await desk.desk.submit(tip(idempotency_key="k-1"), OFFICER)  # keys are per caller
    assert other.post.id != first.post.id


async def test_a_tip_repeating_a_known_post_is_linked_to_it(desk: Desk) -> None:
    first = await desk.desk.submit(tip(), INFORMANT)
    second = await desk.desk.submit(tip(), INFORMANT)
    assert second.duplicate_of == first.post.id


async def test_tips_are_refused_without_a_key(desk: Desk) -> None:
    sink = Sink()
    keyless = TipDesk(desk.store, pipeline_over(sink), None)
    with pytest.raises(FailedPrecondition, match="QF_COLLECTOR_TIP_KEY"):
        await keyless.submit(tip(), INFORMANT)
    assert sink.sent == []


async def test_invalid_tips_name_their_fields(desk: Desk) -> None:
    with pytest.raises(InvalidArgument) as err:
        await desk.desk.submit(tip(text=" ", origin=source_pb2.TIP_ORIGIN_UNSPECIFIED, url="javascript:x"), INFORMANT)
    assert {v.field for v in err.value.violations} == {"text", "origin", "url"}


async def test_forged_roles_in_metadata_are_not_believed(desk: Desk) -> None:
    """The whistleblower stays hidden from a caller who merely claims ``see_submitter`` in metadata."""
    servicer = CollectorServicer(desk.store, pipeline_over(Sink()), desk.desk, lambda *a, **k: None)
    forged = (
        ("x-qingfeng-principal", "p"),
        ("x-qingfeng-agency", "case_management"),
        ("x-qingfeng-roles", "see_submitter"),
    )
    async with serving(servicer) as stub:
        submitted = await stub.SubmitTip(tip())
        view = (await stub.GetTip(source_pb2.GetTipRequest(id=submitted.tip_id), metadata=forged)).tip
        assert view.has_submitter and not view.HasField("submitter")


async def test_submit_tip_over_grpc_without_a_key_is_failed_precondition(desk: Desk) -> None:
    sink = Sink()
    pipeline = pipeline_over(sink)
    servicer = CollectorServicer(desk.store, pipeline, TipDesk(desk.store, pipeline, None), lambda *a, **k: None)
    async with serving(servicer) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitTip(tip())
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert sink.sent == []


async def test_get_tip_over_grpc_shows_the_submitter_only_to_see_submitter(desk: Desk) -> None:
    servicer = CollectorServicer(desk.store, pipeline_over(Sink()), desk.desk, lambda *a, **k: None)
    submit, get = "/qingfeng.v1.CollectorService/SubmitTip", "/qingfeng.v1.CollectorService/GetTip"
    informant = as_caller(submit, principal="collector-7", agency="opinion_office")
    informant_get = as_caller(get, principal="collector-7", agency="opinion_office")
    officer = as_caller(get, principal="case-officer", agency="opinion_office", roles=("see_submitter",))
    async with serving(servicer) as stub:
        submitted = await stub.SubmitTip(tip(), metadata=informant)
        assert submitted.tip_id
        hidden = (await stub.GetTip(source_pb2.GetTipRequest(id=submitted.tip_id), metadata=informant_get)).tip
        assert hidden.has_submitter and not hidden.HasField("submitter")
        assert hidden.post.id == submitted.post.id and hidden.submitted_by == "collector-7"
        with pytest.raises(grpc.aio.AioRpcError) as no_reason:
            await stub.GetTip(source_pb2.GetTipRequest(id=submitted.tip_id), metadata=officer)
        assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "reason" in (no_reason.value.details() or "")
        asked = source_pb2.GetTipRequest(id=submitted.tip_id, reason="案件 2024-17")
        shown = (await stub.GetTip(asked, metadata=officer)).tip
        assert (shown.submitter.name, shown.submitter.contact) == (SECRET_NAME, SECRET_PHONE)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetTip(source_pb2.GetTipRequest(id="tip-unknown", reason="案件 2024-17"), metadata=officer)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    audit = await _audit(desk)
    # One decryption, one record: the officer with the reason; the informant's and the refused reads left none.
    assert [(a.action, a.actor, a.agency, a.details.get("reason")) for a in audit] == [
        ("tip.submit", "collector-7", "opinion_office", None),
        ("tip.submitter.read", "case-officer", "opinion_office", "案件 2024-17"),
    ]


async def _audit(desk: Desk) -> list[Any]:
    engine = create_engine(DatabaseSettings(url=SecretStr(desk.url)))
    try:
        async with session_factory(engine)() as session:
            return list(await read_audit(session))
    finally:
        await engine.dispose()
