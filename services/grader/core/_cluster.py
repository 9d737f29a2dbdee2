"""The state event detection keeps per event, and its plain-data form."""

from __future__ import annotations

from typing import Any

__all__ = ["Cluster", "keywords_due"]

# Shared by every cluster that has no placeholder (all of them without parent links): never appended to (Clusterer
# gives a cluster its own list first), one object less per event for the garbage collector's full collections.
NO_PLACEHOLDERS: list[str] = []


class Cluster:
    """What event detection keeps about one event."""

    __slots__ = (
        "activity",
        "anchor",
        "fingerprints",
        "first_ts",
        "id",
        "keywords",
        "keywords_size",
        "last_ts",
        "members",
        "placeholders",
        "profile",
        "seed",
        "size",
        "title",
        "title_score",
    )  # fmt: skip

    def __init__(self, cid: str, ts: float) -> None:
        self.id = cid
        self.first_ts = self.last_ts = ts
        self.size = 0
        self.members: list[str] = []
        self.placeholders: list[str] = NO_PLACEHOLDERS  # its own list from the first placeholder on
        self.profile: dict[str, int] = {}
        self.fingerprints: dict[int, None] = {}
        self.title = ""
        self.title_score = -2
        self.keywords: tuple[str, ...] = ()
        self.keywords_size = 0
        self.activity = 0.0  # decayed post count as of last_ts
        self.seed = True  # opened by a post rich enough to attract others by activity alone
        self.anchor = False  # opened by a post others reposted or commented on: a cascade's source (rare terms)

    def to_list(self) -> list[Any]:
        row = [
            self.id, self.first_ts, self.last_ts, self.size, self.members, self.placeholders, self.profile,
            [str(fp) for fp in self.fingerprints], self.title, self.title_score, list(self.keywords),
            self.keywords_size, self.activity, self.seed,
        ]  # fmt: skip
        if self.anchor:  # only then: a state without anchors (parents kept) is written exactly as before
            row.append(True)
        return row

    @classmethod
    def from_list(cls, row: list[Any]) -> Cluster:
        c = cls(row[0], row[1])
        c.last_ts, c.size, c.members, c.placeholders, c.profile = row[2], row[3], list(row[4]), list(row[5]), row[6]
        c.fingerprints = dict.fromkeys(int(fp) for fp in row[7])
        c.title, c.title_score, c.keywords, c.keywords_size = row[8], row[9], tuple(row[10]), row[11]
        c.activity, c.seed = row[12], row[13]
        c.anchor = bool(row[14]) if len(row) > 14 else False  # absent from states of before
        return c


def keywords_due(c: Cluster) -> bool:
    """The event's keywords are refreshed as it doubles or every 16 posts (Clusterer.keywords; snapshots ask first,
    so most of them take the keywords the cluster holds without that call)."""
    size, last = c.size, c.keywords_size
    return size != last and (size >= 2 * last or size - last >= 16)
