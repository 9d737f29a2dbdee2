"""Near-duplicate lookup of 64-bit SimHash fingerprints: a 4 x 16-bit band index.

Two fingerprints within 3 bits of each other agree exactly on at least one of four 16-bit bands
(pigeonhole), so looking up the four bands finds every candidate within 3 bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["BandIndex"]

_BANDS = 4
_BAND_BITS = 16
_MASK = (1 << _BAND_BITS) - 1


def _keys(fp: int) -> tuple[int, int, int, int]:
    # Written out for the four bands (asked for every fingerprint added, looked up, merged or expired).
    return fp & _MASK, (fp >> 16) & _MASK, (fp >> 32) & _MASK, (fp >> 48) & _MASK


class BandIndex:
    """Fingerprint -> event id, for fingerprints within `max_hamming` bits (at most 3 with four bands)."""

    def __init__(self, max_hamming: int = 3, max_events: int = 3, band_cap: int = 64) -> None:
        if max_hamming >= _BANDS:
            raise ValueError(f"{_BANDS} bands find near duplicates within {_BANDS - 1} bits, not {max_hamming}")
        self.max_hamming = max_hamming
        self.max_events = max_events
        self.band_cap = band_cap
        # One table per band: band value -> ((fingerprint, event id), …), oldest first. Tuples, not lists, for the
        # entries and for each band value's sequence of them: the garbage collector stops tracking a tuple of
        # untracked items, and a full collection walks every tracked object (four band values per fingerprint,
        # most holding one entry: a large share of the state in a stream without parents). A band value's tuple
        # is rebuilt on each change, which costs no more than the list's `del entries[0]` did.
        self.bands: list[dict[int, tuple[tuple[int, str], ...]]] = [{} for _ in range(_BANDS)]

    def lookup(self, fp: int, recency: Callable[[str], float]) -> str | None:
        """The event of the closest fingerprint (ties: most recent, then id); None when there is none,
        or when the fingerprint is close to more than `max_events` events (boilerplate, not evidence)."""
        best: dict[str, int] = {}
        for band, key in zip(self.bands, _keys(fp), strict=True):
            for entry in band.get(key, ()):
                d = (fp ^ entry[0]).bit_count()
                if d <= self.max_hamming and d < best.get(entry[1], 99):
                    best[entry[1]] = d
        if not best or len(best) > self.max_events:
            return None
        return min(best, key=lambda k: (best[k], -recency(k), k))

    def add(self, fp: int, event_id: str) -> None:
        for band, key in zip(self.bands, _keys(fp), strict=True):
            entries = band.get(key, ())
            entry = (fp, event_id)
            # Past the cap the oldest entry leaves, as before.
            band[key] = (*entries[1:], entry) if len(entries) >= self.band_cap else (*entries, entry)

    def rewrite(self, fps: Iterable[int], old: str, new: str | None) -> None:
        """Point `old`'s fingerprints at `new` (a merge), or drop them (new None: expiry)."""
        for fp in fps:
            for band, key in zip(self.bands, _keys(fp), strict=True):
                entries = band.get(key)
                if not entries:
                    continue
                if new is None:
                    kept = tuple([e for e in entries if e[1] != old])
                    if not kept:
                        del band[key]
                    elif len(kept) != len(entries):
                        band[key] = kept
                elif any(e[1] == old for e in entries):
                    band[key] = tuple([(e[0], new) if e[1] == old else e for e in entries])

    def empty(self) -> bool:
        return not any(self.bands)

    def to_list(self) -> list[Any]:
        return [
            [[key, [[str(fp), eid] for fp, eid in entries]] for key, entries in band.items()] for band in self.bands
        ]

    def load(self, data: list[Any]) -> None:
        self.bands = [{key: tuple([(int(fp), eid) for fp, eid in entries]) for key, entries in band} for band in data]
