"""The PDFs really show the Chinese text: CJK fonts embedded, text extractable, and on the page as many different
glyph shapes as there are different characters (a missing glyph is drawn as the same .notdef box every time).

The negative rendering runs in a child process whose fontconfig knows one Latin font only, so every Chinese
character becomes a .notdef box there; the same child shows that our renderer refuses to produce such a PDF.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from services.coordinator.reports import (
    MissingGlyphs,
    RapidReport,
    StatisticsReport,
    html_to_pdf,
    render_rapid_report_html,
    render_rapid_report_pdf,
    render_rapid_report_pdf_async,
    render_statistics_pdf,
)
from tests.services.coordinator.reports.poppler import Poppler
from tests.services.coordinator.reports.samples import TITLE

REPO_ROOT = Path(__file__).resolve().parents[4]
_PDFFONTS_ROW = re.compile(r"^(\S+)\s+(.+?)\s+(\S+)\s+(yes|no)\s+(yes|no)\s+(yes|no)\s+\d+\s+\d+\s*$")

# Runs with a fontconfig that has no CJK font: reports what our renderer does, then lets WeasyPrint draw the boxes.
_LATIN_ONLY_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import weasyprint
from services.coordinator.reports import (
    FontsMissing, MissingGlyphs, html_to_pdf, render_rapid_report_html, render_rapid_report_pdf)
from tests.services.coordinator.reports.samples import sample_rapid_report

report = sample_rapid_report()
html = render_rapid_report_html(report)
outcome = {}
try:
    render_rapid_report_pdf(report)
    outcome["fonts"] = "rendered"
except FontsMissing as err:
    outcome["fonts"] = list(err.missing)
try:
    html_to_pdf(html, require_fonts=False)
    outcome["glyphs"] = "rendered"
except MissingGlyphs as err:
    outcome["glyphs"] = err.characters
with open(sys.argv[2], "wb") as out:
    out.write(weasyprint.HTML(string=html).write_pdf())
print(json.dumps(outcome, ensure_ascii=False))
"""


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120).stdout


def _fonts(poppler: Poppler, pdf: Path) -> list[tuple[str, str, bool]]:
    """(name, type, embedded) of every font ``pdffonts`` lists."""
    rows = []
    for line in _run(poppler.pdffonts, str(pdf)).splitlines()[2:]:
        match = _PDFFONTS_ROW.match(line)
        assert match, f"unexpected pdffonts line: {line!r}"
        rows.append((match[1], match[2], match[4] == "yes"))
    return rows


def _text(poppler: Poppler, pdf: Path) -> str:
    """The extracted text without white space, so that a line break cannot split a phrase."""
    return re.sub(r"\s+", "", _run(poppler.pdftotext, "-enc", "UTF-8", str(pdf), "-"))


_SCALE = 2  # render at 144 dpi: 2 pixels per PDF point
_WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def _first_page_png(poppler: Poppler, pdf: Path) -> Path:
    prefix = pdf.with_suffix("")
    dpi = str(72 * _SCALE)
    _run(poppler.pdftoppm, "-r", dpi, "-gray", "-singlefile", "-f", "1", "-l", "1", "-png", str(pdf), str(prefix))
    return prefix.with_suffix(".png")


def _word_box(poppler: Poppler, pdf: Path, word: str) -> tuple[int, int, int, int]:
    """Where pdftotext finds ``word`` on page 1, in pixels of ``_first_page_png``."""
    for *corners, text in _WORD.findall(_run(poppler.pdftotext, "-f", "1", "-l", "1", "-bbox", str(pdf), "-")):
        if text == word:
            x0, y0, x1, y1 = (round(float(value) * _SCALE) for value in corners)
            return x0, y0, x1, y1
    raise AssertionError(f"{word!r} not found on page 1 of {pdf.name}")


def _glyph_shapes(png: Path, box: tuple[int, int, int, int]) -> list[Image.Image]:
    """The ink blobs of one line of text, split at blank columns and scaled to 32x32 for comparison."""
    with Image.open(png) as page:
        line = page.convert("L").crop(box)
    width, height = line.size
    pixels = line.tobytes()
    inked = [any(pixels[y * width + x] < 128 for y in range(height)) for x in range(width)]
    shapes, start = [], None
    for x, ink in enumerate([*inked, False]):
        if ink and start is None:
            start = x
        elif not ink and start is not None:
            shapes.append(line.crop((start, 0, x, height)).resize((32, 32)))
            start = None
    return shapes


def _distinct(shapes: list[Image.Image]) -> int:
    """How many different shapes there are: two blobs are the same when they differ by < 8/255 per pixel."""
    kinds: list[Image.Image] = []
    for shape in shapes:
        if all(sum(ImageChops.difference(shape, kind).tobytes()) / (32 * 32) >= 8 for kind in kinds):
            kinds.append(shape)
    return len(kinds)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.usefixtures("pdf_renderer")
