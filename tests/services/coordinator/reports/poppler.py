"""Where the poppler-utils programs are (the ``poppler`` fixture finds them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Poppler:
    """Paths of the poppler-utils programs the PDF tests call."""

    pdftoppm: str
    pdffonts: str
    pdftotext: str
    pdfimages: str
