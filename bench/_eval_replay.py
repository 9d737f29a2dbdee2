"""Scenario helpers of bench/grading_eval.py: concurrent replay, text-bearing posts, calibration split, leak check.

The ground truth (`event_id`) is read here only to *build the scenario* (which posts move together in time, which
events are scored on which half); the grader never sees it: `_pipeline.collect` removes it before parsing.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = [
    "CONCURRENT_START",
    "OWN_WORDS_MIN",
    "concurrent_rows",
    "event_split",
    "own_words",
    "shuffle_truth",
    "text_bearing",
]

# Where a concurrent replay's window starts (any fixed instant; Beijing time like the data).
CST = timezone(timedelta(hours=8))
CONCURRENT_START = datetime(2014, 1, 1, tzinfo=CST)
# A post is "text-bearing" when its own words (see own_words) are at least this many characters.
OWN_WORDS_MIN = 15

# Quoted repost chains ("//@someone: their words" up to the end), reply prefixes, mentions, URLs, emoticon codes
# ([哈哈]) and Weibo's default repost text: none of it is the poster's own words.
_CHAIN = re.compile(r"//\s*@.*$", re.S)
_REPLY = re.compile(r"回复\s*@[^:：\s]{1,30}\s*[:：]")
_MENTION = re.compile(r"@[^\s:：,，。!！?？@/]{1,30}")
_URL = re.compile(r"https?://\S*|www\.\S+")
_EMOTICON = re.compile(r"\[[^\[\]]{1,8}\]")
_DEFAULT = re.compile(r"转发微博|轉發微博|repost", re.I)


def own_words(text: str) -> str:
    """The poster's own words: text without `//@` chains, reply prefixes, mentions, URLs, emoticon codes and
    转发微博, and without whitespace, punctuation and symbols (so "！！！" or "……" count for nothing)."""
    t = _CHAIN.sub("", text)
    for pattern in (_REPLY, _URL, _MENTION, _EMOTICON, _DEFAULT):
        t = pattern.sub("", t)
    return "".join(ch for ch in t if unicodedata.category(ch)[0] not in "PSZC")


def text_bearing(text: str, min_chars: int = OWN_WORDS_MIN) -> bool:
    return len(own_words(text)) >= min_chars


def concurrent_rows(
    rows: Sequence[dict[str, Any]], hours: float, seed: int
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every event moved to start at a seeded random instant within `hours` of CONCURRENT_START, keeping its own
    timing (each post shifted by its event's offset); returns the rows re-sorted by time (then id) and the offset
    (seconds) of each event, to shift the ground truth with."""
    start: dict[str, float] = {}
    for r in rows:
        ts = datetime.fromisoformat(r["created_at"]).timestamp()
        eid = r["event_id"]
        if eid not in start or ts < start[eid]:
            start[eid] = ts
    rng = random.Random(seed)
    base = CONCURRENT_START.timestamp()
    # Sorted ids: the draw does not depend on the file's order. Whole seconds, like the posts' times: with a
    # fractional offset the ground-truth start (source time + offset) fell up to half a second after the moved
    # source post, and an alert at the source post itself was taken for one from before the event.
    offsets = {eid: float(round(base + rng.uniform(0.0, hours * 3600.0) - start[eid])) for eid in sorted(start)}
    out: list[tuple[float, str, dict[str, Any]]] = []
    for r in rows:
        ts = datetime.fromisoformat(r["created_at"]).timestamp() + offsets[r["event_id"]]
        moved = dict(r)
        moved["created_at"] = datetime.fromtimestamp(round(ts), tz=CST).isoformat()
        out.append((round(ts), r["id"], moved))
    out.sort(key=lambda x: (x[0], x[1]))
    return [r for _, _, r in out], offsets


def event_split(event_ids: Sequence[str], how: str, seed: int) -> tuple[set[str], set[str], str]:
    """(calibration events, report events, description). `how`: 'event' = a seeded half of the events by a hash of
    their id; 'year:YYYY' = source posts before YYYY calibrate, the rest report (the caller passes 'year:…' ids
    as 'YYYY|event_id' strings, see grading_eval)."""
    if how == "event":
        ids = sorted(event_ids)
        random.Random(seed).shuffle(ids)
        calib = set(ids[: len(ids) // 2])
        return calib, set(event_ids) - calib, f"a seeded random half of the events (seed {seed})"
    if how.startswith("year:"):
        year = how.split(":", 1)[1]
        calib = {e for e in event_ids if e.split("|", 1)[0] < year}
        return calib, set(event_ids) - calib, f"events whose source post is before {year} calibrate"
    raise ValueError(f"unknown split {how!r}: use 'event' or 'year:YYYY'")


def shuffle_truth(rows: Sequence[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """The rows with `event_id` and `label` permuted among them (for the leak check: no prediction may change)."""
    rng = random.Random(seed)
    truth = [(r.get("event_id"), r.get("label")) for r in rows]
    rng.shuffle(truth)
    return [dict(r, event_id=e, label=lab) for r, (e, lab) in zip(rows, truth, strict=True)]
