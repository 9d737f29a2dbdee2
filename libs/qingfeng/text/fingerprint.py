"""64-bit SimHash over character shingles, and a banded LSH index to find fingerprints within a Hamming radius.

SimHash: every distinct shingle (n consecutive characters of the normalised text) gets a stable 64-bit hash;
bit i of the fingerprint is 1 when more than half of the shingles have bit i set. Near-identical texts share
most shingles and so most bits. Shingles count once however often they repeat: with repetition, a long run of
哈哈哈哈 would outweigh the rest of a post and make unrelated laughing replies near-duplicates.

The obvious implementation makes a string per shingle, hashes it and loops over 64 bits (~100 µs for a 100-char
post in CPython). Here every step runs in C loops over whole lists:

- shingle hashes are *simple tabulation* hashes, ``T0[c0] ^ T1[c1] ^ T2[c2]`` with one random table per position
  (3-independent, stable: the tables are derived from BLAKE2b of the character), so no shingle string is built;
- each table entry is stored *spread*: a 1024-bit integer with one 16-bit counter lane per bit. Spreading is
  linear over XOR, so the spread of a shingle hash is the XOR of its characters' spread entries;
- the distinct spread values (a set: equal shingles give equal values) are summed with ordinary integer
  additions, and the majority test is done on all
  64 lanes at once by adding a bias that carries into each lane's top bit exactly when the count passes half.

Long texts take a second route to the same fingerprint, because there the per-position work dominates (three
lookups, two XORs of 1024-bit integers and a set insertion per character, about 0.35 µs): one lookup per character
fetches the character's hashes for every shingle position at once (packed little-endian 64-bit words), the XOR of
the k shifted columns is done on three big integers, the distinct shingle hashes are a set of plain 64-bit
integers, and the per-bit majority is counted column by column over their bytes with big-integer ANDs and
popcounts. Both routes use the same character hashes, so they give the same fingerprint (tested on the shared data
and long texts).

LSH: split the 64 bits into ``bands`` bands; two fingerprints within Hamming distance ``bands - 1`` agree on at
least one whole band (pigeonhole), so looking up each band of a query in a hash table finds every candidate.
"""

from __future__ import annotations

import codecs
import hashlib
import struct
from array import array
from collections.abc import Hashable, Iterable
from operator import xor

__all__ = ["MAX_FINGERPRINT_CHARS", "SimhashIndex", "hamming", "simhash64"]

_BITS = 64
_LANE = 16  # counter width per bit: the bias trick needs fewer than 2**16 shingles
_ONES = sum(1 << (_LANE * i) for i in range(_BITS))
_TOP = _ONES << (_LANE - 1)
_HALF = 1 << (_LANE - 1)
# _SPREAD[k][b]: byte b at byte position k of a hash, spread into its 8 lanes
_SPREAD = tuple(
    tuple(sum(((b >> j) & 1) << (_LANE * (8 * k + j)) for j in range(8)) for b in range(256)) for k in range(8)
)
_TO_DIGITS = bytes.maketrans(b"\x00\x01", b"01")

MAX_FINGERPRINT_CHARS = 60_000
"""Only the first this many characters are fingerprinted (lane capacity; no post is that long in practice)."""

_TABLE_MAX = 1 << 16  # distinct characters cached per table before it is cleared (bounded memory)
# From this many shingle positions on, the packed route is faster: measured on the shared posts' canonical forms
# (2026-11-30, one process, loaded machine), it costs 1.88x the per-position route at 15 characters, 1.01x at 54,
# 0.75x at 110, 0.62x at 225 and 0.41-0.52x from 450 on (its fixed cost is ~150 C calls per text).
PACKED_MIN_POSITIONS = 64


class _SpreadTable(dict[str, int]):
    """Character → spread random 64-bit value for one shingle position, computed on first use."""

    __slots__ = ("_person",)

    def __init__(self, position: int) -> None:
        super().__init__()
        self._person = f"qf-simhash-{position}".encode()

    def __missing__(self, ch: str) -> int:
        if len(self) >= _TABLE_MAX:
            self.clear()
        d = hashlib.blake2b(ch.encode("utf-8", "surrogatepass"), digest_size=8, person=self._person).digest()
        s0, s1, s2, s3, s4, s5, s6, s7 = _SPREAD
        value = s0[d[0]] | s1[d[1]] | s2[d[2]] | s3[d[3]] | s4[d[4]] | s5[d[5]] | s6[d[6]] | s7[d[7]]
        self[ch] = value
        return value


