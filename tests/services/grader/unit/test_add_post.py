"""`_windows.add_post` (one post counted in its bucket and windows, unpacked once) against `_Counts.add` on each set
and the top-k rule EventMetrics applied before, on random posts: the same counts, maps (in the same order), top-k
lists and regional scope."""

from __future__ import annotations

import random

from services.grader.core._windows import Bucket, Contribution, Window, add_post


def _post(rng: random.Random) -> Contribution:
    offline = rng.random() < 0.1
    return Contribution(
        author=f"a{rng.randrange(40)}",
        followers=rng.choice([0, 10, 5_000, 2_000_000]),
        reposts=rng.choice([0, 0, 3, 800]),
        comments=rng.choice([0, 1, 50]),
        likes=rng.choice([0, 7]),
        offline=int(offline),
        planned=int(offline and rng.random() < 0.5),
        relevance=rng.choice([0, 0, 120, 950]),
        media=rng.random() < 0.1,
        source=rng.choice(["weibo_api", "rss", ""]),
        platform=rng.choice(["weibo.com", "", "example.org"]),
        regions=tuple(rng.sample(["110000", "110100", "320100", "440300"], rng.randrange(3))),
    )


def _state(s: Bucket | Window) -> tuple[object, ...]:
    top = (s.top, s.top_total, s.top_valid) if isinstance(s, Window) else ()
    return (s.to_list(), list(s.by_author), list(s.by_region), s.scope, *top)


def test_add_post_counts_as_counts_add_on_each_set() -> None:
    rng = random.Random(3)
    for _ in range(30):
        followers_a: dict[str, int] = {}
        followers_b: dict[str, int] = {}
        sets = []
        for followers in (followers_a, followers_b):
            spans = (("total", float("inf")), ("1h", 3600.0))
            windows = [Window(name, seconds, 3, followers) for name, seconds in spans]
            sets.append((Bucket(0.0, 60.0), windows))
        (bucket_a, windows_a), (bucket_b, windows_b) = sets
        for _ in range(rng.randrange(1, 60)):
            c = _post(rng)
            f = followers_a[c.author] = followers_b[c.author] = max(followers_a.get(c.author, 0), c.followers)
            into = windows_a[: rng.randrange(1, 3)]  # the post may fall in the lifetime window only
            add_post(c, f, bucket_a, into)
            bucket_b.add(c)
            for w in windows_b[: len(into)]:
                if w.add(c) and w.top_valid and (len(w.top) < w.top_k or f > w.top[0][0]):
                    w.note_author(c.author, f)
        assert _state(bucket_a) == _state(bucket_b)
        for wa, wb in zip(windows_a, windows_b, strict=True):
            assert _state(wa) == _state(wb)
            assert wa.top_author_reach == wb.top_author_reach
