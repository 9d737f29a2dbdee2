"""Online event detection: which event a post belongs to, decided once, as the post arrives.

The rule is "never lump": a post joins an event only on evidence that it belongs there, and stays apart
otherwise. The signals, strongest first:
1. the repost/reply parent (or the chain's root, or a repost that named this post as its parent) already
   belongs to an event. Parent links are authoritative: a post placed by them takes no text link, so a
   reply quoting another story does not merge two cascades (unless `merge_on_text` is set);
2. for a post without such a link (when `originals_by_text` allows originals to link by text at all: in
   a stream without parents; with parents a cascade is the unit), a near-duplicate text (or the collector's
   `duplicate_of`): SimHash within `near_dup_max_hamming` bits,
   found through a 4 x 16-bit band index (see _lsh.py), of a text of at least `near_dup_min_keywords`
   keywords, in an event active within `text_window_seconds`;
3. for a post without such a link, several rare shared keywords (at least `keyword_min_shared`, each in
   under `keyword_max_df` of the posts, together at least `keyword_min_score` of the post's idf weight)
   with an event active within `keyword_window_seconds` (_matching.py);
4. for a post without such a link (in `for_lost_parents()`), rare terms shared with one *anchor* event active
   within `rare_window_seconds` (one opened by a post others reposted or commented on, a cascade's source) clearly
   more than with any other, in its posts' keywords or its source post's text (_anchor_text.py); two such terms,
   or one rare enough or owned by that anchor (see ClusteringConfig). A post that is itself an anchor takes none;
5. optionally, weak signals for posts that carry no usable text: the author's own recent event, or the
   event that was most active in the last minutes (off by default and in `for_lost_parents()`: they
   pull unrelated posts into the busiest event of the hour).
Otherwise the post opens a new event "ev-<post id>" — or, when it has no usable words and nothing could
ever link to it (`attach_wordless` off: a stream without repost parents), it joins no event at all
("unattached": it moves no event's level). When one post links two events by parent links, the younger
event is merged into the older one and its id redirects to the survivor. Events idle beyond
`horizon_seconds` leave the index; a merged id resolves while its survivor lives (at most
`redirect_ttl_seconds`).
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any

from ._anchor_text import AnchorTexts
from ._cluster import NO_PLACEHOLDERS, Cluster, keywords_due
from ._clusterer_state import load_state, state_of
from ._clustering_config import ClusteringConfig
from ._lsh import BandIndex
from ._matching import keyword_match, rare_match, top_keywords, weak_match
from ._postmap import PostMap
from .model import PostView

__all__ = ["Assignment", "Clusterer", "ClusteringConfig"]


@dataclass(frozen=True, slots=True)
class Assignment:
    """The event a post joined, how, and the events it caused to be merged into that one."""

    event_id: str
    created: bool
    via: str
    absorbed: tuple[str, ...] = ()


class _AssignmentDraft:
    """Assignment's slots, writable: filled, then made an Assignment by assigning __class__ (see _publish.py)."""

    __slots__ = Assignment.__slots__
    event_id: str
    created: bool
    via: str
    absorbed: tuple[str, ...]


assert [f.name for f in fields(Assignment)] == list(Assignment.__slots__) == list(_AssignmentDraft.__annotations__)
_bare = object.__new__