class _PackedTable:
    """Code point → its hashes for shingle positions 0..k-1 as k little-endian 64-bit words, computed on first use.

    The words are the BLAKE2b digests ``_SpreadTable`` spreads, so both routes hash characters identically. A text
    is packed by the ``charmap`` codec, which looks every character up in this dict in C, without making a Python
    string per character (about half the cost of ``b"".join(map(table.__getitem__, text))``).
    """

    __slots__ = ("_codes", "_persons")

    def __init__(self, size: int) -> None:
        self._persons = tuple(f"qf-simhash-{k}".encode() for k in range(size))
        self._codes: dict[int, bytes] = {}

    def pack(self, text: str) -> bytes:
        """The words of every character of ``text``, in order."""
        try:
            packed: bytes = codecs.charmap_encode(text, "strict", self._codes)[0]
        except UnicodeEncodeError:  # a character not seen before: hash the new ones, then pack
            self._learn(text)
            packed = codecs.charmap_encode(text, "strict", self._codes)[0]
        return packed

    def _learn(self, text: str) -> None:
        codes = self._codes
        present = {ord(ch) for ch in set(text)}
        if len(codes) + len(present) > _TABLE_MAX:
            codes.clear()  # bounded memory, as for _SpreadTable
        for code in present - codes.keys():
            data = chr(code).encode("utf-8", "surrogatepass")
            codes[code] = b"".join(hashlib.blake2b(data, digest_size=8, person=p).digest() for p in self._persons)


_tables: dict[int, tuple[_SpreadTable, ...]] = {}
_packed: dict[int, _PackedTable] = {}


