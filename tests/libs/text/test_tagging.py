from __future__ import annotations

import pytest
from qingfeng.text import Enricher, Lexicons, Tagger, prepare


@pytest.fixture(scope="module")
def tagger(lexicons: Lexicons) -> Tagger:
    return Tagger(lexicons)


@pytest.mark.parametrize(
    ("text", "corruption", "officials", "offline", "primary_region"),
    [
        (
            "临沂市委书记贪污受贿被双规，数百名群众聚集上访",
            {"embezzlement", "bribery_taking", "discipline"},
            {"市委书记"},
            {"聚集", "上访"},
            "371300",
        ),
        ("廣州市公安局長公車私用，超標準接待上級領導", {"eight_rules"}, {"公安局长"}, set(), "440100"),
        ("某县县长包养情妇，收受贿赂300万元", {"conduct", "bribery_taking"}, {"县长"}, set(), None),
        ("村支书挪用扶贫款，村民拉横幅堵路讨说法", {"misappropriation"}, {"村支书"}, {"拉横幅", "堵路"}, None),
        ("深圳某局长落马，纪委通报其滥用职权", {"discipline", "abuse_of_power"}, {"局长"}, set(), "440300"),
        ("工人罢工讨薪，在厂门口静坐示威", set(), set(), {"罢工", "讨薪", "静坐", "示威"}, None),
        ("今天天气不错，和朋友去公园吃了烤鸭", set(), set(), set(), None),
        ("买官卖官、带病提拔问题突出", {"personnel"}, set(), set(), None),
    ],
)
def test_tags_realistic_sentences(
    tagger: Tagger, text: str, corruption: set[str], officials: set[str], offline: set[str], primary_region: str | None
) -> None:
    tags = tagger.tag(prepare(text))
    assert set(tags.corruption_categories) == corruption
    assert {h.term for h in tags.officials} == officials
    assert {h.term for h in tags.offline} == offline
    assert tags.primary_region == primary_region


def test_corruption_terms_by_category(tagger: Tagger) -> None:
    tags = tagger.tag("他贪污公款又受贿，还收受红包")
    assert tags.corruption_by_category() == {"embezzlement": ("贪污",), "bribery_taking": ("受贿", "收受红包")}
    assert [h.start for h in tags.corruption] == [1, 6, 10]


@pytest.mark.parametrize(
    ("text", "codes", "primary"),
    [
        ("广东深圳发生一起冲突", ("440000", "440300"), "440300"),  # the city is the 属地
        ("深圳市民反映", ("440000", "440300"), "440300"),
        ("湖南人在深圳打工", ("430000", "440000", "440300"), "440300"),  # most specific wins over the province
        ("广州和深圳，深圳更热", ("440000", "440100", "440300"), "440300"),  # then the most mentioned
        ("广州和深圳", ("440000", "440100", "440300"), "440100"),  # then the first mentioned
        ("北京市海淀区", ("110000",), "110000"),
        ("吉林的冬天很冷", ("220000",), "220000"),  # 吉林 alone is the province
        ("吉林市的冬天很冷", ("220000", "220200"), "220200"),
        ("内蒙古鄂尔多斯", ("150000", "150600"), "150600"),
        ("香港和澳门", ("810000", "820000"), "810000"),
    ],
)
def test_regions(tagger: Tagger, text: str, codes: tuple[str, ...], primary: str) -> None:
    tags = tagger.tag(text)
    assert tags.region_codes == codes
    assert tags.primary_region == primary


@pytest.mark.parametrize(
    "text",
    [
        "祝祖国长治久安",  # 长治 is only matched as 长治市
        "世界大同",  # 大同市
        "夸下海口",  # 海口市
        "他家住在朝阳",  # 朝阳市 (and a Beijing district)
        "来宾请入座",  # 来宾市
        "北京时间昨晚八点",  # a time zone
        "阿里巴巴中国站",  # 巴中 inside 阿里巴巴中国
        "德州扑克",  # 德州 is also Texas
    ],
)
def test_ambiguous_short_names_are_not_regions(tagger: Tagger, text: str) -> None:
    assert tagger.tag(text).regions == ()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("南京市长江大桥", "officials"),  # not the mayor of Nanjing
        ("陈女士被查出身患白血病", "corruption"),  # diagnosed, not investigated
        ("班主任找家长谈话", "officials"),
        ("这部电影视觉冲击很强", "offline"),
        ("党内爆炸性新闻", "offline"),
    ],
)
def test_excluded_phrases_shadow_terms(tagger: Tagger, text: str, kind: str) -> None:
    assert getattr(tagger.tag(text), kind) == ()


def test_overlapping_kinds_are_all_found(tagger: Tagger) -> None:
    tags = tagger.tag("临沂市委书记")
    assert [h.term for h in tags.regions] == ["临沂市"]
    assert [h.term for h in tags.officials] == ["市委书记"]


def test_empty_and_untagged_text(tagger: Tagger) -> None:
    for text in ("", "哈哈哈", "转发微博"):
        tags = tagger.tag(text)
        assert tags.is_empty
        assert tags.region_codes == ()
        assert tags.primary_region is None


def test_traditional_text_is_tagged_after_prepare(enricher: Enricher) -> None:
    result = enricher.enrich("紀委書記貪污受賄")
    assert result.simplified == "纪委书记贪污受贿"
    assert result.tags.corruption_categories == ("discipline", "embezzlement", "bribery_taking")
    assert [h.term for h in result.tags.officials] == ["书记"]