def test_rapid_report_pdf_draws_the_chinese_text(
    rapid_report: RapidReport, poppler: Poppler, latin_only_font: Path, tmp_path: Path
) -> None:
    pdf = _write(tmp_path / "report.pdf", render_rapid_report_pdf(rapid_report))
    assert pdf.read_bytes().startswith(b"%PDF-")

    fonts = _fonts(poppler, pdf)
    assert any("CJK" in name for name, _, _ in fonts), fonts
    assert all(embedded for _, _, embedded in fonts), fonts
    assert not any("Type 3" in kind for _, kind, _ in fonts), fonts  # no bitmap fallback glyphs

    text = _text(poppler, pdf)
    for expected in ("舆情快报", "第12期", TITLE, "一、基本情况", "橙色预警（严重）", "清风徐来"):
        assert expected in text, expected

    # The same document with no CJK font at all: our renderer refuses it, WeasyPrint alone draws boxes.
    boxes = tmp_path / "boxes.pdf"
    env = {**os.environ, "FONTCONFIG_FILE": str(latin_only_font)}
    child = subprocess.run(
        [sys.executable, "-c", _LATIN_ONLY_CHILD, str(REPO_ROOT), str(boxes)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    outcome = json.loads(child.stdout.strip().splitlines()[-1])
    assert outcome["fonts"] == ["Noto Serif CJK SC", "Noto Sans CJK SC"]
    assert isinstance(outcome["glyphs"], str) and "舆" in outcome["glyphs"] and "情" in outcome["glyphs"]
    assert not any("CJK" in name for name, _, _ in _fonts(poppler, boxes))

    # Real characters are different shapes; .notdef boxes are one shape repeated. Count the shapes in the title line.
    characters = len(set(TITLE))
    drawn = _distinct(_glyph_shapes(_first_page_png(poppler, pdf), _word_box(poppler, pdf, TITLE)))
    boxed = _distinct(_glyph_shapes(_first_page_png(poppler, boxes), _word_box(poppler, boxes, TITLE)))
    assert boxed <= 2, f"the box rendering should repeat one shape, found {boxed}: the check would not catch boxes"
    assert drawn >= 0.75 * characters, f"{drawn} distinct glyph shapes for {characters} distinct characters"


@pytest.mark.usefixtures("pdf_renderer")
def test_statistics_pdf(statistics_report: StatisticsReport, poppler: Poppler, tmp_path: Path) -> None:
    pdf = _write(tmp_path / "statistics.pdf", render_statistics_pdf(statistics_report))
    assert any("CJK" in name for name, _, _ in _fonts(poppler, pdf))
    text = _text(poppler, pdf)
    for expected in ("联席会议", "网络涉腐舆情工作统计", "黄金期首次回应", "公安网安", "未签收", "依纪依法处理"):
        assert expected in text, expected


@pytest.mark.usefixtures("pdf_renderer")
def test_no_resource_is_fetched(poppler: Poppler, tmp_path: Path) -> None:
    image = tmp_path / "tracker.png"
    Image.new("RGB", (40, 40), (200, 0, 0)).save(image)
    html = f'<!DOCTYPE html><html lang="zh-CN"><body><p>测试</p><img src="{image.as_uri()}"></body></html>'
    import weasyprint

    # Control: WeasyPrint on its own would embed the file, so the check below can fail.
    fetched = _write(tmp_path / "fetched.pdf", weasyprint.HTML(string=html).write_pdf())
    assert len(_run(poppler.pdfimages, "-list", str(fetched)).splitlines()) == 3  # header, rule, one image
    ours = _write(tmp_path / "ours.pdf", html_to_pdf(html))
    assert len(_run(poppler.pdfimages, "-list", str(ours)).splitlines()) == 2  # header and rule only


@pytest.mark.usefixtures("pdf_renderer")
async def test_async_rendering_leaves_the_loop_free(rapid_report: RapidReport) -> None:
    html_to_pdf(render_rapid_report_html(rapid_report))  # warm-up: fonts loaded, so timings below are renders
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    beat = asyncio.create_task(ticker())
    started = time.monotonic()
    pdfs = await asyncio.gather(
        render_rapid_report_pdf_async(rapid_report), render_rapid_report_pdf_async(rapid_report)
    )
    elapsed = time.monotonic() - started
    done.set()
    await beat
    assert all(pdf.startswith(b"%PDF-") for pdf in pdfs)
    # A blocking render would freeze the ticker for the whole time; in a thread it keeps beating.
    assert ticks >= max(3, elapsed / 0.005 / 10), (ticks, elapsed)


@pytest.mark.usefixtures("pdf_renderer")
def test_a_letter_without_glyph_fails_a_symbol_does_not(caplog: pytest.LogCaptureFixture) -> None:
    page = '<!DOCTYPE html><html lang="zh-CN"><body><p>局长 {}</p></body></html>'
    # U+13000 is a letter (Egyptian hieroglyph A001) that neither Noto CJK nor DejaVu draws.
    with pytest.raises(MissingGlyphs, match="U\\+13000") as raised:
        html_to_pdf(page.format("\U00013000"))
    assert raised.value.characters == "\U00013000"
    # U+0378 is unassigned: there is nothing to draw, so the report goes out and the box is logged.
    with caplog.at_level(logging.WARNING, logger="services.coordinator.reports.pdf"):
        assert html_to_pdf(page.format("\u0378")).startswith(b"%PDF-")
    assert "\u0378" in caplog.text
