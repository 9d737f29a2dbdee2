"""The protobuf contracts: buf lint is clean, the generated code is present and fresh, every service is there.

Needs `make install` (node_modules with buf, and `make protos` for libs/qingfeng/v1).
"""

from __future__ import annotations

import importlib
import importlib.resources
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2, json_format
from google.protobuf.timestamp_pb2 import Timestamp

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "protos" / "qingfeng" / "v1"
GENERATED_DIR = ROOT / "libs" / "qingfeng" / "v1"
BUF = ROOT / "node_modules" / ".bin" / "buf"

PROTO_FILES = sorted(PROTO_DIR.glob("*.proto"))
STEMS = [p.stem for p in PROTO_FILES]
SERVICE_RE = re.compile(r"^service\s+(\w+)\s*\{", re.MULTILINE)
RPC_RE = re.compile(r"^\s*rpc\s+(\w+)\s*\(", re.MULTILINE)


def _services_in(proto: Path) -> dict[str, list[str]]:
    """Service name -> rpc names, read from the .proto text (one service per file by convention)."""
    text = proto.read_text(encoding="utf-8")
    names = SERVICE_RE.findall(text)
    assert len(names) <= 1, f"{proto.name}: one service per file, found {names}"
    return {name: RPC_RE.findall(text) for name in names}


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(f"qingfeng.v1.{name}")
    except ModuleNotFoundError as exc:  # the build output is git-ignored: say how to make it
        pytest.fail(f"generated module qingfeng.v1.{name} is missing ({exc}); run `make protos`")


def test_the_expected_contract_files_exist() -> None:
    expected = {"common", "errors", "post", "source", "event", "case", "publication", "search"}
    assert expected <= set(STEMS)


