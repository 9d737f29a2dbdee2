"""The PDFs really show the Chinese text: CJK fonts embedded, text extractable, and ink where a box-only rendering
has little.

The negative rendering runs in a child process whose fontconfig knows one Latin font only, so every Chinese
character becomes a .notdef box there; the same child shows that our renderer refuses to produce such a PDF.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from services.coordinator.reports import (
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


def _first_page_png(poppler: Poppler, pdf: Path) -> Path:
    prefix = pdf.with_suffix("")
    _run(poppler.pdftoppm, "-r", "72", "-gray", "-singlefile", "-f", "1", "-l", "1", "-png", str(pdf), str(prefix))
    return prefix.with_suffix(".png")


def _ink(png: Path) -> int:
    """Total darkness of a page: 0 for white, 255 per fully black pixel."""
    with Image.open(png) as image:
        pixels = image.convert("L").tobytes()
    return 255 * len(pixels) - sum(pixels)


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

    # Chinese glyphs are dense strokes; a .notdef box is a thin outline. Real text carries far more ink.
    drawn, boxed = _ink(_first_page_png(poppler, pdf)), _ink(_first_page_png(poppler, boxes))
    assert drawn > 1.4 * boxed, (drawn, boxed)


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
