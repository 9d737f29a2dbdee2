"""Which recent event a post points to when no parent link placed it (see clustering.py).

Two kinds of keyword evidence, both read from the per-keyword postings (keyword -> {event id: last time a post of
that event used it}) and the document frequencies the Clusterer keeps:

- `keyword_match`: several rare shared keywords (at least `keyword_min_shared`, together at least
  `keyword_min_score` of the post's idf weight) with any event active within `keyword_window_seconds`;
- `rare_match`: rare terms shared with one recent *anchor* event (a cascade's source post: one others reposted or
  commented on) clearly more than with any other, found in its posts' keywords or in its source post's own text
  (_anchor_text.py), see `ClusteringConfig.rare_window_seconds`.

And the weak signals (`weak_match`, off unless configured: they lump on a concurrent stream): the author's own
recent event, or the event that clearly dominates the recent stream.

Pure functions of the state handed in; the Clusterer owns and updates that state.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping

from ._anchor_text import AnchorTexts
from ._cluster import Cluster
from ._clustering_config import ClusteringConfig

__all__ = ["keyword_match", "rare_match", "top_keywords", "weak_match"]

Postings = Mapping[str, Mapping[str, float]]


def top_keywords(
    keywords: list[str], df: Mapping[str, int], docs: int, cfg: ClusteringConfig
) -> list[tuple[str, float]]:
    """The post's most informative keywords with their idf, rarest first (those in over `keyword_max_df` of the
    posts left out once `df_min_docs` posts were seen)."""
    limit = cfg.keyword_max_df * docs if docs >= cfg.df_min_docs else math.inf
    ranked = sorted([(n, k) for k in keywords if (n := df.get(k, 0)) <= limit])
    log_docs = math.log(docs + 1)
    return [(k, log_docs - math.log(n + 1) + 1.0) for n, k in ranked[: cfg.keyword_top_n]]


def keyword_match(
    top: list[tuple[str, float]],
    ts: float,
    postings: Postings,
    clusters: Mapping[str, Cluster],
    resolve: Callable[[str], str | None],
    cfg: ClusteringConfig,
) -> str | None:
    """The live event sharing the most idf weight with `top` within the window, if enough of it; ties go to the
    most recently active event, then the smaller id."""
    since = ts - cfg.keyword_window_seconds
    weight: dict[str, float] = {}
    shared: dict[str, int] = {}
    total = 0.0
    for kw, w in top:
        total += w
        for cid, last in postings.get(kw, {}).items():
            if last >= since:
                weight[cid] = weight.get(cid, 0.0) + w
                shared[cid] = shared.get(cid, 0) + 1
    best = None
    best_key: tuple[float, float, str] | None = None
    for cid, w in weight.items():
        if shared[cid] < cfg.keyword_min_shared or w < cfg.keyword_min_score * total:
            continue
        live = resolve(cid)
        if live is None:
            continue
        key = (-w, -clusters[live].last_ts, live)
        if best_key is None or key < best_key:
            best, best_key = live, key
    return best


def rare_match(
    top: list[tuple[str, float]],
    ts: float,
    postings: Postings,
    df: Mapping[str, int],
    docs: int,
    clusters: Mapping[str, Cluster],
    resolve: Callable[[str], str | None],
    cfg: ClusteringConfig,
    texts: AnchorTexts | None = None,
) -> str | None:
    """The anchor event active within `rare_window_seconds` that shares the most rare-term weight with `top`, when
    the evidence suffices and no other anchor comes near (see `ClusteringConfig.rare_window_seconds`). A term is
    shared when the anchor's posts used it as a keyword within the window or, with `texts`, when the text of the
    post that opened the anchor in the window contains it."""
    if docs < max(cfg.df_min_docs, cfg.rare_min_docs):
        return None  # early on every word looks rare
    limit = cfg.rare_max_df * docs
    since = ts - cfg.rare_window_seconds
    weight: dict[str, float] = {}
    shared: dict[str, int] = {}
    strong: set[str] = set()  # anchors holding a term that suffices alone
    for kw, w in top:
        n = df.get(kw, 0)
        if n > limit:
            continue
        ids = [cid for cid, last in postings.get(kw, {}).items() if last >= since]
        if texts is not None:
            ids += texts.containing(kw, since)
        counted: set[str] = set()  # this term counted once per anchor, however many of its ids name it
        for cid in ids:
            live = resolve(cid)
            if live is None or live in counted:
                continue
            c = clusters[live]
            if not c.anchor:
                continue
            counted.add(live)
            weight[live] = weight.get(live, 0.0) + w
            shared[live] = shared.get(live, 0) + 1
            own = c.profile.get(kw, 0)
            if n <= cfg.rare_single_max_count or (own >= 2 and own >= cfg.rare_own_share * n):
                strong.add(live)
    if not weight:
        return None
    ranked = sorted(weight, key=lambda k: (-weight[k], k))
    best = ranked[0]
    if len(ranked) > 1 and weight[best] < cfg.rare_margin * weight[ranked[1]]:
        return None  # another recent cascade uses these terms about as much: no evidence for either
    if shared[best] >= cfg.rare_min_shared or best in strong:
        return best
    return None


def weak_match(
    author: str,
    ts: float,
    authors: Mapping[str, tuple[str, float]],
    clusters: OrderedDict[str, Cluster],
    resolve: Callable[[str], str | None],
    cfg: ClusteringConfig,
) -> str | None:
    """The author's own event within `author_window_seconds`, else the seed event whose decayed activity is at least
    `activity_min` and `activity_share` of all activity within `activity_window_seconds` (`clusters` ordered by last
    activity, least recent first)."""
    if cfg.author_window_seconds > 0:
        seen = authors.get(author)
        if seen and ts - seen[1] <= cfg.author_window_seconds:
            live = resolve(seen[0])
            if live:
                return live
    if cfg.activity_window_seconds > 0:
        since = ts - cfg.activity_window_seconds
        best, best_score, total = None, 0.0, 0.0
        for c in reversed(clusters.values()):
            if c.last_ts < since:
                break
            if not c.seed:
                continue
            score = c.activity * 0.5 ** ((ts - c.last_ts) / cfg.activity_half_life_seconds)
            total += score
            if score > best_score:
                best, best_score = c.id, score
        if best is not None and best_score >= cfg.activity_min and best_score >= cfg.activity_share * total:
            return best
    return None
