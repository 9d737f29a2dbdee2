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

Longer texts take a second route to the same fingerprint, in numpy, because there the per-position work dominates
(three lookups, two XORs of 1024-bit integers and a set insertion per character, about 0.35 µs): the text's code
points index a dense table of every BMP character's hashes for each shingle position (the same BLAKE2b words, as
unsigned 64-bit integers; characters beyond the BMP come from a small dict), the k shifted columns are XORed into
every shingle's hash at once, sorting and dropping repeats leaves the distinct hashes, and the per-bit majority is
read from one histogram of their bytes (byte value by byte position, then bit by bit through a 256 x 8 table). Both
routes use the same character hashes, so they give the same fingerprint (tested on the shared data and long texts).

LSH: split the 64 bits into ``bands`` bands; two fingerprints within Hamming distance ``bands - 1`` agree on at
least one whole band (pigeonhole), so looking up each band of a query in a hash table finds every candidate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from functools import partial
from operator import xor

import numpy as np
import numpy.typing as npt

from qingfeng.memo import Memo

__all__ = ["MAX_FINGERPRINT_CHARS", "SimhashIndex", "hamming", "simhash64", "simhash64_many"]

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
# From this many shingle positions on, the numpy route is faster (its fixed cost is ~20 numpy calls, ~28 µs, per
# text): measured on the shared posts' canonical forms (2026-11-30, one process, loaded machine) it costs 3.4x the
# per-position route at 15 characters, 1.15x at 54, 0.67x at 110, 0.36x at 225 and 0.17x at 900. Inside the whole
# step (a post through every stage, tables no longer in cache) the gain at ~110 was lost in the noise of a loaded
# machine, so the switch is set where the gain is clear.
PACKED_MIN_POSITIONS = 128


def _spread(person: bytes, ch: str) -> int:
    d = hashlib.blake2b(ch.encode("utf-8", "surrogatepass"), digest_size=8, person=person).digest()
    s0, s1, s2, s3, s4, s5, s6, s7 = _SPREAD
    return s0[d[0]] | s1[d[1]] | s2[d[2]] | s3[d[3]] | s4[d[4]] | s5[d[5]] | s6[d[6]] | s7[d[7]]


def _spread_table(position: int) -> Memo[str, int]:
    """Character → spread random 64-bit value for one shingle position, computed on first use."""
    return Memo(partial(_spread, f"qf-simhash-{position}".encode()), _TABLE_MAX)


_BMP = 1 << 16
# _BYTE_SLOTS[k]: 256 * k, so that byte k of a hash with value v counts in histogram slot 256 * k + v
_BYTE_SLOTS = np.arange(0, 8 * 256, 256, dtype=np.intp)
# _BITS_OF_BYTE[v, j]: bit j of the byte value v
_BITS_OF_BYTE = ((np.arange(256, dtype=np.int64)[:, None] >> np.arange(8, dtype=np.int64)) & 1).astype(np.int64)
_HASH = np.dtype("<u8")  # little-endian whatever the machine, so byte k of a hash is bits 8k..8k+7


class _WordTable:
    """Code point → its hashes for shingle positions 0..k-1 (the BLAKE2b words ``_spread_table`` spreads).

    A dense numpy table over the BMP (64 Ki rows of k words: 1.5 MB for k = 3), filled on first use of a character, so
    a text's hashes are one indexing operation; characters beyond the BMP (emoji, rare ideographs) are looked up in
    a dict, cleared when it reaches ``_TABLE_MAX`` entries (bounded memory, as for ``_spread_table``).
    """

    __slots__ = ("_astral", "_known", "_persons", "_words")

    def __init__(self, size: int) -> None:
        self._persons = tuple(f"qf-simhash-{k}".encode() for k in range(size))
        self._words = np.zeros((_BMP, size), dtype=_HASH)
        self._known = np.zeros(_BMP, dtype=np.bool_)
        self._astral: Memo[int, list[int]] = Memo(self._row, _TABLE_MAX)

    def _row(self, code: int) -> list[int]:
        data = chr(code).encode("utf-8", "surrogatepass")
        return [
            int.from_bytes(hashlib.blake2b(data, digest_size=8, person=p).digest(), "little") for p in self._persons
        ]

    def words(self, text: str) -> npt.NDArray[np.uint64]:
        """Row i: the hashes of character i of ``text`` for each shingle position."""
        codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        astral = codes >= _BMP
        has_astral = bool(astral.any())
        index = np.where(astral, 0, codes) if has_astral else codes
        known = self._known[index]
        if not known.all():
            for code in np.unique(index[~known]).tolist():
                self._words[code] = self._row(code)
                self._known[code] = True
        words: npt.NDArray[np.uint64] = self._words[index]
        if has_astral:
            table = self._astral
            for position in np.flatnonzero(astral).tolist():
                words[position] = table[int(codes[position])]
        return words


_tables: dict[int, tuple[Memo[str, int], ...]] = {}
_packed: dict[int, _WordTable] = {}