def simhash64(text: str, shingle_size: int = 3) -> int:
    """The 64-bit SimHash of the character ``shingle_size``-grams of ``text``; 0 for an empty text."""
    if not text:
        return 0
    if shingle_size < 1:
        raise ValueError(f"shingle_size must be at least 1, got {shingle_size}")
    tables = _tables.get(shingle_size)
    if tables is None:
        tables = _tables[shingle_size] = tuple(_SpreadTable(k) for k in range(shingle_size))
    if len(text) < shingle_size:
        text = text.ljust(shingle_size, "\0")
    elif len(text) > MAX_FINGERPRINT_CHARS:
        text = text[:MAX_FINGERPRINT_CHARS]
    positions = len(text) - shingle_size + 1
    if positions >= PACKED_MIN_POSITIONS:
        return _simhash_packed(text, shingle_size, positions)
    lanes: Iterable[int] = map(tables[0].__getitem__, text[:positions])
    for k in range(1, shingle_size):
        lanes = map(xor, lanes, map(tables[k].__getitem__, text[k : k + positions]))
    distinct = set(lanes)
    count = len(distinct)
    # Lane value c + 2**15 - (count//2 + 1) has its top bit set iff c > count / 2.
    top = (sum(distinct) + (_HALF - (count // 2 + 1)) * _ONES) & _TOP
    digits = (top >> (_LANE - 1)).to_bytes(_BITS * _LANE // 8, "little")[:: _LANE // 8]
    return int(digits[::-1].translate(_TO_DIGITS), 2)


def _simhash_packed(text: str, size: int, positions: int) -> int:
    """``simhash64`` of a long text (``positions`` = number of shingles); see the module docstring."""
    table = _packed.get(size)
    if table is None:
        table = _packed[size] = _PackedTable(size)
    words = array("Q", table.pack(text))
    # word k of each character is its hash for shingle position k; taken from character k on, it lines up with the
    # shingle starts, so the XOR of the k columns (as big integers, in C) is every shingle's hash at once
    shingles = 0
    for k in range(size):
        shingles ^= int.from_bytes(words[k * size + k : (k + positions) * size : size], "little")
    # native-order words round-trip through the set unchanged, so their bytes are the little-endian hashes again
    distinct = set(memoryview(shingles.to_bytes(8 * positions, "little")).cast("Q"))
    count = len(distinct)
    half = count // 2
    data = struct.pack(f"{count}Q", *distinct)
    masks = _bit_masks(count)
    fingerprint = 0
    for byte in range(8):
        # byte k of every hash as one integer; AND with "bit j of every byte" and a popcount count the hashes with
        # bit 8k+j set (eight C calls per column where a loop over the hashes would be thousands of Python steps)
        column = int.from_bytes(data[byte::8], "little")
        for bit, mask in enumerate(masks):
            if (column & mask).bit_count() > half:
                fingerprint |= 1 << (8 * byte + bit)
    return fingerprint


_masks: list[tuple[int, ...]] = [()]


def _bit_masks(length: int) -> tuple[int, ...]:
    """For j in 0..7, an integer of at least ``length`` bytes with bit j of every byte set (grown on demand).

    An AND costs the length of the shorter operand, so a long mask serves every shorter column.
    """
    masks = _masks[0]
    if not masks or masks[0].bit_length() < 8 * (length - 1) + 1:
        size = max(length, 2 * ((masks[0].bit_length() + 7) // 8) if masks else 4096)
        masks = _masks[0] = tuple(int.from_bytes(bytes([1 << j]) * size, "little") for j in range(8))
    return masks


def hamming(a: int, b: int) -> int:
    """Number of differing bits."""
    return (a ^ b).bit_count()


class SimhashIndex:
    """Fingerprints by key, searchable by Hamming distance < ``bands`` through banded hash tables.

    Not thread-safe; memory is proportional to the number of keys added and not removed.
    """

    __slots__ = ("_bands", "_mask", "_shifts", "_tables")

    def __init__(self, bands: int = 4) -> None:
        if bands < 1 or _BITS % bands:
            raise ValueError(f"bands must divide {_BITS}, got {bands}")
        self._bands = bands
        band_bits = _BITS // bands
        self._mask = (1 << band_bits) - 1
        self._shifts = tuple(i * band_bits for i in range(bands))
        self._tables: tuple[dict[int, dict[Hashable, int]], ...] = tuple({} for _ in range(bands))

    @property
    def max_distance(self) -> int:
        """The largest Hamming distance a query is guaranteed to find."""
        return self._bands - 1

    def _band_values(self, fingerprint: int) -> zip[tuple[dict[int, dict[Hashable, int]], int]]:
        mask = self._mask
        return zip(self._tables, [(fingerprint >> shift) & mask for shift in self._shifts], strict=True)

    def add(self, key: Hashable, fingerprint: int) -> None:
        """Index ``key`` under ``fingerprint``."""
        for table, value in self._band_values(fingerprint):
            bucket = table.get(value)
            if bucket is None:
                table[value] = {key: fingerprint}
            else:
                bucket[key] = fingerprint

    def remove(self, key: Hashable, fingerprint: int) -> None:
        """Forget ``key`` (a no-op when it is not indexed under ``fingerprint``)."""
        for table, value in self._band_values(fingerprint):
            bucket = table.get(value)
            if bucket is not None and bucket.pop(key, None) is not None and not bucket:
                del table[value]

    def query(self, fingerprint: int, max_distance: int | None = None) -> list[tuple[Hashable, int]]:
        """Keys within ``max_distance`` (default :attr:`max_distance`) with their distances, nearest first."""
        limit = self.max_distance if max_distance is None else max_distance
        if limit > self.max_distance:
            raise ValueError(f"max_distance {limit} exceeds what {self._bands} bands guarantee ({self.max_distance})")
        found: dict[Hashable, int] = {}
        for table, value in self._band_values(fingerprint):
            bucket = table.get(value)
            if bucket:
                for key, other in bucket.items():
                    if key not in found:
                        distance = (fingerprint ^ other).bit_count()
                        if distance <= limit:
                            found[key] = distance
        return sorted(found.items(), key=lambda kv: kv[1])
