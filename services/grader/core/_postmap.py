"""Post id -> event id over the whole clustering horizon, in about 16-32 bytes a post instead of ~150.

Event detection remembers every post of its horizon (a repost may name a parent days old, and a post delivered
again must be recognised): 7 days at 200 million posts a day is 1.4 billion posts. As a ``dict`` of id strings
(plus each event's member list) that took ~150 bytes a post, hundreds of GB; here it is a table of fixed-size
entries in ``array``s:

- **Keys.** A post id is kept as a 96-bit BLAKE2b digest (64 + 32 bits), never as its string. Two different ids
  share a digest with probability about n^2 / 2^97: for n = 1.4 billion posts live at once, ~1e-11 (a wrong
  "already seen" or a wrong parent event once in ~10^11 horizons). The digest is unkeyed, so states are the same
  on every run and a snapshot restores anywhere; post ids are chosen by the platforms, not by whoever posts, so
  nobody can aim colliding ids at the table.
- **Values.** An entry holds a 32-bit *slot*; ``_events[slot]`` is the event id it stands for. Merging an event
  into another rewrites its slots (not its posts), and expiring an event marks its slots dead: its entries are
  then absent and are dropped at the next rehash, which also renumbers the slots.
- **Table.** Open addressing with linear probing over three arrays (64-bit key, 32-bit tag, 32-bit slot: 16
  bytes an entry); a rehash when 3/4 of the positions are used, to at least twice the live entries. The rehash
  is a Python loop over the table (~0.5 µs an entry, blocking): rare, but seconds for tens of millions of posts.

``to_data``/``from_data`` write and read the arrays as they are (base64 of their little-endian bytes), so a
snapshot costs a copy of the table instead of a JSON list of every post id.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Iterator
from hashlib import blake2b
from typing import Any, Final

from qingfeng.memo import Memo

__all__ = ["POSTMAP_FORMAT", "PostMap"]

POSTMAP_FORMAT: Final = "qingfeng.grader.postmap/1"

_TOMBSTONE: Final = 0xFFFFFFFF  # slot of a popped entry (its key stays, so probe chains stay intact)
_MIN_CAPACITY: Final = 1024
_MEMO_LIMIT: Final = 8192  # digests of recent ids: a post's id is looked up several times while it is placed


def _digest(post_id: str) -> tuple[int, int]:
    """(64-bit key, never 0: 0 marks a free position; 32-bit tag) of a post id."""
    # One int of the 12 bytes, split: the same values as reading bytes 0-7 and 8-11 apart (little-endian).
    v = int.from_bytes(blake2b(post_id.encode("utf-8", "surrogatepass"), digest_size=12).digest(), "little")
    return v & 0xFFFFFFFFFFFFFFFF or 1, v >> 64


def _zeros(typecode: str, n: int) -> array[int]:
    out = array(typecode)
    out.frombytes(bytes(out.itemsize * n))
    return out


def _pack(a: array[int]) -> str:
    if sys.byteorder != "little":
        a = array(a.typecode, a)
        a.byteswap()
    return base64.b64encode(a.tobytes()).decode("ascii")


def _unpack(typecode: str, text: str) -> array[int]:
    a = array(typecode)
    a.frombytes(base64.b64decode(text))
    if sys.byteorder != "little":
        a.byteswap()
    return a


class PostMap:
    """A mapping post id -> event id (``get``, ``in``, ``[]``, ``pop``, ``len``) with ``merge`` and ``drop`` of
    whole events; see the module docstring. Not thread-safe."""

    __slots__ = ("_absent", "_absent_at", "_counts", "_dead", "_events", "_keys", "_live", "_mask", "_memo", "_own",
                 "_slots", "_tags", "_used")  # fmt: skip

    def __init__(self, capacity: int = _MIN_CAPACITY) -> None:
        cap = _MIN_CAPACITY
        while cap < capacity:
            cap *= 2
        self._alloc(cap)
        self._events: list[str | None] = []  # slot -> event id; None once the event expired
        self._counts: array[int] = array("I")  # slot -> entries holding it
        # Live event id -> its slots, ascending (its own, and those of the events merged into it).
        self._own: dict[str, list[int]] = {}
        self._live = 0  # entries whose slot is live (the mapping's length)
        self._used = 0  # positions taken: live entries, tombstones, entries of expired events
        self._dead = 0  # entries of expired events (freed at the next rehash)
        self._memo: Memo[str, tuple[int, int]] = Memo(_digest, _MEMO_LIMIT)
        self._forget_absent()

    def _forget_absent(self) -> None:
        # The last id get() found no entry for, and the free position its probe ended at: where __setitem__ puts that
        # id (a new post is looked up, then added) without probing again, while no entry was added since.
        self._absent: str | None = None
        self._absent_at = -1

    def _alloc(self, capacity: int) -> None:
        self._keys: array[int] = _zeros("Q", capacity)
        self._tags: array[int] = _zeros("I", capacity)
        self._slots: array[int] = _zeros("I", capacity)
        self._mask = capacity - 1

    # -- lookups ------------------------------------------------------------------------------------------------

    def _key(self, post_id: str) -> tuple[int, int]:
        return self._memo[post_id]

    def _find(self, key: int, tag: int) -> int:
        """The position holding (key, tag), or -1."""
        keys, tags, mask = self._keys, self._tags, self._mask
        i = key & mask
        while True:
            k = keys[i]
            if k == key and tags[i] == tag:
                return i
            if k == 0:
                return -1
            i = (i + 1) & mask

    def get(self, post_id: str, default: str | None = None) -> str | None:
        # _key and _find inlined: several lookups per post make this the map's hot path.
        key, tag = self._memo[post_id]
        keys, mask = self._keys, self._mask
        i = key & mask
        while True:
            k = keys[i]
            if k == key:
                if self._tags[i] == tag:
                    break
            elif not k:
                self._absent, self._absent_at = post_id, i
                return default
            i = (i + 1) & mask
        slot = self._slots[i]
        if slot == _TOMBSTONE:
            return default
        event_id = self._events[slot]
        return default if event_id is None else event_id

    def __getitem__(self, post_id: str) -> str:
        event_id = self.get(post_id)
        if event_id is None:
            raise KeyError(post_id)
        return event_id

    def __contains__(self, post_id: object) -> bool:
        return isinstance(post_id, str) and self.get(post_id) is not None

    def __len__(self) -> int:
        return self._live

    def events(self) -> Iterator[str]:
        """The live events that hold posts (or held them before their posts were popped)."""
        return iter(self._own)

    # -- changes ------------------------------------------------------------------------------------------------

    def __setitem__(self, post_id: str, event_id: str) -> None:
        key, tag = self._memo[post_id]  # self._key(post_id) without its call (once per post, as get())
        owned = self._own.get(event_id)  # _slot_for's first case (an event with posts) without its call
        slot = owned[0] if owned is not None else self._slot_for(event_id)  # (may rehash: forgets the absent id)
        i = self._absent_at if post_id is self._absent else self._find(key, tag)
        self._absent = None
        if i >= 0 and self._keys[i]:  # known (or popped, or of an expired event): it now stands for event_id
            self._release(self._slots[i])
            self._slots[i] = slot
            self._counts[slot] += 1
            self._live += 1
            return
        keys, mask = self._keys, self._mask
        if (self._used + 1) * 4 > (self._mask + 1) * 3:
            self._rehash()
            slot = self._own[event_id][0]  # renumbered
            keys, mask = self._keys, self._mask
            i = -1
        if i < 0:  # the first free position of its probe
            i = key & mask
            while keys[i]:
                i = (i + 1) & mask
        keys[i] = key
        self._tags[i] = tag
        self._slots[i] = slot
        self._counts[slot] += 1
        self._live += 1
        self._used += 1

    def pop(self, post_id: str, default: str | None = None) -> str | None:
        i = self._find(*self._key(post_id))
        if i < 0:
            return default
        slot = self._slots[i]
        if slot == _TOMBSTONE:
            return default
        event_id = self._events[slot]
        self._release(slot)
        self._slots[i] = _TOMBSTONE
        return default if event_id is None else event_id

    def _release(self, slot: int) -> None:
        """An entry stops holding ``slot``."""
        if slot == _TOMBSTONE:
            return
        self._counts[slot] -= 1
        if self._events[slot] is None:
            self._dead -= 1
        else:
            self._live -= 1

    def _slot_for(self, event_id: str) -> int:
        slots = self._own.get(event_id)
        if slots is not None:
            return slots[0]
        slot = len(self._events)
        if slot >= _TOMBSTONE:
            self._rehash()  # renumbers the live slots densely
            slot = len(self._events)
        self._events.append(event_id)
        self._counts.append(0)
        self._own[event_id] = [slot]
        return slot

    def merge(self, gone: str, keep: str) -> None:
        """Every post of event ``gone`` belongs to ``keep`` from now on."""
        moved = self._own.pop(gone, None)
        if moved is None or gone == keep:
            if moved is not None:
                self._own[gone] = moved
            return
        events = self._events
        for slot in moved:
            events[slot] = keep
        target = self._own.get(keep)
        self._own[keep] = moved if target is None else sorted(target + moved)

    def drop(self, event_id: str) -> None:
        """Forget every post of ``event_id`` (it expired), with those of the events merged into it."""
        slots = self._own.pop(event_id, None)
        if slots is None:
            return
        events, counts = self._events, self._counts
        for slot in slots:
            events[slot] = None
            self._live -= counts[slot]
            self._dead += counts[slot]

    def _rehash(self) -> None:
        """Rebuild the table with room for twice the live entries; drop tombstones and entries of expired events,
        and renumber the live slots in order."""
        renumber = _zeros("I", len(self._events))
        events: list[str | None] = []
        for old, event_id in enumerate(self._events):
            if event_id is not None:
                renumber[old] = len(events)
                events.append(event_id)
        cap = _MIN_CAPACITY
        while cap < 2 * self._live:
            cap *= 2
        old_keys, old_tags, old_slots, old_events = self._keys, self._tags, self._slots, self._events
        self._alloc(cap)
        keys, tags, slots, mask = self._keys, self._tags, self._slots, self._mask
        counts = _zeros("I", len(events))
        used = 0
        for pos, key in enumerate(old_keys):
            if not key:
                continue
            slot = old_slots[pos]
            if slot == _TOMBSTONE or old_events[slot] is None:
                continue
            slot = renumber[slot]
            i = key & mask
            while keys[i]:
                i = (i + 1) & mask
            keys[i] = key
            tags[i] = old_tags[pos]
            slots[i] = slot
            counts[slot] += 1
            used += 1
        self._events = events
        self._counts = counts
        self._own = {eid: [renumber[s] for s in owned] for eid, owned in self._own.items()}
        self._live = self._used = used
        self._dead = 0
        self._forget_absent()

    # -- persistence --------------------------------------------------------------------------------------------

    def to_data(self) -> dict[str, Any]:
        """Plain, JSON-able state: the arrays as they are; ``from_data(to_data())`` continues identically."""
        return {
            "format": POSTMAP_FORMAT,
            "events": list(self._events),
            "own": [self._own[eid] for eid in self._own],
            "owners": list(self._own),
            "counts": _pack(self._counts),
            "keys": _pack(self._keys),
            "tags": _pack(self._tags),
            "slots": _pack(self._slots),
            "live": self._live,
            "used": self._used,
            "dead": self._dead,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> PostMap:
        """Inverse of ``to_data``; ``ValueError`` when the data is not a post map of this format."""
        if data.get("format") != POSTMAP_FORMAT:
            raise ValueError(f"post map format {data.get('format')!r}, expected {POSTMAP_FORMAT}")
        self = cls.__new__(cls)
        self._keys, self._tags, self._slots = (_unpack(t, data[k]) for t, k in (("Q", "keys"), ("I", "tags"),
                                                                                ("I", "slots")))  # fmt: skip
        cap = len(self._keys)
        if cap < _MIN_CAPACITY or cap & (cap - 1) or len(self._tags) != cap or len(self._slots) != cap:
            raise ValueError(f"post map arrays of {cap}/{len(self._tags)}/{len(self._slots)} entries")
        self._mask = cap - 1
        self._events = list(data["events"])
        self._counts = _unpack("I", data["counts"])
        if len(self._counts) != len(self._events):
            raise ValueError("post map counts and events differ in length")
        self._own = {eid: list(slots) for eid, slots in zip(data["owners"], data["own"], strict=True)}
        self._live, self._used, self._dead = int(data["live"]), int(data["used"]), int(data["dead"])
        self._memo = Memo(_digest, _MEMO_LIMIT)
        self._forget_absent()
        return self

    @classmethod
    def of(cls, pairs: Iterator[tuple[str, str]] | list[tuple[str, str]]) -> PostMap:
        """A map holding ``(post id, event id)`` pairs, e.g. from the member lists of an older snapshot."""
        out = cls()
        for post_id, event_id in pairs:
            out[post_id] = event_id
        return out
