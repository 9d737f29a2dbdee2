"""While the collector's indexer is far behind, the index role's wait for posts not indexed yet stays cheap: after
the first look-up of every post it looks up only the oldest chunk, less often each time none of it turned up.

Looking up every missing post of a long lag every second was itself a load on the cluster the indexer waited for.
The cluster here is a fake of the four calls the adapter makes (the real one: integration/test_post_event_wait.py).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from qingfeng.elastic import IndexNames

from services.grader.adapters.post_events import ElasticPostEvents


@dataclass
class _Response:
    body: dict[str, Any]


@dataclass
class FakeCluster:
    """An empty posts index: nothing is ever found; records what was asked and when."""

    mget_sizes: list[int] = field(default_factory=list)
    mget_at: list[float] = field(default_factory=list)
    searches: int = 0
    stubs: int = 0

    @property
    def indices(self) -> FakeCluster:
        return self

    async def get_alias(self, name: str) -> _Response:
        return _Response({"posts-000001": {"aliases": {name: {"is_write_index": True}}}})

    async def mget(self, *, ids: list[str], **_: Any) -> _Response:
        self.mget_sizes.append(len(ids))
        self.mget_at.append(time.monotonic())
        return _Response({"docs": [{"_id": i, "found": False} for i in ids]})

    async def search(self, **_: Any) -> _Response:
        self.searches += 1
        return _Response({"hits": {"hits": []}})

    async def bulk(self, *, operations: list[bytes], **_: Any) -> _Response:
        self.stubs += len(operations) // 2
        return _Response({"items": [{"update": {"status": 201}} for _ in range(len(operations) // 2)]})


async def test_a_stalled_wait_polls_one_chunk_ever_less_often_then_writes_stubs() -> None:
    cluster = FakeCluster()
    writer = ElasticPostEvents(cluster, IndexNames("qf", "posts"), poll_s=0.05)  # type: ignore[arg-type]
    posts = {f"p{i}": "ev-1" for i in range(5_000)}
    await writer.assign(posts, wait_until=time.time() + 1.0)
    assert cluster.mget_sizes[:3] == [2000, 2000, 1000], "the first look: every post"
    polls = cluster.mget_sizes[3:]
    assert polls and set(polls) == {2000}, "then only the oldest chunk"
    gaps = [b - a for a, b in itertools.pairwise(cluster.mget_at[3:])]
    assert max(gaps) >= 0.15, f"the waits grew from 0.05 s: {gaps}"  # a loaded machine only makes sleeps longer
    assert len(polls) <= 6, "0.05 s doubling: about five polls in a second (twenty without)"
    assert cluster.searches == 3, "the older indices are searched at the first look only"
    assert (writer.waited, writer.stubs, cluster.stubs) == (5_000, 5_000, 5_000)


async def test_without_a_wait_the_missing_posts_get_stubs_at_once() -> None:
    cluster = FakeCluster()
    writer = ElasticPostEvents(cluster, IndexNames("qf", "posts"), poll_s=0.05)  # type: ignore[arg-type]
    await writer.assign({"p1": "ev-1", "p2": "ev-2"})
    assert cluster.mget_sizes == [2] and cluster.stubs == 2 and writer.waited == 2
