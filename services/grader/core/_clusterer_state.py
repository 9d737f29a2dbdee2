"""Event detection's state as plain, JSON-able data, and a fresh Clusterer filled from it (Clusterer.to_dict and
from_dict; the engine stores it inside its own state, _persist.py)."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ._cluster import Cluster
from ._postmap import PostMap

if TYPE_CHECKING:
    from .clustering import Clusterer

__all__ = ["load_state", "state_of"]


def state_of(c: Clusterer) -> dict[str, Any]:
    """Plain, JSON-able state of `c`; load_state(fresh, state_of(c)) continues identically."""
    return {
        "clusters": [cluster.to_list() for cluster in c.clusters.values()],
        "bands": c.near.to_list(),
        "postings": [[kw, list(map(list, p.items()))] for kw, p in c.postings.items()],
        "df": c.df,
        "docs": c.docs,
        "authors": [[a, cid, at] for a, (cid, at) in c.authors.items()],
        "redirects": [[k, v, at] for k, (v, at) in c.redirects.items()],
        "unattached": list(map(list, c.unattached.items())),
        "posts": c.posts.to_data(),
    } | ({"anchor_texts": c.anchor_texts.to_list()} if c.anchor_texts else {})  # only without parents


def load_state(c: Clusterer, data: dict[str, Any]) -> None:
    """Fill `c`, a Clusterer just built (with its config), from state_of() output."""
    for row in data["clusters"]:
        cluster = Cluster.from_list(row)
        c.clusters[cluster.id] = cluster
        if "posts" not in data:  # a state of before the post map: its events listed their posts
            for pid in cluster.members:
                c.posts[pid] = cluster.id
            cluster.members = []
        for pid in cluster.placeholders:
            c.placeholders[pid] = cluster.id
    if "posts" in data:
        c.posts = PostMap.from_data(data["posts"])
    c.near.load(data["bands"])
    c.postings = {kw: {cid: at for cid, at in items} for kw, items in data["postings"]}
    c.df = dict(data["df"])
    c.docs = data["docs"]
    c.authors = OrderedDict((a, (cid, at)) for a, cid, at in data["authors"])
    c.redirects = OrderedDict((k, (v, at)) for k, v, at in data["redirects"])
    _index_merges(c)
    # "closed" (expired event ids, kept for the redirect TTL and never read) in states of before is ignored.
    c.unattached = OrderedDict((k, at) for k, at in data.get("unattached", ()))  # absent from states of before
    c.anchor_texts.load(data.get("anchor_texts", []))


def _index_merges(c: Clusterer) -> None:
    """``c.merged`` from the redirects; a redirect whose survivor is gone (kept by states of before) is dropped."""
    merged: dict[str, list[str]] = {}
    dead: list[str] = []
    for gone_id in c.redirects:
        survivor = c.resolve(gone_id)  # the live event its merges led to, None once that expired
        if survivor is not None:
            merged.setdefault(survivor, []).append(gone_id)
        else:
            dead.append(gone_id)
    for gone_id in dead:
        del c.redirects[gone_id]
    c.merged = merged