def simhash64(text: str, shingle_size: int = 3) -> int:
    """The 64-bit SimHash of the character ``shingle_size``-grams of ``text``; 0 for an empty text."""
    if not text:
        return 0
    if shingle_size < 1:
        raise ValueError(f"shingle_size must be at least 1, got {shingle_size}")
    tables = _tables.get(shingle_size)
    if tables is None:
        tables = _tables[shingle_size] = tuple(_spread_table(k) for k in range(shingle_size))
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
    """``simhash64`` of a longer text (``positions`` = number of shingles); see the module docstring."""
    table = _packed.get(size)
    if table is None:
        table = _packed[size] = _WordTable(size)
    words = table.words(text)
    # word k of each character is its hash for shingle position k; taken from character k on, it lines up with the
    # shingle starts, so the XOR of the k columns is every shingle's hash at once
    shingles = words[0:positions, 0].copy()
    for k in range(1, size):
        shingles ^= words[k : k + positions, k]
    shingles.sort()
    keep = np.empty(positions, dtype=np.bool_)
    keep[0] = True
    np.not_equal(shingles[1:], shingles[:-1], out=keep[1:])
    distinct = shingles[keep]
    count = len(distinct)
    # one histogram of (byte position, byte value) over the distinct hashes, then bit j of byte k counted through
    # the byte values that have it: counts[k, j] hashes have bit 8k + j set
    slots = distinct.view(np.uint8).reshape(count, 8) + _BYTE_SLOTS
    histogram = np.bincount(slots.ravel(), minlength=8 * 256).reshape(8, 256)
    counts = histogram @ _BITS_OF_BYTE
    majority = np.packbits(counts.ravel() > count // 2, bitorder="little")
    return int.from_bytes(majority.tobytes(), "little")


# From this many texts of a width class on, ``simhash64_many`` fingerprints them in one numpy pass (its fixed cost,
# ~20 numpy calls, is then shared); fewer go one by one through ``simhash64``.
MANY_MIN_TEXTS = 8
# Width classes of ``simhash64_many``: a text's shingles are padded to its class's widest text (the padding repeats
# one of its own shingles, so it adds no distinct hash); texts of PACKED_MIN_POSITIONS shingles or more take
# ``simhash64``'s own numpy route one by one.
_WIDTHS = (32, PACKED_MIN_POSITIONS - 1)


def simhash64_many(texts: Sequence[str], shingle_size: int = 3) -> list[int]:
    """``[simhash64(text, shingle_size) for text in texts]``, equal values, short texts fingerprinted together.

    A short text costs ``simhash64`` a fixed ~5-10 µs of Python-level set-up for a few dozen shingles, and short
    texts are most of a microblog stream's fingerprints. Here the texts of a width class are one matrix, a row per
    text: their characters' words are looked up in the numpy route's table at once, each row's shingle hashes are
    XORed together, sorted within the row and kept where they differ from their left neighbour (the distinct hashes),
    and every row's per-bit counts are one sum per row over the distinct hashes' unpacked bits: the same hashes and
    the same majority test as both routes of ``simhash64``.
    """
    if shingle_size < 1:
        raise ValueError(f"shingle_size must be at least 1, got {shingle_size}")
    out = [0] * len(texts)
    classes: list[list[int]] = [[] for _ in _WIDTHS]
    for i, text in enumerate(texts):
        positions = len(text) - shingle_size + 1
        if not text or positions > _WIDTHS[-1] or len(texts) < MANY_MIN_TEXTS:
            out[i] = simhash64(text, shingle_size)
            continue
        for slot, width in enumerate(_WIDTHS):
            if positions <= width:
                classes[slot].append(i)
                break
    for members in classes:
        if len(members) < MANY_MIN_TEXTS:
            for i in members:
                out[i] = simhash64(texts[i], shingle_size)
        elif members:
            fitted = [texts[i].ljust(shingle_size, "\0") for i in members]  # short texts padded as simhash64 pads
            for i, value in zip(members, _simhash_rows(fitted, shingle_size), strict=True):
                out[i] = value
    return out


def _simhash_rows(texts: list[str], size: int) -> list[int]:
    """``simhash64`` of each of ``texts`` (each at least ``size`` characters), a row of a matrix per text."""
    table = _packed.get(size)
    if table is None:
        table = _packed[size] = _WordTable(size)
    lengths = np.fromiter(map(len, texts), dtype=np.intp, count=len(texts))
    words = table.words("".join(texts))
    positions = lengths - size + 1
    width = int(positions.max())
    # start of each row's shingle j in the joined text; past a row's last shingle, its last one again (a repeat)
    starts = (np.cumsum(lengths) - lengths)[:, None] + np.minimum(
        np.arange(width, dtype=np.intp)[None, :], (positions - 1)[:, None]
    )
    shingles = words[starts, 0]
    for k in range(1, size):
        shingles ^= words[starts + k, k]
    shingles.sort(axis=1)
    keep = np.empty(shingles.shape, dtype=np.bool_)
    keep[:, 0] = True
    np.not_equal(shingles[:, 1:], shingles[:, :-1], out=keep[:, 1:])
    counts = keep.sum(axis=1)
    # the distinct hashes row after row, as bits: bits[8k + j, i] is bit j of byte k of the i-th (bit 8k + j)
    kept = shingles[keep]
    bits = np.unpackbits(np.ascontiguousarray(kept.view(np.uint8).reshape(-1, 8).T), axis=0, bitorder="little")
    per_bit = np.add.reduceat(bits, np.cumsum(counts) - counts, axis=1, dtype=np.int32)  # (64, rows)
    majority = np.packbits(per_bit > (counts // 2)[None, :], axis=0, bitorder="little")  # (8, rows): byte k
    values: list[int] = np.ascontiguousarray(majority.T).view(_HASH).ravel().tolist()
    return values


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
