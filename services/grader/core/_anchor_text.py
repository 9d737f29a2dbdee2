"""The own text of recent anchor posts (cascade sources), searchable by term, for the rare-term link (_matching.py).

A source post's keywords are only its first few (the collector lists at most eight), so a reply naming a place or
object of a long source post ("猴脑", "SBS") often shares no keyword with it; the term is still in the source's
text. Each anchor's text is indexed by its character 2- to 4-grams (term -> {event id: time}); a longer term is
looked up by its first four characters and checked against the text. Only anchors of the last `window_seconds`
are kept (the rare-term window): the index holds the sources of the last half hour, not of the horizon.

Pure state, no I/O; the Clusterer owns it and persists it with its own state.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["AnchorTexts"]

GRAM = 4  # longest indexed substring; longer terms are checked against the text itself


class AnchorTexts:
    """Texts of the anchors opened within `window_seconds` of the newest one, indexed by substring."""

    __slots__ = ("_grams", "_order", "_texts", "window_seconds")

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._grams: dict[str, dict[str, float]] = {}
        self._texts: dict[str, str] = {}
        self._order: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, event_id: str, text: str, ts: float) -> None:
        """Index the text of the post that opened anchor `event_id` at `ts`; forget anchors older than the window."""
        self._prune(ts - self.window_seconds)
        if not text or event_id in self._texts:
            return
        self._texts[event_id] = text
        self._order.append((ts, event_id))
        grams = self._grams
        for gram in _grams(text):
            ids = grams.get(gram)
            if ids is None:
                grams[gram] = {event_id: ts}
            else:
                ids[event_id] = ts

    def containing(self, term: str, since: float) -> list[str]:
        """Ids of the anchors opened at or after `since` whose text contains `term` (of two characters or more)."""
        if len(term) < 2:
            return []
        ids = self._grams.get(term[:GRAM])
        if not ids:
            return []
        if len(term) <= GRAM:
            return [cid for cid, at in ids.items() if at >= since]
        texts = self._texts
        return [cid for cid, at in ids.items() if at >= since and term in texts[cid]]

    def _prune(self, cut: float) -> None:
        order, grams = self._order, self._grams
        while order and order[0][0] < cut:
            _, cid = order.popleft()
            for gram in _grams(self._texts.pop(cid)):
                ids = grams.get(gram)
                if ids is not None:
                    ids.pop(cid, None)
                    if not ids:
                        del grams[gram]

    def to_list(self) -> list[list[Any]]:
        return [[cid, ts, self._texts[cid]] for ts, cid in self._order]

    def load(self, rows: list[list[Any]]) -> None:
        for cid, ts, text in rows:
            self.add(cid, text, ts)


def _grams(text: str) -> set[str]:
    """Every substring of 2 to GRAM characters (without line breaks: a term never spans one)."""
    out: set[str] = set()
    for line in text.split("\n"):
        n = len(line)
        for i in range(n - 1):
            for size in range(2, GRAM + 1):
                if i + size > n:
                    break
                out.add(line[i : i + size])
    return out
