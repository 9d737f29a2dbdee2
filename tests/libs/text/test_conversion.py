from __future__ import annotations

import pytest
from qingfeng.text import content_hash, normalize_for_hash, normalize_width, prepare, strip_noise, to_simplified


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("貪污受賄", "贪污受贿"),
        ("紀委書記被雙規", "纪委书记被双规"),
        ("挪用公款，濫用職權", "挪用公款，滥用职权"),
        ("臺灣", "台湾"),
        ("贪污受贿", "贪污受贿"),  # already simplified: unchanged
        ("plain ascii", "plain ascii"),
        ("", ""),
    ],
)
def test_to_simplified(raw: str, expected: str) -> None:
    assert to_simplified(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "ABC123"),  # full-width ASCII to half-width
        ("ｈｔｔｐ：／／ｔ．ｃｎ", "http：//t.cn"),  # the colon is Chinese prose punctuation and stays
        ("中\u3000文", "中 文"),  # ideographic space
        ("\u2f26\u2f00", "子一"),  # Kangxi radicals used to dodge filters
        ("你好，世界！（测试）？", "你好，世界！（测试）？"),  # prose punctuation is kept
        ("已经是普通文本", "已经是普通文本"),
    ],
)
def test_normalize_width(raw: str, expected: str) -> None:
    assert normalize_width(raw) == expected


def test_prepare_converts_width_then_script() -> None:
    assert prepare("貪污ＡＢＣ") == "贪污ABC"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("市委书记贪污受贿 http://t.cn/abc123", "市委书记贪污受贿"),
        ("//@张三:市委书记贪污受贿", "市委书记贪污受贿"),
        ("@李四 市委书记贪污受贿", "市委书记贪污受贿"),
        ("回复@王五:市委书记贪污受贿", "市委书记贪污受贿"),
        ("市委書記貪污受賄！！！", "市委书记贪污受贿"),
        ("市委书记 贪污 受贿[怒][抓狂]", "市委书记贪污受贿"),
        ("转发微博 市委书记贪污受贿", "市委书记贪污受贿"),
        ("ＡＢＣ市委书记", "abc市委书记"),
    ],
)
def test_normalize_for_hash_equates_copies(a: str, b: str) -> None:
    assert normalize_for_hash(a) == normalize_for_hash(b)
    assert content_hash(normalize_for_hash(a)) == content_hash(normalize_for_hash(b))


@pytest.mark.parametrize("empty", ["", "转发微博", "  ", "[哈哈][哈哈]", "http://t.cn/x @某人", "！！！。。。"])
def test_normalize_for_hash_of_boilerplate_is_empty(empty: str) -> None:
    assert normalize_for_hash(empty) == ""


def test_normalize_for_hash_keeps_chinese_after_url() -> None:
    assert normalize_for_hash("原文出处http://sinaurl.cn/hbYI50临沂") == "原文出处临沂"


def test_normalize_for_hash_simplified_flag_skips_conversion() -> None:
    assert normalize_for_hash("貪污", simplified=True) == "貪污"
    assert normalize_for_hash("貪污") == "贪污"


def test_content_hash_is_stable_hex() -> None:
    digest = content_hash("贪污受贿")
    assert len(digest) == 32
    assert digest == content_hash("贪污受贿")
    assert digest != content_hash("贪污受贿罪")


def test_strip_noise_keeps_text_and_punctuation() -> None:
    assert strip_noise("看这个 http://t.cn/abc 太气人了！[怒]@某人") == "看这个  太气人了！"
