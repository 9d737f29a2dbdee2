from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from qingfeng.v1 import common_pb2, post_pb2, source_pb2

from services.collector.ports import FetchState, Rejected
from services.collector.sources import JsonlSource, SourceContext, iter_jsonl, parse_jsonl_line
from tests.services.collector.fakes import FIXTURES, Collected, FakeTime, make_source, mock_fetcher

NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
FILE = FIXTURES / "jsonl" / "posts.jsonl"


def _source(path: str = "", **field_map: str) -> source_pb2.Source:
    config = source_pb2.JsonlConfig(path=path, field_map=field_map)
    return make_source(common_pb2.SOURCE_KIND_JSONL_IMPORT, "import", jsonl=config)


def test_shared_data_format_lines_become_posts() -> None:
    items = list(iter_jsonl(FILE, _source(), collected_at=NOW))
    source_post, reply, empty = (i for i in items if isinstance(i, post_pb2.Post))
    assert source_post.id == "jsonl:import:4473713031" and source_post.native_id == "4473713031"
    assert source_post.text == "临沂市委书记……（测试）" and source_post.platform == "weibo.com"
    assert source_post.created_at.ToDatetime(UTC) == datetime(2010, 12, 15, 11, 15, 40, tzinfo=UTC)
    assert source_post.author.id == "cba04ed45c841131" and source_post.author.followers == 21246
    assert (source_post.reposts, source_post.comments, source_post.likes) == (753, 391, 0)
    assert not source_post.parent_id and not source_post.root_id  # event_id (ground truth) is not read
    assert reply.parent_id == source_post.id
    assert empty.text == "" and empty.parent_id == source_post.id  # a repost without words is a post


def test_each_bad_line_is_rejected_with_file_line_and_reason() -> None:
    rejects = [i for i in iter_jsonl(FILE, _source(), collected_at=NOW) if isinstance(i, Rejected)]
    got = [(r.origin.rsplit(":", 1)[1], r.reason, r.message.split(":")[0]) for r in rejects]
    assert got == [
        ("5", post_pb2.DEAD_LETTER_REASON_MALFORMED, "invalid JSON"),
        ("6", post_pb2.DEAD_LETTER_REASON_MALFORMED, "line is a JSON list, expected an object"),
        ("7", post_pb2.DEAD_LETTER_REASON_INVALID, "id is missing or not a string or integer"),
        ("8", post_pb2.DEAD_LETTER_REASON_INVALID, "created_at '去年冬天' is not a time"),
        ("9", post_pb2.DEAD_LETTER_REASON_INVALID, "reposts is -5, expected a non-negative integer"),
        ("10", post_pb2.DEAD_LETTER_REASON_ENCODING, "not UTF-8"),
        ("11", post_pb2.DEAD_LETTER_REASON_INVALID, "text is missing or not a string"),
    ]
    assert all(r.origin.startswith(str(FILE)) for r in rejects)
    assert rejects[0].payload == b'{"id": "1", "text": "unterminated'


def test_field_map_reads_other_shapes() -> None:
    line = json.dumps(
        {
            "mid": 7,
            "content": "<p>not stripped: jsonl is text</p>",
            "t": 1700000000,
            "user": {"uid": "u1", "fans": "12"},
        }
    )
    fields = {"native_id": "mid", "text": "content", "created_at": "t", "author.id": "user.uid"}
    post = parse_jsonl_line(
        line, _source(), collected_at=NOW, origin="x:1", field_map={**fields, "author.followers": "user.fans"}
    )
    assert isinstance(post, post_pb2.Post)
    assert (post.native_id, post.author.id, post.author.followers) == ("7", "u1", 12)
    assert post.created_at.ToDatetime(UTC) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    with pytest.raises(ValueError, match="unknown Post fields: nope"):
        parse_jsonl_line(line, _source(), collected_at=NOW, origin="x:1", field_map={"nope": "x"})


def test_post_shaped_author_object() -> None:
    line = '{"id": "9", "text": "x", "created_at": "2024-01-01T00:00:00Z", "author": {"id": "a", "is_media": true}}'
    post = parse_jsonl_line(line, _source(), collected_at=NOW, origin="x:1")
    assert isinstance(post, post_pb2.Post) and post.author.id == "a" and post.author.is_media


