"""Compile a set of literal terms into one regex that factors shared prefixes (a trie as a regex).

CPython's ``re`` tries the branches of a flat ``a|b|c`` alternation one after another at every position, so
600 terms cost 600 tries per character. Factored into a trie (贪(?:污|官|腐) …) at most one branch can start
with a given character, and a position whose character starts no term is rejected at once. Each optional tail
is greedy, so at every position the longest term wins; ``finditer`` then gives leftmost-longest,
non-overlapping matches.

``find_terms`` builds the same leftmost-longest matching as an Aho-Corasick DFA (``ahocorasick_rs``, Rust): it reads a
text once whatever the number of terms, which on long texts beats the regex; the regex stays for short texts and for
texts the automaton refuses (lone surrogates).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeAlias

import ahocorasick_rs

__all__ = ["Matches", "compile_terms", "find_terms"]

# (index of the term, start, end) of each leftmost-longest, non-overlapping match.
Matches: TypeAlias = "list[tuple[int, int, int]]"

_END = ""
_Node: TypeAlias = "dict[str, _Node]"


def _emit(node: _Node) -> str:
    leaves: list[str] = []
    branches: list[str] = []
    for ch in sorted(k for k in node if k != _END):
        child = node[ch]
        tail = _emit(child)
        if tail:
            branches.append(re.escape(ch) + tail)
        else:
            leaves.append(re.escape(ch))
    if leaves:
        branches.append(leaves[0] if len(leaves) == 1 else "[" + "".join(leaves) + "]")
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    if _END in node:
        # the term may stop here: try the longer continuation first, fall back to stopping
        return "(?:" + body + ")?"
    return body


def compile_terms(terms: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``terms`` (leftmost-longest); ``None`` when there are no terms."""
    trie: _Node = {}
    for term in terms:
        if not term:
            continue
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[_END] = {}
    if not trie:
        return None
    return re.compile(_emit(trie))


def _nothing(text: str) -> Matches:
    return []


def find_terms(terms: Sequence[str]) -> Callable[[str], Matches]:
    """A function giving the leftmost-longest matches of ``terms`` in a text, as (term index, start, end)."""
    if not terms:
        return _nothing
    automaton = ahocorasick_rs.AhoCorasick(
        terms, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest, implementation=ahocorasick_rs.Implementation.DFA
    )
    finder: Callable[[str], Matches] = automaton.find_matches_as_indexes
    return finder
