"""The HTML documents: complete, Chinese, every claim followed by its posts, all text escaped, nothing external."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest

from services.coordinator.reports import (
    LevelAssessment,
    LevelScheme,
    RapidReport,
    StatisticsReport,
    render_rapid_report_html,
    render_statistics_html,
)
from tests.services.coordinator.reports.samples import SCRIPT_POST, TITLE


class _Outline(HTMLParser):
    """Tags, their attributes, and the text of the document, as a browser would parse it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data
        else:
            self.text.append(data)


def _outline(document: str) -> _Outline:
    parser = _Outline()
    parser.feed(document)
    parser.close()
    return parser


def _assert_self_contained(outline: _Outline) -> None:
    names = [tag for tag, _ in outline.tags]
    assert "script" not in names
    assert "link" not in names and "img" not in names and "iframe" not in names
    for tag, attrs in outline.tags:
        assert "src" not in attrs, tag
        href = attrs.get("href")
        assert href is None or href.startswith("#"), (tag, href)
    assert "url(" not in outline.style and "@import" not in outline.style


def test_rapid_report_is_a_complete_chinese_document(rapid_report: RapidReport) -> None:
    document = render_rapid_report_html(rapid_report)
    assert document.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in document and '<meta charset="utf-8">' in document
    assert document.rstrip().endswith("</html>")
    outline = _outline(document)
    assert "size: A4" in outline.style
    assert "Noto Serif CJK SC" in outline.style and "Noto Sans CJK SC" in outline.style
    text = "".join(outline.text)
    for expected in ("舆情快报", "第12期", TITLE, "case-2026-0042", "舆情信息办公室", "2026年11月30日", "内部资料"):
        assert expected in text, expected
    for heading in ("一、基本情况", "二、预警等级", "三、事件经过", "四、关键帖文", "五、处置情况", "六、下一步工作"):
        assert heading in text, heading
    assert "橙色预警（严重）" in text
    assert "需调查核实，定期发布进展" in text and "已转交核查组核实" in text
    assert "24小时内发布调查进展" in text
    assert "5,321" in text
    _assert_self_contained(outline)


def test_every_claim_is_followed_by_the_posts_it_cites(rapid_report: RapidReport) -> None:
    text = "".join(_outline(render_rapid_report_html(rapid_report)).text)
    for claim in (*rapid_report.summary, *rapid_report.level.reasons):
        assert f"{claim.text}［依据：{'、'.join(claim.post_ids)}］" in text, claim.text
    for entry in rapid_report.timeline:
        assert f"{entry.claim.text}［依据：{'、'.join(entry.claim.post_ids)}］" in text


def test_citations_link_to_the_key_posts(rapid_report: RapidReport) -> None:
    outline = _outline(render_rapid_report_html(rapid_report))
    anchors = {attrs["id"] for _, attrs in outline.tags if attrs.get("id")}
    links = [attrs["href"] for tag, attrs in outline.tags if tag == "a"]
    assert links, "claims cite posts listed in the report, so there are links"
    assert all(link is not None and link[1:] in anchors for link in links)
    # A cited post that is not among the key posts is still named, just not linked.
    report = dataclasses.replace(rapid_report, key_posts=rapid_report.key_posts[:1])
    text = "".join(_outline(render_rapid_report_html(report)).text)
    assert "［依据：news-7］" in text


def test_post_text_is_escaped(rapid_report: RapidReport) -> None:
    document = render_rapid_report_html(rapid_report)
    assert "<script>" not in document
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; 局长 &amp; 开发商" in document
    outline = _outline(document)
    assert "script" not in [tag for tag, _ in outline.tags]
    assert SCRIPT_POST in "".join(outline.text)  # shown to the reader exactly as posted


def test_markup_in_every_field_is_escaped(rapid_report: RapidReport) -> None:
    evil = '"><img src=x onerror=alert(1)>'
    report = dataclasses.replace(rapid_report, title=evil, case_id=evil, issuer=evil, next_steps=(evil,))
    document = render_rapid_report_html(report)
    assert "<img" not in document
    _assert_self_contained(_outline(document))


