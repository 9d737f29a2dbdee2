from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from qingfeng.text import Enricher, LexiconError, Lexicons, load_lexicons

# Province-level division → its capital, by GB/T 2260 code (the four municipalities are their own capital).
CAPITALS = {
    "130000": "130100", "140000": "140100", "150000": "150100", "210000": "210100", "220000": "220100",
    "230000": "230100", "320000": "320100", "330000": "330100", "340000": "340100", "350000": "350100",
    "360000": "360100", "370000": "370100", "410000": "410100", "420000": "420100", "430000": "430100",
    "440000": "440100", "450000": "450100", "460000": "460100", "510000": "510100", "520000": "520100",
    "530000": "530100", "540000": "540100", "610000": "610100", "620000": "620100", "630000": "630100",
    "640000": "640100", "650000": "650100",
}  # fmt: skip


def test_builtin_lexicons_load(lexicons: Lexicons) -> None:
    assert "corruption@" in lexicons.version and "relevance@" in lexicons.version
    assert {
        "embezzlement",
        "bribery_taking",
        "bribery_giving",
        "extortion",
        "misappropriation",
        "abuse_of_power",
        "dereliction",
        "eight_rules",
        "conduct",
        "personnel",
        "discipline",
    } <= set(lexicons.corruption.categories)
    for category in (
        *lexicons.corruption.categories.values(),
        *lexicons.officials.categories.values(),
        *lexicons.offline.categories.values(),
    ):
        assert 0 < category.weight <= 1 and category.terms and category.label


def test_required_vocabulary_is_present(lexicons: Lexicons) -> None:
    corruption = lexicons.corruption.term_index()
    for term in (
        "贪污",
        "受贿",
        "行贿",
        "索贿",
        "挪用公款",
        "滥用职权",
        "公款吃喝",
        "公车私用",
        "超标准接待",
        "包养情妇",
        "纪委",
        "双规",
        "留置",
        "落马",
        "被查",
        "巨贪",
        "贪官",
        "腐败",
        "反腐",
        "贪腐",
    ):
        assert term in corruption, term
    officials = lexicons.officials.term_index()
    for term in (
        "书记",
        "副书记",
        "市长",
        "局长",
        "处长",
        "科长",
        "县长",
        "镇长",
        "村支书",
        "主任",
        "厅长",
        "部长",
        "干部",
        "官员",
    ):
        assert term in officials, term
    offline = lexicons.offline.term_index()
    for term in (
        "聚集",
        "上访",
        "游行",
        "围堵",
        "静坐",
        "罢工",
        "堵路",
        "冲击",
        "集会",
        "示威",
        "维权",
        "拉横幅",
        "跳楼",
    ):
        assert term in offline, term


def test_regions_cover_provinces_capitals_and_cities(lexicons: Lexicons) -> None:
    regions = lexicons.regions
    provinces = [r for r in regions.values() if r.level == "province"]
    prefectures = [r for r in regions.values() if r.level == "prefecture"]
    assert len(provinces) == 34
    assert len(prefectures) >= 100
    for province, capital in CAPITALS.items():
        assert regions[capital].province_code == province
    assert regions["440300"].name == "深圳市" and "深圳" in regions["440300"].aliases
    assert regions["110000"].aliases == ("北京",)
    for region in regions.values():
        assert region.province_code in regions


def _write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_extension_adds_terms_categories_regions_and_stopwords(tmp_path: Path) -> None:
    extra = _write(
        tmp_path,
        "local.yaml",
        """\
        kind: corruption
        version: "7"
        categories:
          embezzlement:
            terms: [套取惠農補貼]
          land:
            label: 土地
            weight: 0.5
            terms: [违规征地, 非法占地]
        """,
    )
    regions = _write(
        tmp_path,
        "districts.yaml",
        """\
        kind: region
        version: "1"
        regions:
          - {code: 440304, name: 福田区, aliases: [福田]}
          - {code: "440300", name: 深圳市, aliases: [鹏城]}
        """,
    )
    stop = _write(tmp_path, "stop.yaml", 'kind: stopwords\nversion: "1"\nwords: [网友]\n')
    lex = load_lexicons([extra, regions, stop])
    assert lex.version.endswith("+local.yaml@7;+districts.yaml@1;+stop.yaml@1")
    assert "套取惠农补贴" in lex.corruption.categories["embezzlement"].terms  # normalised to simplified
    assert lex.corruption.categories["land"].weight == 0.5
    assert "鹏城" in lex.regions["440300"].aliases
    assert "网友" in lex.stopwords

    tags = Enricher(lex).enrich("鹏城福田区有人违规征地").tags
    assert tags.corruption_categories == ("land",)
    assert tags.region_codes == ("440000", "440300", "440304")
    assert tags.primary_region == "440304"


