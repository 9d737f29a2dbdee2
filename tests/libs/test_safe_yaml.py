"""The refusing YAML loader: plain data loads, bombs and object tags are refused quickly with source and line."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import yaml
from qingfeng.safe_yaml import SafeYamlError, compose_yaml, load_yaml


def _billion_laughs() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    return "\n".join(lines) + "\n"


def test_plain_data_loads() -> None:
    text = "name: x\ncount: 3\nratio: 0.5\nok: true\nnothing: null\nwhen: 2026-01-02\nitems: [a, 1]\nnested: {k: v}\n"
    assert load_yaml(text, source="t.yaml") == {
        "name": "x",
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "nothing": None,
        "when": dt.date(2026, 1, 2),
        "items": ["a", 1],
        "nested": {"k": "v"},
    }


def test_bytes_and_empty_documents() -> None:
    assert load_yaml("a: 中文\n".encode(), source="b") == {"a": "中文"}
    assert load_yaml("", source="empty") is None
    assert load_yaml("# only a comment\n", source="empty") is None


def test_billion_laughs_is_refused_fast() -> None:
    bomb = _billion_laughs()
    assert len(bomb.encode()) <= 600
    # The stock loader would accept it (composing is cheap; constructing is what explodes), so the
    # refusal below is ours and not an accident of the input.
    assert isinstance(yaml.compose(bomb, Loader=yaml.SafeLoader), yaml.MappingNode)
    started = time.perf_counter()
    with pytest.raises(SafeYamlError) as err:
        load_yaml(bomb, source="bomb.yaml")
    elapsed = time.perf_counter() - started
    assert elapsed < 0.1, f"refusal took {elapsed:.3f}s"
    assert err.value.source == "bomb.yaml" and err.value.line == 1
    assert "anchors are not allowed" in str(err.value) and str(err.value).startswith("bomb.yaml: line 1:")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\nb: &x 2\n", 2, "anchors are not allowed"),
        ("a: 1\nb: *x\n", 2, "aliases are not allowed"),
        ("a: 1\n---\nb: 2\n", 2, "more than one document"),
        ("a: 1\n2: b\n", 2, "keys must be strings"),
        ("a: 1\n[x]: b\n", 2, "keys must be strings"),
        ("a: 1\ntrue: b\n", 2, "keys must be strings"),
        ("a: 1\na: 2\n", 2, "given twice"),
        ("a: !!python/object/apply:os.system [echo hi]\n", 1, "python object tags"),
        ("a: !!python/name:os.system\n", 1, "python object tags"),
        ("a: !custom x\n", 1, "not allowed"),
        ("a: !!set {x, y}\n", 1, "not allowed"),
        ("a: 1\n<<: {b: 2}\n", 2, "not allowed"),
        ("a: [unclosed\n", 2, "not valid YAML"),
        ("a: " + "1" * 5000 + "\n", 1, "bad value"),
    ],
)
def test_refusals_name_source_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(SafeYamlError) as err:
        load_yaml(text, source="policy.yaml")
    assert isinstance(err.value, ValueError)
    assert err.value.source == "policy.yaml"
    assert err.value.line == line
    assert message in str(err.value)
    assert str(err.value).startswith(f"policy.yaml: line {line}:")


def test_size_limit_is_checked_before_parsing() -> None:
    with pytest.raises(SafeYamlError, match=r"^big.yaml: larger than 100 bytes$"):
        load_yaml("a: " + "x" * 100, source="big.yaml", max_bytes=100)
    # Multi-byte characters count as bytes, not characters.
    with pytest.raises(SafeYamlError, match="larger than 100 bytes"):
        load_yaml("a: " + "中" * 40, source="big.yaml", max_bytes=100)
    with pytest.raises(SafeYamlError, match="larger than 100 bytes"):
        load_yaml(b"a: " + b"x" * 100, source="big.yaml", max_bytes=100)
    assert load_yaml("a: " + "x" * 90, source="ok.yaml", max_bytes=100) == {"a": "x" * 90}


def test_default_size_limit_is_256_kib() -> None:
    text = "a: '" + "x" * (256 * 1024) + "'\n"
    with pytest.raises(SafeYamlError, match="larger than 262144 bytes"):
        load_yaml(text, source="big.yaml")


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(SafeYamlError, match="nested deeper than 64 levels"):
        load_yaml("[" * 50_000, source="deep.yaml")
    assert load_yaml("[" * 10 + "]" * 10, source="ok.yaml") == [[[[[[[[[[]]]]]]]]]]


def test_compose_keeps_positions_and_applies_the_same_refusals() -> None:
    node = compose_yaml("a:\n  b: 1\n", source="c.yaml")
    assert isinstance(node, yaml.MappingNode)
    assert node.value[0][1].start_mark.line == 1
    assert compose_yaml("", source="c.yaml") is None
    with pytest.raises(SafeYamlError, match="aliases are not allowed"):
        compose_yaml("a: 1\nb: *x\n", source="c.yaml")


def test_the_grading_policy_loader_refuses_the_bomb_with_its_line() -> None:
    from services.grader.adapters.policy_yaml import PolicyLoadError, load_policy

    started = time.perf_counter()
    with pytest.raises(PolicyLoadError) as err:
        load_policy(_billion_laughs(), source="bomb.yaml")
    assert time.perf_counter() - started < 0.1
    assert err.value.errors[0].line == 1 and "anchors are not allowed" in err.value.errors[0].message


def test_the_trust_file_parser_refuses_anchors() -> None:
    from qingfeng.rpc.credentials import TrustConfigError, parse_trust

    with pytest.raises(TrustConfigError, match=r"^trust.yaml: line 1: anchors are not allowed"):
        parse_trust("version: &v 1\nissuers: []\n", source="trust.yaml")


def test_the_grading_policy_loader_refuses_oversized_text() -> None:
    from services.grader.adapters.policy_yaml import MAX_POLICY_BYTES, PolicyLoadError, load_policy

    with pytest.raises(PolicyLoadError, match=f"larger than {MAX_POLICY_BYTES} bytes"):
        load_policy("kind: grading-policy\n" + "# padding\n" * (MAX_POLICY_BYTES // 10), source="big.yaml")
