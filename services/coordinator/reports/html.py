"""Render the reports as complete, self-contained HTML documents (Chinese, A4 print CSS, no external resources).

Every piece of text from a report passes through ``_e`` (HTML escaping, quotes included), so a post that contains
markup is shown as text and never becomes part of the document. Times are shown in Beijing time unless told
otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta, timezone, tzinfo
from html import escape

from services.coordinator.reports._style import STYLESHEET
from services.coordinator.reports.model import (
    CLOCK_LABELS,
    Claim,
    ClockStatistics,
    InstructionRecord,
    KeyPost,
    LevelCount,
    OverdueTask,
    RapidReport,
    ReportedItem,
    StatisticsReport,
    level_label,
)

BEIJING = timezone(timedelta(hours=8), "北京时间")

AGENCY_LABELS: Mapping[str, str] = {
    "opinion_office": "舆情信息办公室",
    "discipline_commission": "纪委监委",
    "propaganda": "宣传部",
    "police_cyber": "公安网安",
    "petitions": "信访局",
    "daily_newspaper": "日报社",
    "telecom_regulator": "工信局/通信管理局",
    "case_management": "案件管理",
    "channel_operator": "官方账号运营",
    "analyst": "分析人员",
}
_NUMERALS = "一二三四五六七八九十"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _cn_time(moment: datetime, tz: tzinfo) -> str:
    """Month, day and minute in ``tz``, kept on one line in a table cell."""
    local = moment.astimezone(tz)
    return f'<span class="time">{local.month}月{local.day}日 {local:%H:%M}</span>'


def _cn_duration(span: timedelta) -> str:
    minutes = max(0, round(span.total_seconds() / 60))
    # Clocks are hours in the source documents ("24小时内辟谣"), so days only start beyond three of them.
    days, rest = divmod(minutes, 24 * 60) if minutes >= 72 * 60 else (0, minutes)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}天" if days else "", f"{hours}小时" if hours else "", f"{mins}分钟" if mins else ""]
    return "".join(parts) or "0分钟"


def _agency(agency: str) -> str:
    return AGENCY_LABELS.get(agency, agency)


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLESHEET}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def _section(number: int, heading: str, content: str) -> str:
    return f"<section>\n<h2>{_NUMERALS[number - 1]}、{_e(heading)}</h2>\n{content}</section>\n"


def _cell(tag: str, content: str, *, numeric: bool) -> str:
    align = ' class="num"' if numeric else ""
    return f"<{tag}{align}>{content}</{tag}>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], *, numeric: frozenset[int] = frozenset()) -> str:
    """A table; cells are already-escaped HTML. Columns in ``numeric`` are right-aligned."""
    head = "".join(_cell("th", _e(h), numeric=i in numeric) for i, h in enumerate(headers))
    lines = [
        "<tr>" + "".join(_cell("td", cell, numeric=i in numeric) for i, cell in enumerate(row)) + "</tr>"
        for row in rows
    ]
    if not lines:
        return '<p class="empty">无。</p>\n'
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(lines) + "\n</tbody>\n</table>\n"


# --- rapid report ---------------------------------------------------------------------------------------------------


class _Citations:
    """Turns cited post ids into links to the key-post table when the post is listed there."""

    def __init__(self, key_posts: tuple[KeyPost, ...]) -> None:
        self._anchor = {post.post_id: f"kp{index}" for index, post in enumerate(key_posts, start=1)}

    def anchor(self, post_id: str) -> str:
        return self._anchor[post_id]

    def cite(self, claim: Claim) -> str:
        refs = [
            f'<a href="#{self._anchor[post_id]}">{_e(post_id)}</a>' if post_id in self._anchor else _e(post_id)
            for post_id in claim.post_ids
        ]
        return f'<span class="cite">［依据：{"、".join(refs)}］</span>'

    def claim(self, claim: Claim) -> str:
        return f"{_e(claim.text)}{self.cite(claim)}"


def render_rapid_report_html(report: RapidReport, *, tz: tzinfo = BEIJING) -> str:
    """The rapid report (舆情快报, 第N期) as one HTML document; every claim is followed by the posts it cites."""
    cites = _Citations(report.key_posts)
    level = report.level
    body = [
        '<div class="masthead">舆情快报</div>\n',
        f'<div class="issue">第{report.issue_number}期</div>\n',
        '<div class="meta">',
        f"<span>{_e(report.issuer)}</span>",
        '<span class="restricted">内部资料 注意保密</span>' if report.restricted else "",
        f"<span>{_cn_date(report.issued_on)}</span>",
        "</div>\n",
        f"<h1>{_e(report.title)}</h1>\n",
        f'<p class="meta-case">案件编号：<span class="docref">{_e(report.case_id)}</span></p>\n',
    ]
    summary = "".join(f"<p>{cites.claim(claim)}</p>\n" for claim in report.summary)
    reasons = "".join(f"<li>{cites.claim(reason)}</li>\n" for reason in level.reasons)
    level_html = (
        f'<p>预警等级：<span class="level-badge level-{level.level.value}">{_e(level.label)}</span></p>\n'
        f"<p>定级依据：</p>\n<ol>\n{reasons}</ol>\n"
    )
    timeline = _table(
        ("时间", "经过", "依据"),
        (
            (_cn_time(entry.at, tz), _e(entry.claim.text), cites.cite(entry.claim))
            for entry in sorted(report.timeline, key=lambda entry: entry.at)
        ),
    )
    posts = _table(
        ("编号", "作者", "平台", "发布时间", "内容", "传播量"),
        (
            (
                f'<span id="{cites.anchor(post.post_id)}">{_e(post.post_id)}</span>',
                _e(post.author),
                _e(post.platform or "—"),
                _cn_time(post.published_at, tz) if post.published_at else "—",
                f'<span class="post-text">{_e(post.text)}</span>',
                f"{post.reach:,}",
            )
            for post in report.key_posts
        ),
        numeric=frozenset({5}),
    )
    actions = "".join(f"<li>{_e(action)}</li>\n" for action in report.disposition.actions)
    disposition = f"<p>处置意见：{_e(report.disposition.label)}</p>\n" + (
        f"<ul>\n{actions}</ul>\n" if actions else '<p class="empty">尚无处置措施。</p>\n'
    )
    steps = "".join(f"<li>{_e(step)}</li>\n" for step in report.next_steps)
    next_steps = f"<ol>\n{steps}</ol>\n" if steps else '<p class="empty">无。</p>\n'
    body += [
        _section(1, "基本情况", summary),
        _section(2, "预警等级", level_html),
        _section(3, "事件经过", timeline),
        _section(4, "关键帖文", posts),
        _section(5, "处置情况", disposition),
        _section(6, "下一步工作", next_steps),
    ]
    return _document(f"舆情快报 第{report.issue_number}期 {report.title}", "".join(body))


# --- statistics for the joint meeting -------------------------------------------------------------------------------


def _level_rows(report: StatisticsReport) -> list[list[str]]:
    rows: list[list[str]] = []
    counts: tuple[LevelCount, ...] = report.cases_by_level
    for count in counts:
        label = f'<span class="level-badge level-{count.level.value}">{_e(level_label(count.level, report.scheme))}'
        rows.append([label + "</span>", str(count.opened), str(count.closed), str(count.open_at_end)])
    if counts:
        rows.append(
            [
                "<strong>合计</strong>",
                str(sum(c.opened for c in counts)),
                str(sum(c.closed for c in counts)),
                str(sum(c.open_at_end for c in counts)),
            ]
        )
    return rows


def _clock_row(stats: ClockStatistics) -> list[str]:
    ratio = "—" if stats.on_time_ratio is None else f"{stats.on_time_ratio:.0%}"
    missed = f'<span class="late">{stats.missed}</span>' if stats.missed else "0"
    return [
        _e(CLOCK_LABELS[stats.clock]),
        _cn_duration(stats.limit),
        str(stats.measured),
        str(stats.met),
        missed,
        str(stats.pending),
        ratio,
        "—" if stats.median is None else _cn_duration(stats.median),
        "—" if stats.worst is None else _cn_duration(stats.worst),
    ]


def _overdue_row(task: OverdueTask, now: datetime, tz: tzinfo) -> list[str]:
    late = _cn_duration(now - task.due_at) if now > task.due_at else "—"
    return [
        _e(task.task_id),
        _e(task.case_id),
        _e(_agency(task.agency)),
        _e(task.title),
        _cn_time(task.due_at, tz),
        f'<span class="late">{late}</span>',
        _e(task.supervision or "—"),
    ]


def _reported_row(item: ReportedItem, scheme_label: str, tz: tzinfo) -> list[str]:
    acknowledged = _cn_time(item.acknowledged_at, tz) if item.acknowledged_at else '<span class="late">未签收</span>'
    return [
        _e(item.case_id),
        _e(item.title),
        _e(scheme_label),
        _e(item.reported_to),
        _cn_time(item.reported_at, tz),
        acknowledged,
    ]


def _instruction_row(record: InstructionRecord, tz: tzinfo) -> list[str]:
    return [
        _e(record.case_id),
        _e(record.leader),
        _cn_time(record.given_at, tz),
        f'<span class="post-text">{_e(record.text)}</span>',
        str(record.tasks_created),
    ]


def render_statistics_html(report: StatisticsReport, *, tz: tzinfo = BEIJING) -> str:
    """The joint meeting's periodic statistics as one HTML document."""
    period = f"{_cn_date(report.period_start)}至{_cn_date(report.period_end)}"
    generated = report.generated_at.astimezone(tz)
    body = [
        '<div class="masthead">联席会议</div>\n',
        f'<div class="issue">{_e(report.title)}</div>\n',
        '<div class="meta">',
        f"<span>统计期间：{period}</span>",
        f"<span>{_cn_date(generated.date())} {generated:%H:%M} 生成</span>",
        "</div>\n",
        f"<p>本期共新增舆情案件{report.cases_opened}件，逾期任务{len(report.overdue_tasks)}项，"
        f"报送上级{len(report.reported_items)}件，领导批示{len(report.instructions)}件。</p>\n",
        _section(
            1,
            "案件分级统计",
            _table(("预警等级", "新增", "办结", "期末在办"), _level_rows(report), numeric=frozenset({1, 2, 3})),
        ),
        _section(
            2,
            "响应时限",
            _table(
                ("时限", "要求", "已计", "按时", "超时", "进行中", "按时率", "中位用时", "最长用时"),
                (_clock_row(stats) for stats in report.clocks),
                numeric=frozenset(range(1, 9)),
            ),
        ),
        _section(
            3,
            "逾期任务及督办",
            _table(
                ("任务", "案件", "责任单位", "内容", "期限", "已逾期", "督办"),
                (_overdue_row(task, report.generated_at, tz) for task in report.overdue_tasks),
            ),
        ),
        _section(
            4,
            "报送上级情况",
            _table(
                ("案件", "标题", "等级", "报送对象", "报送时间", "签收"),
                (_reported_row(item, level_label(item.level, report.scheme), tz) for item in report.reported_items),
            ),
        ),
        _section(
            5,
            "领导批示",
            _table(
                ("案件", "批示领导", "时间", "批示内容", "转化任务"),
                (_instruction_row(record, tz) for record in report.instructions),
                numeric=frozenset({4}),
            ),
        ),
    ]
    return _document(f"{report.title}（{period}）", "".join(body))
