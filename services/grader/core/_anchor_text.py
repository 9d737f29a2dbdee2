"""The own text of recent anchor posts (cascade sources), searchable by term, for the rare-term link (_matching.py).

A source post's keywords are only its first few (the collector lists at most eight), so a reply naming a place or
object of a long source post ("猴脑", "SBS") often shares no keyword with it; the term is still in the source's
text. Each anchor's text is indexed by its character bigrams (bigram -> {event id: time}); a longer term is
looked up by its first two characters and checked against the texts found (a few dozen anchors open in half an
hour on a busy stream). Only anchors of the last `window_seconds` are kept (the rare-term window): the index holds
the sources of the last half hour, not of the horizon. Indexing 2- to 4-grams instead cost the no-parent replay
about 10 % of its time for the same answers.

Pure state, no I/O; the Clusterer owns it and persists it with its own state.
"""

from __future__ import annotations

from collections import deque
from typing import Any

__all__ = ["AnchorTexts"]


class AnchorTexts:
    """Texts of the anchors opened within `window_seconds` of the newest one, indexed by substring."""

    __slots__ = ("_grams", "_order", "_texts", "window_seconds")

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = window_seconds
        self._grams: dict[str, dict[str, float]] = {}
        self._texts: dict[str, str] = {}
        self._order: deque[tuple[float, str, set[str]]] = deque()  # (time, event id, its bigrams), oldest first

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, event_id: str, text: str, ts: float) -> None:
        """Index the text of the post that opened anchor `event_id` at `ts`; forget anchors older than the window."""
        self._prune(ts - self.window_seconds)
        if not text or event_id in self._texts:
            return
        self._texts[event_id] = text
        bigrams = {text[i : i + 2] for i in range(len(text) - 1)}
        self._order.append((ts, event_id, bigrams))
        grams = self._grams
        for gram in bigrams:
            ids = grams.get(gram)
            if ids is None:
                grams[gram] = {event_id: ts}
            else:
                ids[event_id] = ts

    def containing(self, term: str, since: float) -> list[str]:
        """Ids of the anchors opened at or after `since` whose text contains `term` (of two characters or more)."""
        if len(term) < 2:
            return []
        ids = self._grams.get(term[:2])
        if not ids:
            return []
        if len(term) == 2:
            return [cid for cid, at in ids.items() if at >= since]
        texts = self._texts
        return [cid for cid, at in ids.items() if at >= since and term in texts[cid]]

    def _prune(self, cut: float) -> None:
        order, grams = self._order, self._grams
        while order and order[0][0] < cut:
            _, cid, bigrams = order.popleft()
            del self._texts[cid]
            for gram in bigrams:
                ids = grams.get(gram)
                if ids is not None:
                    ids.pop(cid, None)
                    if not ids:
                        del grams[gram]

    def to_list(self) -> list[list[Any]]:
        return [[cid, ts, self._texts[cid]] for ts, cid, _ in self._order]

    def load(self, rows: list[list[Any]]) -> None:
        for cid, ts, text in rows:
            self.add(cid, text, ts)
