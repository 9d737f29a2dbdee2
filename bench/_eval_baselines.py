"""Trivial clusterings for bench/grading_eval.py, run through the same grader (windows, policy, alerts) as the real
clustering, so that every metric of the table can be compared with them.

- **parent-following**: a post joins the event of its parent (or root, or of a repost that named it as parent)
  when the replay keeps parents; otherwise it opens an event. Without parents every post is a singleton.
- **newest-event**: like parent-following when a parent is known; otherwise a post of 80+ characters opens an
  event and every other post joins the most recently opened one (it wins when events follow one another).
- **all-singletons**: every post is its own event.

They subclass the real `Clusterer` only to reuse its bookkeeping (post -> event map, placeholders, titles, expiry);
no text index is fed (keywords are not passed on), so they are not slowed by it either.
"""

from __future__ import annotations

from collections.abc import Callable

from services.grader.core import Assignment, Clusterer, ClusteringConfig, PostView
from services.grader.core._cluster import Cluster

__all__ = ["BASELINES", "NEWEST_MIN_CHARS", "baseline"]

NEWEST_MIN_CHARS = 80


class _Baseline(Clusterer):
    use_parents = True

    def _structural(self, post: PostView) -> str | None:
        for ref in (post.parent_id, post.root_id, post.id):
            if ref:
                found = self.posts.get(ref) or self.placeholders.get(ref)
                live = self.resolve(found) if found else None
                if live is not None:
                    return live
        return None

    def _choose(self, post: PostView) -> str | None:
        return None

    def assign(self, post: PostView, ts: float) -> Assignment:
        cid = self._structural(post) if self.use_parents else None
        via = "parent" if cid else ""
        if cid is None:
            cid = self._choose(post)
            via = "baseline" if cid else ""
        created = cid is None
        if cid is None:
            cid, via = f"ev-{post.id}", "new"
            self.clusters[cid] = Cluster(cid, ts)
            self._opened(cid)
        self._index(self.clusters[cid], post, ts, [], [], False)
        return Assignment(cid, created, via)

    def _opened(self, cid: str) -> None:
        pass


class ParentFollowing(_Baseline):
    pass


class NewestEvent(_Baseline):
    newest: str | None = None

    def _choose(self, post: PostView) -> str | None:
        if len(post.text) >= NEWEST_MIN_CHARS or self.newest is None:
            return None
        return self.resolve(self.newest)

    def _opened(self, cid: str) -> None:
        self.newest = cid


class Singletons(_Baseline):
    use_parents = False


BASELINES: dict[str, Callable[[ClusteringConfig], Clusterer]] = {
    "parent-following": ParentFollowing,
    "newest-event": NewestEvent,
    "all-singletons": Singletons,
}


def baseline(name: str, config: ClusteringConfig | None = None) -> Clusterer:
    return BASELINES[name](config or ClusteringConfig())
