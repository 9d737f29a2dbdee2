from __future__ import annotations

import random
import re

import pytest
from qingfeng.text._trie import compile_terms


def _reference(terms: list[str]) -> re.Pattern[str]:
    # a flat alternation sorted longest-first has the same leftmost-longest semantics
    return re.compile("|".join(re.escape(t) for t in sorted(set(terms), key=len, reverse=True)))


@pytest.mark.parametrize(
    ("terms", "text", "expected"),
    [
        (["书记", "市委书记", "市委"], "临沂市委书记", ["市委书记"]),
        (["贪污", "受贿"], "贪污受贿", ["贪污", "受贿"]),
        (["ab", "abc", "b"], "abcb", ["abc", "b"]),
        (["a.b"], "a.b axb", ["a.b"]),  # terms are literals, not regex
        (["纪委"], "没有", []),
    ],
)
def test_leftmost_longest(terms: list[str], text: str, expected: list[str]) -> None:
    pattern = compile_terms(terms)
    assert pattern is not None
    assert [m.group() for m in pattern.finditer(text)] == expected


def test_no_terms_gives_no_pattern() -> None:
    assert compile_terms([]) is None
    assert compile_terms([""]) is None


def test_matches_flat_alternation_on_random_inputs() -> None:
    rng = random.Random(7)
    alphabet = "贪污受贿官员书记市委纪"
    for _ in range(200):
        terms = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 12))]
        text = "".join(rng.choice(alphabet + "的了") for _ in range(40))
        pattern = compile_terms(terms)
        assert pattern is not None
        found = [(m.start(), m.group()) for m in pattern.finditer(text)]
        assert found == [(m.start(), m.group()) for m in _reference(terms).finditer(text)]
