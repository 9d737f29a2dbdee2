"""Fixtures shared by the text-kernel tests: one lexicon set and one enricher per session (~0.3 s to build)."""

from __future__ import annotations

import pytest
from qingfeng.text import Enricher, Lexicons, load_lexicons


@pytest.fixture(scope="session")
def lexicons() -> Lexicons:
    return load_lexicons()


@pytest.fixture(scope="session")
def enricher(lexicons: Lexicons) -> Enricher:
    return Enricher(lexicons)
