"""Errors of the report renderers.

    ReportError                  base of everything this package raises
    ├── InvalidReport            a report value breaks a rule of the model (also a ValueError), e.g. a claim
    │                            citing no post, a naive datetime, a negative reach
    └── PdfRenderError           the PDF could not be made faithfully
        ├── FontsMissing         a required CJK font family is not installed (Debian ``fonts-noto-cjk``)
        └── MissingGlyphs        a letter or digit has no glyph in any installed font; the PDF would show boxes

The coordinator maps ``InvalidReport`` to INVALID_ARGUMENT / FAILED_PRECONDITION and ``PdfRenderError`` to
INTERNAL (a deployment fault, not the caller's).
"""

from __future__ import annotations


class ReportError(Exception):
    """Base of the report package's errors."""


class InvalidReport(ReportError, ValueError):
    """A report value breaks a rule of the model; the message names the field."""


class PdfRenderError(ReportError):
    """The PDF could not be rendered faithfully."""


class FontsMissing(PdfRenderError):
    """A required font family is not installed where WeasyPrint (fontconfig) looks for it."""

    def __init__(self, missing: tuple[str, ...]) -> None:
        self.missing = missing
        super().__init__(
            f"font families not installed: {', '.join(missing)}; install Debian package fonts-noto-cjk "
            "(apt-get install fonts-noto-cjk) so that Chinese text is not drawn as missing-glyph boxes"
        )


class MissingGlyphs(PdfRenderError):
    """The text has letters or digits no installed font can draw (they would appear as .notdef boxes)."""

    def __init__(self, characters: str) -> None:
        self.characters = characters
        shown = " ".join(f"{c!r} (U+{ord(c):04X})" for c in characters[:10])
        more = f" and {len(characters) - 10} more" if len(characters) > 10 else ""
        super().__init__(f"no installed font has a glyph for {shown}{more}")