def test_timeline_in_time_order_and_beijing_time(rapid_report: RapidReport) -> None:
    text = "".join(_outline(render_rapid_report_html(rapid_report)).text)
    # 02:05 UTC and 03:40 UTC are 10:05 and 11:40 in Beijing; the later entry was given first.
    first, second = text.index("11月30日 10:05"), text.index("11月30日 11:40")
    assert first < second


def test_three_tier_scheme_label(rapid_report: RapidReport) -> None:
    level = LevelAssessment(rapid_report.level.level, rapid_report.level.reasons, scheme=LevelScheme.THREE_TIER)
    text = "".join(_outline(render_rapid_report_html(dataclasses.replace(rapid_report, level=level))).text)
    assert "预警等级：重大" in text and "橙色预警" not in text


def _rows(document: str, heading: str) -> str:
    """The text of one section, from its heading to the next one."""
    text = "".join(_outline(document).text)
    start = text.index(heading)
    following = re.search(r"[一二三四五六七八九十]、", text[start + len(heading) :])
    return text[start : start + len(heading) + following.start()] if following else text[start:]


def test_statistics_document(statistics_report: StatisticsReport) -> None:
    document = render_statistics_html(statistics_report)
    outline = _outline(document)
    _assert_self_contained(outline)
    text = "".join(outline.text)
    assert "统计期间：2026年10月1日至2026年12月31日" in text
    assert "本期共新增舆情案件21件，逾期任务1项，报送上级2件，领导批示1件。" in text
    levels = _rows(document, "一、案件分级统计")
    assert "橙色预警（严重）" in levels and "合计" in levels
    clocks = _rows(document, "二、响应时限")
    assert "黄金期首次回应" in clocks and "2小时" in clocks and "1小时25分钟" in clocks and "3小时10分钟" in clocks
    assert "86%" in clocks  # 6 of 7 measured cases on time
    assert "谣言澄清辟谣" in clocks and "24小时" in clocks
    overdue = _rows(document, "三、逾期任务及督办")
    # due 02:00 UTC, generated 08:00 UTC: six hours late; the agency is named in Chinese.
    assert "公安网安" in overdue and "6小时" in overdue and "已提醒" in overdue
    reported = _rows(document, "四、报送上级情况")
    assert "未签收" in reported and "纪委副书记" in reported and "11月30日 09:30" in reported
    instructions = _rows(document, "五、领导批示")
    assert "请迅速核实，依纪依法处理，及时回应社会关切。" in instructions and "纪委书记" in instructions


def test_statistics_empty_sections_say_none(statistics_report: StatisticsReport) -> None:
    report = dataclasses.replace(statistics_report, overdue_tasks=(), instructions=())
    assert "无。" in _rows(render_statistics_html(report), "三、逾期任务及督办")
    assert "无。" in _rows(render_statistics_html(report), "五、领导批示")


@pytest.mark.parametrize("scheme", list(LevelScheme))
def test_statistics_follow_the_scheme(statistics_report: StatisticsReport, scheme: LevelScheme) -> None:
    levels = _rows(render_statistics_html(dataclasses.replace(statistics_report, scheme=scheme)), "一、案件分级统计")
    assert ("较大" in levels) == (scheme is LevelScheme.THREE_TIER)
    assert ("黄色预警（较重）" in levels) == (scheme is LevelScheme.FOUR_COLOR)


def test_long_durations_in_days(statistics_report: StatisticsReport) -> None:
    clock = dataclasses.replace(statistics_report.clocks[1], met=1, worst=timedelta(days=4, hours=2, minutes=1))
    report = dataclasses.replace(statistics_report, clocks=(statistics_report.clocks[0], clock))
    clocks = _rows(render_statistics_html(report), "二、响应时限")
    assert "4天2小时1分钟" in clocks and "24小时" in clocks