class Clusterer:
    """Assigns posts to events online. Pure and deterministic: same posts in, same events out."""

    def __init__(self, config: ClusteringConfig | None = None) -> None:
        self.config = config or ClusteringConfig()
        # Ordered by last activity (least recent first), so expiry pops from the front. OrderedDicts, not
        # dicts: a dict emptied from the front makes every later next(iter(...)) skip the deleted slots,
        # which made expiry quadratic on a busy stream.
        self.clusters: OrderedDict[str, Cluster] = OrderedDict()
        # Post id -> event id over the horizon, compactly (~16-32 bytes a post; _postmap.py): event members are
        # not kept as lists of ids, the map merges and drops whole events.
        self.posts = PostMap()
        # Parents and roots referenced before (or without) being seen themselves.
        self.placeholders: dict[str, str] = {}
        cfg = self.config
        self.near = BandIndex(cfg.near_dup_max_hamming, cfg.near_dup_max_events, cfg.band_cap)
        self.postings: dict[str, dict[str, float]] = {}
        self.df: dict[str, int] = {}
        self.docs = 0
        self.authors: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.redirects: OrderedDict[str, tuple[str, float]] = OrderedDict()
        # Survivor -> every id merged into it (also through ids merged before): their redirects leave with it.
        # Derived from `redirects` (not stored): rebuilt by load_state.
        self.merged: dict[str, list[str]] = {}
        # Posts that joined no event (post id -> time), remembered so that a redelivery is recognised.
        self.unattached: OrderedDict[str, float] = OrderedDict()
        # The own text of the anchors opened within the rare-term window (for_lost_parents() only; _anchor_text.py).
        self.anchor_texts = AnchorTexts(cfg.rare_window_seconds)
        # The id seen() last found absent from `posts`: nothing adds it before assign() indexes it (expiry only
        # removes), so assign() need not look it up again (a post map lookup is a hash and a probe).
        self._fresh: str | None = None
        # Whether the weak signals are on, and the author one (read for every post; the config is frozen).
        self._by_author = cfg.author_window_seconds > 0
        self._weak = self._by_author or cfg.activity_window_seconds > 0

    # -- queries ---------------------------------------------------------------------------------

    def seen(self, post_id: str) -> bool:
        """The post was already assigned (a redelivery): it must not be counted twice."""
        if self.posts.get(post_id) is not None or post_id in self.unattached:  # get: `in` is a call more
            return True
        self._fresh = post_id
        return False

    def resolve(self, event_id: str) -> str | None:
        """The live event an id now stands for (following merges), or None when unknown or expired."""
        cid: str | None = event_id
        for _ in range(64):  # merge chains are short; the bound guards against a cycle bug
            if cid in self.clusters:
                return cid
            step = self.redirects.get(cid or "")
            if step is None:
                return None
            cid = step[0]
        return None

    def redirect_of(self, event_id: str) -> str | None:
        """Where a merged event went, while its redirect is kept."""
        step = self.redirects.get(event_id)
        return step[0] if step else None

    def title(self, event_id: str) -> str:
        return self.clusters[event_id].title

    def keywords(self, event_id: str, n: int = 10) -> tuple[str, ...]:
        """Most salient keywords (count x idf), refreshed when ``keywords_due``."""
        c = self.clusters[event_id]
        if keywords_due(c):
            df, docs1, log = self.df, self.docs + 1, math.log  # _idf inlined (same formula): one call per term
            scored = [(-count * (log(docs1 / (df.get(kw, 0) + 1)) + 1.0), kw) for kw, count in c.profile.items()]
            # nsmallest(n) is sorted()[:n] without sorting the whole profile (up to 400 terms); keys are distinct.
            c.keywords = tuple([kw for _, kw in heapq.nsmallest(n, scored)])
            c.keywords_size = c.size
        return c.keywords

    # -- assignment ------------------------------------------------------------------------------

    def assign(self, post: PostView, ts: float) -> Assignment:
        """Put one new post into an event (creating or merging events as needed) and index it.

        A post that joins no event gets an Assignment with an empty event id (via "unattached")."""
        cfg = self.config
        given = post.keywords
        # Most posts (reposts) carry none: no dict, list and slice made for nothing.
        keywords = list(dict.fromkeys(given))[: cfg.max_keywords] if given else []
        textual = len(keywords) >= cfg.min_text_keywords
        cid: str | None = None
        via = ""
        links: list[str] = []
        # A post some earlier repost named as its parent joins that repost's event ("child").
        # A duplicate the collector found is text evidence (below), not a repost link.
        dup_of = post.duplicate_of
        refs = ((post.parent_id, "parent"), (post.root_id, "root"), (post.id, "child"))
        posts, fresh, clusters = self.posts, self._fresh, self.clusters
        known: list[str] = []  # refs found in `posts`, which _index would otherwise look up again
        for ref, how in refs:
            if ref:
                found = None if ref == fresh else posts.get(ref)
                if found is not None:
                    known.append(ref)
                else:
                    found = self.placeholders.get(ref)
                if found and found not in clusters:  # resolve() only for a merged or expired event (its call)
                    found = self.resolve(found)
                if found and cid is None:
                    cid, via = found, how
                elif found and found != cid:
                    links.append(found)
        placed = cid is not None
        # Posts too short to match on are not indexed by keyword either.
        top = top_keywords(keywords, self.df, self.docs, cfg) if textual else []
        created = False
        # Text evidence. For a post parent links placed every test below fails unless merge_on_text: skipped (nearly
        # every post of a stream with parents).
        if not placed or cfg.merge_on_text:
            rich = len(keywords) >= cfg.near_dup_min_keywords and (placed or cfg.originals_by_text)
            if dup_of and rich:
                found = self.posts.get(dup_of)
                found = self.resolve(found) if found else None
                if found and self.clusters[found].last_ts >= ts - cfg.text_window_seconds:
                    if cid is None:
                        cid, via = found, "duplicate"
                    elif found != cid:
                        links.append(found)
            if post.simhash is not None and textual and (cfg.originals_by_text if not placed else cfg.merge_on_text):
                dup = self.near.lookup(post.simhash, lambda k: self.clusters[k].last_ts)
                if dup is not None and self.clusters[dup].last_ts < ts - cfg.text_window_seconds:
                    dup = None
                if dup and cid is None and rich:
                    cid, via = dup, "near_duplicate"
                elif dup and dup != cid and placed and len(keywords) >= cfg.merge_min_keywords:
                    links.append(dup)
            engagement = post.reposts + post.comments
            # A cascade's source shares keywords with other sources of its story, not their cascades (see the config).
            source = not cfg.sources_join_by_keywords and engagement >= cfg.anchor_min_engagement
            if cid is None and rich and not source and len(top) >= cfg.keyword_min_shared:
                cid = keyword_match(top, ts, self.postings, self.clusters, self.resolve, cfg)
                via = "keywords" if cid else via
            if cid is None and top and cfg.rare_window_seconds > 0 and not placed and cfg.originals_by_text:
                # An anchor is a cascade's source: it joins no other by terms.
                if engagement < cfg.anchor_min_engagement:
                    texts, postings = self.anchor_texts, self.postings
                    cid = rare_match(top, ts, postings, self.df, self.docs, self.clusters, self.resolve, cfg, texts)
                via = "rare_terms" if cid else via
            if cid is None and self._weak and (not textual or len(keywords) < cfg.seed_min_keywords):
                cid = weak_match(post.author_id, ts, self.authors, self.clusters, self.resolve, cfg)
                via = "weak" if cid else via
            # A wordless post that others reposted or answered is a cascade of its own: it opens its own event
            # (with its own counts), never another's.
            engaged = post.reposts > 0 or post.comments > 0
            wordless_alone = not textual and not engaged and not post.parent_id and not post.root_id
            if cid is None and wordless_alone and not cfg.attach_wordless:
                self.unattached[post.id] = ts
                return Assignment("", False, "unattached")
            created = cid is None
            if cid is None:
                cid, via = f"ev-{post.id}", "new"
                c = self.clusters[cid] = Cluster(cid, ts)
                c.seed = len(keywords) >= cfg.seed_min_keywords
                c.anchor = cfg.rare_window_seconds > 0 and engagement >= cfg.anchor_min_engagement
                if c.anchor:
                    self.anchor_texts.add(cid, post.text, ts)
        assert cid is not None  # placed by a parent link, or by text, or opened above
        absorbed: list[str] = []
        for other in dict.fromkeys(links) if links else ():  # (most posts link no other event)
            survivor = self.resolve(other)
            if survivor is None or survivor == cid:
                continue
            keep, gone = sorted((cid, survivor), key=lambda k: (self.clusters[k].first_ts, k))
            self._merge(gone, keep, ts)
            absorbed.append(gone)
            cid = keep
        self._index(self.clusters[cid], post, ts, keywords, top, textual, known)
        # One per post: filled as a draft, not through the frozen __init__'s object.__setattr__ (the same object).
        d = _bare(_AssignmentDraft)
        d.event_id = cid
        d.created = created
        d.via = via
        d.absorbed = tuple(absorbed)
        d.__class__ = Assignment  # type: ignore[assignment]
        a: Assignment = d  # type: ignore[assignment]
        return a

    # -- indexing --------------------------------------------------------------------------------

    def _index(
        self,
        c: Cluster,
        post: PostView,
        ts: float,
        keywords: list[str],
        top: list[tuple[str, float]],
        textual: bool,
        known: list[str] | None = None,
    ) -> None:
        """Record the post in its event and the indexes; `known`: its refs assign() found in `posts` (None: look)."""
        cfg = self.config
        cid = c.id
        c.size += 1
        if ts > c.last_ts:
            c.activity *= 0.5 ** ((ts - c.last_ts) / cfg.activity_half_life_seconds)
            c.last_ts = ts
        c.activity += 1.0
        if ts < c.first_ts:
            c.first_ts = ts
        # Move to the end: the dict stays ordered by activity for expiry.
        self.clusters.move_to_end(cid)
        self.posts[post.id] = cid
        self._fresh = None
        holder = self.placeholders.pop(post.id, None)
        if holder is not None:
            self.clusters[holder].placeholders.remove(post.id)
        for ref in (post.parent_id, post.root_id):
            if not ref or ref in self.placeholders:
                continue
            # `ref not in self.posts`, from assign()'s lookups: merges since then move posts, never add or drop them.
            absent = ref not in self.posts if known is None else (ref != post.id and ref not in known)
            if absent:
                self.placeholders[ref] = cid
                if c.placeholders is NO_PLACEHOLDERS:
                    c.placeholders = [ref]
                else:
                    c.placeholders.append(ref)
        df = self.df
        for kw in keywords:
            df[kw] = df.get(kw, 0) + 1
        self.docs += 1
        if self.docs % cfg.df_halve_every == 0:
            self.df = {k: n // 2 for k, n in df.items() if n > 1}
        profile = c.profile
        for kw, _ in top:
            profile[kw] = profile.get(kw, 0) + 1
            postings = self.postings.get(kw)
            if postings is None:
                postings = self.postings[kw] = {}
            else:
                postings.pop(cid, None)
            postings[cid] = ts
            if len(postings) > cfg.postings_cap:
                del postings[next(iter(postings))]
        if len(profile) > 2 * cfg.profile_cap:
            kept = sorted(profile.items(), key=lambda kv: (-kv[1], kv[0]))[: cfg.profile_cap]
            c.profile = dict(kept)
        if textual and post.simhash is not None:
            fp = post.simhash
            if fp not in c.fingerprints and len(c.fingerprints) < cfg.fingerprints_cap:
                c.fingerprints[fp] = None
                self.near.add(fp, cid)
        # Title: the most reposted post with real text (a source post usually), else the first one.
        score = post.reposts if textual else -1
        if score > c.title_score and post.text.strip():
            text = " ".join(post.text.split())
            c.title = text if len(text) <= cfg.title_chars else text[: cfg.title_chars - 1] + "…"
            c.title_score = score
        if self._by_author and post.author_id:
            self.authors[post.author_id] = (cid, ts)
            self.authors.move_to_end(post.author_id)

    def _merge(self, gone_id: str, keep_id: str, ts: float) -> None:
        """Fold event `gone_id` into `keep_id`; `gone_id` redirects to `keep_id` from now on."""
        gone, keep = self.clusters.pop(gone_id), self.clusters[keep_id]
        self.posts.merge(gone_id, keep_id)
        for pid in gone.placeholders:
            self.placeholders[pid] = keep_id
        keep.members.extend(gone.members)
        if gone.placeholders:
            if keep.placeholders is NO_PLACEHOLDERS:
                keep.placeholders = []
            keep.placeholders.extend(gone.placeholders)
        keep.size += gone.size
        keep.first_ts = min(keep.first_ts, gone.first_ts)
        half = self.config.activity_half_life_seconds
        last = max(keep.last_ts, gone.last_ts)
        keep.activity = sum(c.activity * 0.5 ** ((last - c.last_ts) / half) for c in (keep, gone))
        keep.last_ts = last
        for kw, n in gone.profile.items():
            keep.profile[kw] = keep.profile.get(kw, 0) + n
            postings = self.postings.get(kw)
            if postings is not None and gone_id in postings:
                last = postings.pop(gone_id)
                postings[keep_id] = max(postings.pop(keep_id, last), last)
        self.near.rewrite(gone.fingerprints, gone_id, keep_id)
        for fp in gone.fingerprints:
            keep.fingerprints.setdefault(fp, None)
        if gone.title_score > keep.title_score:
            keep.title, keep.title_score = gone.title, gone.title_score
        keep.keywords_size = 0
        self.redirects[gone_id] = (keep_id, ts)
        ids = self.merged.setdefault(keep_id, [])
        ids.append(gone_id)
        ids.extend(self.merged.pop(gone_id, ()))

    # -- memory bounds ---------------------------------------------------------------------------

    def expire(self, now: float) -> list[str]:
        """Drop events idle for longer than the horizon; returns their ids.

        Nothing of an expired event stays: its ids were also kept in a ``closed`` map for ``redirect_ttl_seconds``
        (30 days), which nothing read, one entry per event ever expired (~35 events a second in a soak at 2,315
        posts/s: tens of millions over 30 days). A merge keeps its redirect so that an id an alert announced still
        resolves while the event it went into lives; once that event expires the redirect goes with it (it resolved
        to nothing, and the soak's stream merged ~40 events a second: 12,900 more redirects every 5 minutes)."""
        cfg = self.config
        gone: list[str] = []
        cut = now - cfg.horizon_seconds
        while self.clusters:
            c = next(iter(self.clusters.values()))
            if c.last_ts >= cut:
                break
            del self.clusters[c.id]
            self.posts.drop(c.id)
            for pid in c.placeholders:
                self.placeholders.pop(pid, None)
            for kw in c.profile:
                postings = self.postings.get(kw)
                if postings is not None and postings.pop(c.id, None) is not None and not postings:
                    del self.postings[kw]
            self.near.rewrite(c.fingerprints, c.id, None)
            for merged_id in self.merged.pop(c.id, ()):
                self.redirects.pop(merged_id, None)
            gone.append(c.id)
        while self.unattached and next(iter(self.unattached.values())) < cut:
            self.unattached.popitem(last=False)
        ttl_cut = now - cfg.redirect_ttl_seconds
        while self.redirects and next(iter(self.redirects.values()))[1] < ttl_cut:
            self.redirects.popitem(last=False)
        author_cut = now - max(cfg.author_window_seconds, 0.0)
        while self.authors:
            _, at = next(iter(self.authors.values()))
            if at >= author_cut:
                break
            self.authors.popitem(last=False)
        return gone

    # -- persistence (_clusterer_state.py) --------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able state; from_dict(to_dict()) continues identically."""
        return state_of(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], config: ClusteringConfig | None = None) -> Clusterer:
        self = cls(config)
        load_state(self, data)
        return self
