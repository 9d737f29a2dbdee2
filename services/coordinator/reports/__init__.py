"""Reports of the coordinator: the rapid report (舆情快报, 第N期) per case and the joint meeting's statistics.

Self-contained: it imports nothing of the coordinator, and the coordinator fills the values from its own records.

Build the values (``model``; frozen, validated on construction, ``InvalidReport`` names the bad field)::

    report = RapidReport(
        issue_number=12, issued_on=date(2026, 11, 30), case_id="case-42", title="某局长被举报收受贿赂",
        summary=(Claim("网民发帖举报某局长收受贿赂", ("p1", "p7")),),           # every claim cites >= 1 post id
        level=LevelAssessment(WarningLevel.ORANGE, reasons=(Claim("两小时内转发超过五千次", ("p1",)),)),
        timeline=(TimelineEntry(at=aware_datetime, claim=Claim("首帖发布", ("p1",))),),
        key_posts=(KeyPost("p1", author="某网友", text="……", reach=5321),),
        disposition=Disposition(DispositionKind.NEEDS_INVESTIGATION, actions=("已转核查",)),
        next_steps=("24小时内发布调查进展",),
    )

``LevelAssessment(..., scheme=LevelScheme.THREE_TIER)`` labels the level 一般/较大/重大 instead of 蓝/黄/橙/红.
``StatisticsReport`` (with ``LevelCount``, ``ClockStatistics`` for the 2 h golden period and the 24 h refutation
clock, ``OverdueTask``, ``ReportedItem``, ``InstructionRecord``) is the periodic statistics for the joint meeting.

Render them (times shown in Beijing time unless ``tz=`` says otherwise):

- ``render_rapid_report_html(report) -> str`` and ``render_statistics_html(report) -> str``: complete HTML
  documents (inline A4 print CSS, all text escaped, no external resources); cheap, pure, no system dependency.
- ``render_rapid_report_pdf(report) -> bytes`` and ``render_statistics_pdf(report) -> bytes``: WeasyPrint, fonts
  "Noto Serif CJK SC" / "Noto Sans CJK SC" (Debian ``fonts-noto-cjk``). CPU-bound and synchronous: from async
  code call ``render_rapid_report_pdf_async`` / ``render_statistics_pdf_async`` (a worker thread). They raise
  ``FontsMissing`` when the fonts are not installed and ``MissingGlyphs`` when a letter or digit has no glyph in
  any installed font, rather than return a PDF with boxes (a missing emoji or other symbol is only logged); both are
  ``PdfRenderError`` (map to INTERNAL). ``html_to_pdf`` / ``html_to_pdf_async`` render any self-contained HTML.
- ``check_fonts()`` raises ``FontsMissing`` early, e.g. from a health check at start-up.
"""

from services.coordinator.reports.errors import (
    FontsMissing,
    InvalidReport,
    MissingGlyphs,
    PdfRenderError,
    ReportError,
)
from services.coordinator.reports.html import render_rapid_report_html, render_statistics_html
from services.coordinator.reports.model import (
    Claim,
    ClockStatistics,
    Disposition,
    DispositionKind,
    InstructionRecord,
    KeyPost,
    LevelAssessment,
    LevelCount,
    LevelScheme,
    OverdueTask,
    RapidReport,
    ReportedItem,
    ResponseClock,
    StatisticsReport,
    TimelineEntry,
    WarningLevel,
    level_label,
)
from services.coordinator.reports.pdf import (
    check_fonts,
    html_to_pdf,
    html_to_pdf_async,
    render_rapid_report_pdf,
    render_rapid_report_pdf_async,
    render_statistics_pdf,
    render_statistics_pdf_async,
)

__all__ = [
    "Claim",
    "ClockStatistics",
    "Disposition",
    "DispositionKind",
    "FontsMissing",
    "InstructionRecord",
    "InvalidReport",
    "KeyPost",
    "LevelAssessment",
    "LevelCount",
    "LevelScheme",
    "MissingGlyphs",
    "OverdueTask",
    "PdfRenderError",
    "RapidReport",
    "ReportError",
    "ReportedItem",
    "ResponseClock",
    "StatisticsReport",
    "TimelineEntry",
    "WarningLevel",
    "check_fonts",
    "html_to_pdf",
    "html_to_pdf_async",
    "level_label",
    "render_rapid_report_html",
    "render_rapid_report_pdf",
    "render_rapid_report_pdf_async",
    "render_statistics_html",
    "render_statistics_pdf",
    "render_statistics_pdf_async",
]
