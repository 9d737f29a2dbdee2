"""Sample reports and the system tools the PDF tests need (poppler-utils, the Noto CJK fonts, Pango).

A missing tool or font FAILS the test in CI (env ``CI`` set) and skips it with the reason elsewhere, as
``tests/conftest.py`` does for the stack, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from services.coordinator.reports import RapidReport, StatisticsReport
from tests.services.coordinator.reports.poppler import Poppler
from tests.services.coordinator.reports.samples import sample_rapid_report, sample_statistics_report


def _unavailable(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI: {what}", pytrace=False)
    pytest.skip(what)


@pytest.fixture
def rapid_report() -> RapidReport:
    return sample_rapid_report()


@pytest.fixture
def statistics_report() -> StatisticsReport:
    return sample_statistics_report()


@pytest.fixture(scope="session")
def poppler() -> Poppler:
    found = {name: shutil.which(name) for name in ("pdftoppm", "pdffonts", "pdftotext", "pdfimages")}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        _unavailable(f"{', '.join(missing)} not found; install Debian poppler-utils")
    return Poppler(**{name: str(path) for name, path in found.items()})


@pytest.fixture(scope="session")
def pdf_renderer() -> None:
    """WeasyPrint's system libraries and the Noto CJK fonts are present."""
    from services.coordinator.reports import FontsMissing, PdfRenderError, check_fonts

    try:
        check_fonts()
    except FontsMissing as err:
        _unavailable(str(err))
    except PdfRenderError as err:
        _unavailable(str(err))


@pytest.fixture(scope="session")
def latin_only_font(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fontconfig file that knows one font without Chinese glyphs (DejaVu Sans, Debian's default)."""
    candidates = [Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")]
    candidates += sorted(p for p in Path("/usr/share/fonts").rglob("*.ttf") if "cjk" not in str(p).lower())
    font = next((p for p in candidates if p.is_file()), None)
    if font is None:
        _unavailable("no font without CJK glyphs under /usr/share/fonts (Debian fonts-dejavu-core)")
    assert font is not None
    home = tmp_path_factory.mktemp("latin-fonts")
    shutil.copy(font, home / font.name)
    config = home / "fonts.conf"
    config.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n'
        f"<fontconfig><dir>{home}</dir><cachedir>{home / 'cache'}</cachedir></fontconfig>\n",
        encoding="utf-8",
    )
    return config