def test_oversized_line() -> None:
    line = '{"id": "1", "text": "' + "长" * 400_000 + '", "created_at": "2024-01-01T00:00:00Z"}'
    reject = parse_jsonl_line(line, _source(), collected_at=NOW, origin="big:1")
    assert isinstance(reject, Rejected) and reject.reason == post_pb2.DEAD_LETTER_REASON_TOO_LARGE


async def test_file_source_streams_batches_and_skips_unchanged_files(tmp_path: Path) -> None:
    shutil.copy(FILE, tmp_path / "a.jsonl")
    shutil.copy(FILE, tmp_path / "b.jsonl")
    source = _source(str(tmp_path / "*.jsonl"))
    time = FakeTime()
    async with mock_fetcher(lambda r: None, time) as fetcher:  # type: ignore[arg-type, return-value]
        adapter = JsonlSource(SourceContext(fetcher, now=time.now, batch_size=4, file_roots=(tmp_path,)))
        collected = Collected()
        outcome = await adapter.collect(source, None, collected)
        assert outcome.error is None and outcome.emitted == 20 and len(collected.posts) == 6
        assert max(len(b) for b in collected.batches) == 4
        again = await adapter.collect(source, outcome.fetch_state, Collected())
        assert again.not_modified
        (tmp_path / "b.jsonl").write_text("{}\n")
        changed = await adapter.collect(source, outcome.fetch_state, Collected())
        assert not changed.not_modified and changed.emitted == 11
        missing = await adapter.collect(_source(str(tmp_path / "none*.jsonl")), FetchState(), Collected())
        assert missing.error is not None and missing.error.startswith("no file matches")


async def test_file_source_uses_the_configured_field_map(tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text(
        '{"mid": "m1", "content": "正文", "time": "2024-05-01 10:00"}\n', encoding="utf-8"
    )
    source = _source(str(tmp_path / "x.jsonl"), native_id="mid", text="content", created_at="time")
    collected = Collected()
    async with mock_fetcher(lambda r: None, FakeTime()) as fetcher:  # type: ignore[arg-type, return-value]
        outcome = await JsonlSource(SourceContext(fetcher, file_roots=(tmp_path,))).collect(source, None, collected)
    (post,) = collected.posts
    assert outcome.error is None and (post.native_id, post.text) == ("m1", "正文")
    assert post.created_at.ToDatetime(UTC) == datetime(2024, 5, 1, 2, 0, tzinfo=UTC)


async def test_file_sources_read_only_inside_the_allowed_directories(tmp_path: Path) -> None:
    allowed, secrets = tmp_path / "imports", tmp_path / "secrets"
    allowed.mkdir()
    secrets.mkdir()
    (secrets / "collector_tip_key").write_text("not-for-the-dead-letter-topic\n")
    shutil.copy(FILE, allowed / "a.jsonl")
    (allowed / "escape.jsonl").symlink_to(secrets / "collector_tip_key")
    async with mock_fetcher(lambda r: None, FakeTime()) as fetcher:  # type: ignore[arg-type, return-value]
        for roots, pattern in [
            ((allowed,), str(secrets / "*")),  # a path outside
            ((allowed,), str(allowed / "../secrets/collector_tip_key")),  # climbing out
            ((allowed,), str(allowed / "*.jsonl")),  # a symlink inside pointing outside
            ((), str(allowed / "a.jsonl")),  # no directory allowed at all (the default)
        ]:
            collected = Collected()
            outcome = await JsonlSource(SourceContext(fetcher, file_roots=roots)).collect(
                _source(pattern), None, collected
            )
            assert outcome.error is not None and outcome.error.startswith("refused:"), pattern
            assert collected.items == []
        ok = await JsonlSource(SourceContext(fetcher, file_roots=(allowed,))).collect(
            _source(str(allowed / "a.jsonl")), None, Collected()
        )
    assert ok.error is None and ok.emitted > 0