def test_buf_lint_is_clean() -> None:
    if not BUF.exists():
        pytest.fail(f"buf is not installed at {BUF.relative_to(ROOT)}: run `npm install` (or `make install`)")
    result = subprocess.run([str(BUF), "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"buf lint failed:\n{result.stdout}{result.stderr}"


def test_buf_format_is_clean() -> None:
    if not BUF.exists():
        pytest.fail(f"buf is not installed at {BUF.relative_to(ROOT)}: run `npm install` (or `make install`)")
    cmd = [str(BUF), "format", "--diff", "--exit-code"]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, f"protos are not buf-formatted (run `npx buf format -w`):\n{result.stdout}"


@pytest.mark.parametrize("stem", STEMS)
def test_generated_code_and_stubs_exist(stem: str) -> None:
    for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
        path = GENERATED_DIR / f"{stem}{suffix}"
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `make protos`"


def _drop_json_names(messages: Iterable[descriptor_pb2.DescriptorProto]) -> None:
    for message in messages:
        for field in message.field:
            field.ClearField("json_name")
        _drop_json_names(message.nested_type)


@pytest.mark.parametrize("stem", STEMS)
def test_generated_code_is_fresh(stem: str, tmp_path: Path) -> None:
    """The imported descriptor equals what protoc makes from the .proto now, so stale code is caught."""
    from grpc_tools import protoc  # type: ignore[import-untyped]  # only this test needs the compiler

    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    out = tmp_path / "set.pb"
    includes = [f"-I{ROOT / 'protos'}", f"-I{well_known}"]
    args = ["protoc", *includes, f"--descriptor_set_out={out}", str(PROTO_DIR / f"{stem}.proto")]
    assert protoc.main(args) == 0, f"protoc failed on {stem}.proto"
    # Field options carry (qingfeng.v1.rules): with the extension registered first, both sides parse it as a message
    # and compare by value (as unknown bytes, their encodings may differ while meaning the same).
    _import("field_rules_pb2")
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    _drop_json_names(compiled.message_type)  # the Python generator leaves out the default json_name
    for extension in compiled.extension:  # top-level extensions (field_rules.proto) too
        extension.ClearField("json_name")
    generated = descriptor_pb2.FileDescriptorProto.FromString(_import(f"{stem}_pb2").DESCRIPTOR.serialized_pb)
    assert generated == compiled, f"libs/qingfeng/v1/{stem}_pb2.py is older than its .proto: run `make protos`"


@pytest.mark.parametrize("proto", PROTO_FILES, ids=STEMS)
def test_every_service_has_descriptor_stub_and_servicer(proto: Path) -> None:
    pb2 = _import(f"{proto.stem}_pb2")
    grpc_mod = _import(f"{proto.stem}_pb2_grpc")
    for service, rpcs in _services_in(proto).items():
        descriptor = pb2.DESCRIPTOR.services_by_name.get(service)
        assert descriptor is not None, f"{service} missing from {proto.stem}_pb2.DESCRIPTOR"
        assert descriptor.full_name == f"qingfeng.v1.{service}"
        assert sorted(m.name for m in descriptor.methods) == sorted(rpcs)
        for method in descriptor.methods:  # buf's RPC_REQUEST_RESPONSE_UNIQUE, checked on the generated side too
            assert method.input_type.name == f"{method.name}Request"
            assert method.output_type.name == f"{method.name}Response"
        for attr in (f"{service}Stub", f"{service}Servicer", f"add_{service}Servicer_to_server"):
            assert hasattr(grpc_mod, attr), f"{proto.stem}_pb2_grpc lacks {attr}"


def test_all_services_are_present() -> None:
    services = {name for proto in PROTO_FILES for name in _services_in(proto)}
    assert services == {
        "CollectorService",
        "GraderService",
        "CoordinatorService",
        "PublisherService",
        "SearchService",
    }


def _chinese_post() -> object:
    common_pb2 = _import("common_pb2")
    post_pb2 = _import("post_pb2")
    created = Timestamp()
    created.FromJsonString("2025-06-01T08:30:00Z")
    return post_pb2.Post(
        id="p-1",
        source_id="hz-daily-rss",
        source_kind=common_pb2.SOURCE_KIND_RSS,
        url="https://news.example.cn/a/1",
        author=post_pb2.Author(id="u1", name="清风观察", followers=12000, is_media=True, is_verified=True),
        title="某局長公款吃喝被曝光",
        text="網友反映某局長多次公款吃喝，並有群眾準備明天去區政府聚集。",
        text_simplified="某局长公款吃喝被曝光 网友反映某局长多次公款吃喝，并有群众准备明天去区政府聚集。",
        keywords=["公款吃喝", "局长"],
        created_at=created,
        reposts=320,
        language="zh-Hant",
        enrichment=post_pb2.Enrichment(
            corruption_terms=[
                post_pb2.TermMatch(term="公款吃喝", category=post_pb2.CORRUPTION_CATEGORY_FOUR_WINDS, count=2)
            ],
            official_titles=[post_pb2.OfficialMention(title="局长")],
            regions=[common_pb2.Region(code="330106", name="西湖区")],
            offline_signals=[
                post_pb2.OfflineSignal(kind=post_pb2.OFFLINE_ACTION_KIND_GATHERING, term="聚集", planned=True)
            ],
            relevance=0.92,
        ),
        dedupe=post_pb2.Dedupe(content_hash="ab" * 32, simhash=0xFEDC_BA98_7654_3210),
    )


def test_post_with_chinese_text_round_trips() -> None:
    post_pb2 = _import("post_pb2")
    post = _chinese_post()
    wire = post.SerializeToString()  # type: ignore[attr-defined]
    again = post_pb2.Post.FromString(wire)
    assert again == post
    assert again.text_simplified.endswith("聚集。")
    assert again.dedupe.simhash == 0xFEDC_BA98_7654_3210  # fixed64 keeps the full unsigned range
    as_json = json_format.MessageToJson(again, ensure_ascii=False)
    assert "公款吃喝" in as_json
    assert json_format.Parse(as_json, post_pb2.Post()) == post


def test_levels_are_ordered_by_severity() -> None:
    common_pb2 = _import("common_pb2")
    levels = ["NONE", "BLUE", "YELLOW", "ORANGE", "RED"]
    values = [common_pb2.WarningLevel.Value(f"WARNING_LEVEL_{name}") for name in levels]
    assert values == sorted(values)
    assert common_pb2.WARNING_LEVEL_UNSPECIFIED == 0


def test_tip_submitter_is_marked_sensitive() -> None:
    source_pb2 = _import("source_pb2")
    field = source_pb2.SubmitTipRequest.DESCRIPTOR.fields_by_name["submitter"]
    # Python's str() does not honour debug_redact (C++, Java and Go do): the marker documents the field,
    # and the collector must never log or forward a SubmitTipRequest as a whole.
    assert field.GetOptions().debug_redact
