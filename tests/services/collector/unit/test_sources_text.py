from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.collector.sources.text import html_to_text
from services.collector.sources.timeparse import parse_time

NOW = datetime(2024, 5, 1, 4, 0, tzinfo=UTC)  # 12:00 in Beijing
CST = timezone(timedelta(hours=8))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tue May 31 17:46:55 +0800 2011", datetime(2011, 5, 31, 17, 46, 55, tzinfo=CST)),
        ("Mon, 06 Sep 2021 16:45:00 GMT", datetime(2021, 9, 6, 16, 45, tzinfo=UTC)),
        ("Mon, 06 Sep 2021 16:45:00 -0000", datetime(2021, 9, 6, 16, 45, tzinfo=UTC)),
        ("Sat, 1 Jan 2000 00:00:00 +0800", datetime(2000, 1, 1, tzinfo=CST)),
        ("2012-09-13T08:38:09+08:00", datetime(2012, 9, 13, 8, 38, 9, tzinfo=CST)),
        ("2024-05-03T08:00:00.000Z", datetime(2024, 5, 3, 8, tzinfo=UTC)),
        ("2024-05-01 12:30", datetime(2024, 5, 1, 12, 30, tzinfo=CST)),  # no zone: Beijing time
        ("2024年5月1日 12时30分", datetime(2024, 5, 1, 12, 30, tzinfo=CST)),
        ("发布时间：2024/05/01 08:05:09 来源：清河日报", datetime(2024, 5, 1, 8, 5, 9, tzinfo=CST)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        ("3分钟前", NOW - timedelta(minutes=3)),
        ("2小时前", NOW - timedelta(hours=2)),
        ("昨天 08:15", datetime(2024, 4, 30, 8, 15, tzinfo=CST)),
        ("刚刚", NOW),
        ("上周某天", None),
        ("2024-13-45 10:00", None),
        ("", None),
    ],
)
def test_parse_time(text: str, expected: datetime | None) -> None:
    parsed = parse_time(text, now=NOW)
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


def test_configured_format_first() -> None:
    assert parse_time("01/05/2024 10h", fmt="%d/%m/%Y %Hh") == datetime(2024, 5, 1, 10, tzinfo=CST)


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>你好<b>世界</b></p><p>第二段&amp;<br>换行</p>", "你好世界\n第二段&\n换行"),
        ("<ul><li>一</li><li>二</li></ul><script>x()</script><style>p{}</style>", "一\n二"),
        ("纯文本　 有全角空格 &lt;不是标签&gt;", "纯文本 有全角空格 <不是标签>"),
        ("<div>未闭合<p>段落<div>", "未闭合\n段落"),
        ("<div>" * 3000 + "深", "深"),  # deep nesting from broken markup: no recursion limit
    ],
)
def test_html_to_text(markup: str, text: str) -> None:
    assert html_to_text(markup) == text