BAD_FILES = [
    (
        "weight.yaml",
        'kind: offline\nversion: "1"\ncategories:\n  x:\n    label: X\n    weight: 1.5\n    terms: [a]\n',
        "categories.x.weight",
    ),
    ("nokind.yaml", 'version: "1"\nwords: [a]\n', "kind"),
    ("badkind.yaml", 'kind: spam\nversion: "1"\n', "kind"),
    ("list.yaml", "- a\n- b\n", "<root>"),
    ("syntax.yaml", "kind: [unclosed\n", "<yaml>"),
    ("version.yaml", "kind: stopwords\nversion: 3\nwords: [a]\n", "version"),
    (
        "newcat.yaml",
        'kind: corruption\nversion: "1"\ncategories:\n  brand_new:\n    terms: [某词]\n',
        "categories.brand_new.label",
    ),
    (
        "clash.yaml",
        'kind: corruption\nversion: "1"\ncategories:\n  conduct:\n    terms: [受贿]\n',
        "categories.conduct.terms[0]",
    ),
    (
        "space.yaml",
        'kind: official\nversion: "1"\ncategories:\n  generic:\n    terms: ["市 长"]\n',
        "categories.generic.terms",
    ),
    ("extra.yaml", 'kind: stopwords\nversion: "1"\nwords: [a]\ncolour: red\n', "colour"),
    ("code.yaml", 'kind: region\nversion: "1"\nregions:\n  - {code: "12345", name: 某地}\n', "regions[0].code"),
    ("orphan.yaml", 'kind: region\nversion: "1"\nregions:\n  - {code: "990100", name: 某市}\n', "regions[0].code"),
    (
        "alias.yaml",
        'kind: region\nversion: "1"\nregions:\n  - {code: "440400", name: 珠海市, aliases: [广州]}\n',
        "regions[0].aliases[0]",
    ),
    ("rename.yaml", 'kind: region\nversion: "1"\nregions:\n  - {code: "440300", name: 鹏城市}\n', "regions[0].name"),
    (
        "exclude.yaml",
        'kind: corruption\nversion: "1"\ncategories:\n  general:\n    terms: [腐化]\nexclude: [贪污]\n',
        "exclude[0]",
    ),
    ("weights.yaml", 'kind: relevance\nversion: "1"\nweights: {official: 0.1}\n', "weights.corruption_scale"),
]


@pytest.mark.parametrize(("name", "body", "field"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_invalid_files_name_the_file_and_field(tmp_path: Path, name: str, body: str, field: str) -> None:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    with pytest.raises(LexiconError) as info:
        load_lexicons([path])
    assert info.value.path == str(path)
    assert info.value.field == field
    assert str(path) in str(info.value) and field in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(LexiconError, match="cannot read") as info:
        load_lexicons([missing])
    assert info.value.field == "<file>"


def test_relevance_policy_can_be_replaced(tmp_path: Path, enricher: Enricher) -> None:
    policy = _write(
        tmp_path,
        "policy.yaml",
        """\
        kind: relevance
        version: "strict-1"
        weights: {corruption_scale: 0.5, official: 0, official_corruption: 0, offline: 0, offline_corruption: 0,
                  region: 0, region_corruption: 0}
        """,
    )
    strict = Enricher(load_lexicons([policy]))
    text = "广州市长受贿"
    assert strict.enrich(text).relevance.score == 0.3
    assert strict.enrich(text).relevance.policy_version == "strict-1"
    assert enricher.enrich(text).relevance.score > 0.3
