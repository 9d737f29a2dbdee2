"""Which posts of a batch the engine applies: each post at most once, and no post past the horizon opens an event.

Issue 13: a post delivered again (a collector that forgot it produced it, a re-import of the same file, a replay)
must not be counted twice, and a post older than the clustering horizon before the engine's clock must not open an
event: the engine forgot the story it belonged to, so it would announce it again as new (the same ``ev-<post>:1``).

For each post, in order, with the engine exactly as it is just before that post:

- **late** (``created_at`` more than the horizon before the clock): attached when a post it names (its parent, its
  root) or that names it is in a live event, since then it joins that event and opens none; dropped otherwise,
  or when it was already applied (a late re-delivery);
- otherwise **duplicate** when already applied (the engine keeps every applied post within the horizon: an event
  leaves memory only when idle past the horizon, and then its posts are late themselves), else applied.

Deciding a late post needs the engine as it is after the posts before it, so the batch is fed in segments cut at
late posts (rare): the decision never depends on where batch boundaries fall, and a replay decides the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.grader.core import Grader, Output, PostView

__all__ = ["Fed", "feed"]


@dataclass
class Fed:
    """The outputs of one batch, the posts applied, and what was not applied and why."""

    outputs: list[Output] = field(default_factory=list)
    applied: list[PostView] = field(default_factory=list)
    duplicate: int = 0
    late: int = 0
    late_attached: int = 0


def _event_of(engine: Grader, post: PostView) -> str | None:
    """The live event a post is linked to by its parent, its root, or a post that named it (as ``assign`` looks)."""
    clusterer = engine.clusterer
    for ref in (post.parent_id, post.root_id, post.id):
        if ref:
            found = clusterer.posts.get(ref) or clusterer.placeholders.get(ref)
            live = clusterer.resolve(found) if found else None
            if live is not None:
                return live
    return None


def feed(engine: Grader, posts: Sequence[PostView]) -> Fed:
    """Feed ``posts`` to ``engine`` in order, applying each post at most once (see the module docstring)."""
    fed = Fed()
    horizon = engine.clusterer.config.horizon_seconds
    clock = engine.clock
    segment: list[PostView] = []
    in_segment: set[str] = set()

    def flush() -> None:
        if segment:
            fed.outputs.extend(engine.process_batch(segment))
            fed.applied.extend(segment)
            segment.clear()
            in_segment.clear()

    for post in posts:
        ts = post.created_at.timestamp()
        if ts < clock - horizon:
            flush()  # the engine as it is just before this post
            if engine.clusterer.seen(post.id):
                fed.duplicate += 1
            elif _event_of(engine, post) is not None:
                fed.late_attached += 1
                segment.append(post)
                in_segment.add(post.id)
            else:
                fed.late += 1
            continue
        if post.id in in_segment or engine.clusterer.seen(post.id):
            fed.duplicate += 1
            continue
        segment.append(post)
        in_segment.add(post.id)
        clock = max(clock, ts)
    flush()
    return fed
