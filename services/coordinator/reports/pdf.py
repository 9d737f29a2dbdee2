"""Render the report HTML to PDF bytes with WeasyPrint, in the Noto CJK fonts, refusing to draw missing glyphs.

Two guards keep a PDF from silently showing boxes (.notdef) instead of Chinese: before rendering, the Noto CJK
families must be known to fontconfig (else ``FontsMissing``); while rendering, WeasyPrint reports every character
no font could draw, and a missing letter or digit of any script fails the render (``MissingGlyphs``). A missing
symbol (an emoji in a quoted post, say) is only logged: it carries no fact, and a report must not fail over it.

WeasyPrint is synchronous and CPU-bound (tens of milliseconds per page with HarfBuzz subsetting, seconds without
Debian's ``libharfbuzz-subset0``), so async callers use the ``*_async`` functions, which run it in a worker thread.
Renders are serialised by a lock: WeasyPrint does not promise thread safety, the GIL gives no parallelism for this
work anyway, and the glyph check listens on WeasyPrint's process-wide logger.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import unicodedata
from datetime import tzinfo
from types import ModuleType

from services.coordinator.reports._style import REQUIRED_FONT_FAMILIES
from services.coordinator.reports.errors import FontsMissing, MissingGlyphs, PdfRenderError
from services.coordinator.reports.html import BEIJING, render_rapid_report_html, render_statistics_html
from services.coordinator.reports.model import RapidReport, StatisticsReport

_LOG = logging.getLogger(__name__)
_RENDER_LOCK = threading.Lock()
_WEASYPRINT_LOGGER = "weasyprint"
_NOTDEF_MESSAGE = ".notdef glyph rendered"


def _weasyprint() -> ModuleType:
    # Imported on first use: it loads Pango and fontconfig, which a coordinator that only serves HTML does not need.
    try:
        import weasyprint
    except OSError as err:  # the shared libraries are missing, not the Python package
        raise PdfRenderError(
            f"WeasyPrint cannot load its system libraries ({err}); install Debian libpango-1.0-0 libpangoft2-1.0-0"
        ) from err
    module: ModuleType = weasyprint
    return module


@functools.cache
def installed_font_families() -> frozenset[str]:
    """Every font family fontconfig knows, as WeasyPrint will see them (read once per process)."""
    _weasyprint()
    from weasyprint.text.ffi import ffi, fontconfig

    families: set[str] = set()
    config = fontconfig.FcInitLoadConfigAndFonts()
    try:
        fonts = fontconfig.FcConfigGetFonts(config, fontconfig.FcSetSystem)
        value = ffi.new("FcChar8 **")
        for index in range(0 if fonts == ffi.NULL else fonts.nfont):
            n = 0  # a font file may name its family in several languages; every name counts
            while fontconfig.FcPatternGetString(fonts.fonts[index], b"family", n, value) == fontconfig.FcResultMatch:
                families.add(ffi.string(value[0]).decode("utf-8", "replace"))
                n += 1
    finally:
        fontconfig.FcConfigDestroy(config)
    return frozenset(families)


def check_fonts(required: tuple[str, ...] = REQUIRED_FONT_FAMILIES) -> None:
    """Raise ``FontsMissing`` unless every family in ``required`` is installed."""
    available = installed_font_families()
    missing = tuple(family for family in required if family not in available)
    if missing:
        raise FontsMissing(missing)


class _NotdefCollector(logging.Handler):
    """Collects the characters WeasyPrint had to draw as .notdef (it logs one warning per such glyph)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.characters: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, str) and record.msg.startswith(_NOTDEF_MESSAGE):
            args = record.args if isinstance(record.args, tuple) else ()
            character = args[0] if args and isinstance(args[0], str) else "?"
            if character not in self.characters:
                self.characters.append(character)


def html_to_pdf(html: str, *, require_fonts: bool = True) -> bytes:
    """The PDF of one self-contained HTML document. No URL is fetched: every resource must be inline.

    Raises ``FontsMissing`` (when ``require_fonts``) and ``MissingGlyphs`` for a letter or digit no font has; the
    latter always, because a PDF with boxes where the text should be must never reach a leader.
    """
    weasyprint = _weasyprint()
    if require_fonts:
        check_fonts()
    # An empty protocol list refuses every URL, file: and data: included: a report never loads anything.
    fetcher = weasyprint.urls.URLFetcher(allowed_protocols=())
    logger = logging.getLogger(_WEASYPRINT_LOGGER)
    collector = _NotdefCollector()
    with _RENDER_LOCK:
        # The check relies on WeasyPrint's warnings, so they must not be filtered out by an application setting.
        previous_level = logger.level
        if logger.getEffectiveLevel() > logging.WARNING:
            logger.setLevel(logging.WARNING)
        logger.addHandler(collector)
        try:
            pdf = weasyprint.HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf()
        finally:
            logger.removeHandler(collector)
            logger.setLevel(previous_level)
    words = "".join(c for c in collector.characters if unicodedata.category(c)[0] in "LN")
    if words:
        raise MissingGlyphs(words)
    if collector.characters:
        _LOG.warning("PDF drawn with .notdef boxes for symbols no font has: %s", " ".join(collector.characters))
    if not isinstance(pdf, bytes):
        raise PdfRenderError(f"WeasyPrint returned {type(pdf).__name__}, not bytes")
    return pdf


def render_rapid_report_pdf(report: RapidReport, *, tz: tzinfo = BEIJING) -> bytes:
    """The rapid report (舆情快报) as PDF bytes."""
    return html_to_pdf(render_rapid_report_html(report, tz=tz))


def render_statistics_pdf(report: StatisticsReport, *, tz: tzinfo = BEIJING) -> bytes:
    """The joint meeting's statistics as PDF bytes."""
    return html_to_pdf(render_statistics_html(report, tz=tz))


async def html_to_pdf_async(html: str, *, require_fonts: bool = True) -> bytes:
    """``html_to_pdf`` in a worker thread, so the event loop keeps serving while WeasyPrint works."""
    return await asyncio.to_thread(html_to_pdf, html, require_fonts=require_fonts)


async def render_rapid_report_pdf_async(report: RapidReport, *, tz: tzinfo = BEIJING) -> bytes:
    """``render_rapid_report_pdf`` in a worker thread."""
    return await asyncio.to_thread(render_rapid_report_pdf, report, tz=tz)


async def render_statistics_pdf_async(report: StatisticsReport, *, tz: tzinfo = BEIJING) -> bytes:
    """``render_statistics_pdf`` in a worker thread."""
    return await asyncio.to_thread(render_statistics_pdf, report, tz=tz)
