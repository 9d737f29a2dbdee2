"""Red (特别严重) on real cascades, with and without injected posts announcing offline action.

Red needs what the source documents define: extreme attention, heavy media attention or very fast spread, *and*
opinion about to turn into offline action (舆情即将转化为行为舆论). The Weibo files carry almost no offline signals,
so red must not fire on them. To show that it fires when it should: the largest cascades (by 24 h size) are replayed
alone twice through the real pipeline (parents kept) — once as they are, once with posts announcing a gathering or
petition injected into them as reposts of the source by ordinary accounts — and the red alerts and their reasons
are compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from _pipeline import VARIANTS, collect, grader_config, replay, to_views, variant_posts

from services.grader.core import Policy

__all__ = ["INJECTED_TEXTS", "RedCase", "inject", "red_demo"]

INJECTED_TEXTS = (
    "明天上午九点大家到市政府门口集体上访，讨个说法",
    "约好了，周六下午在人民广场聚集，拉横幅要求公开真相",
    "转告：明早八点到县政府静坐请愿，人越多越好",
    "现场已有上百人聚集在政府门口，要求严惩",
    "准备明天联名进京上访，有意者私信",
    "今晚七点广场集会，大家带上横幅",
)


@dataclass(frozen=True)
class RedCase:
    event_id: str
    size24: int
    level_plain: str
    level_injected: str
    red_reasons: tuple[str, ...]  # of the first red alert with injection


def inject(rows: Sequence[dict[str, Any]], sources: Sequence[str], count: int, after_min: float, every_min: float):
    """The rows plus `count` offline-action reposts of each source, `after_min` minutes after it, `every_min` apart,
    by fresh ordinary accounts (500 followers, no counts)."""
    by_id = {r["id"]: r for r in rows}
    out = list(rows)
    for s in sources:
        t0 = datetime.fromisoformat(by_id[s]["created_at"])
        for k in range(count):
            out.append({
                "id": f"{s}x{k}", "text": INJECTED_TEXTS[k % len(INJECTED_TEXTS)],
                "created_at": (t0 + timedelta(minutes=after_min + k * every_min)).isoformat(), "source": "weibo",
                "author": f"inj-{s}-{k}", "followers": 500, "reposts": 0, "comments": 0, "likes": 0,
                "parent_id": s, "event_id": by_id[s]["event_id"], "label": None,
            })  # fmt: skip
    out.sort(key=lambda r: (datetime.fromisoformat(r["created_at"]).timestamp(), r["id"]))
    return out


def _levels(rows: Sequence[dict[str, Any]], policy: Policy, counts: bool) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Ground-truth event -> (highest level of the event holding its source post, reasons of its first red)."""
    variant = next(v for v in VARIANTS if v.parents and v.counts == counts)
    collected = collect(rows)
    result = replay(to_views(variant_posts(collected.posts, variant)), policy, grader_config(True))
    native = {p.id: p.native_id for p in collected.posts}
    event_of = {native[p]: e for p, e in result.assigned.items()}
    order = ["none", "blue", "yellow", "orange", "red"]
    best: dict[str, str] = {}
    reasons: dict[str, tuple[str, ...]] = {}
    for a in result.alerts:
        eid = result.final(a.event_id)
        if order.index(a.to_level) > order.index(best.get(eid, "none")):
            best[eid] = a.to_level
        if a.to_level == "red" and eid not in reasons:
            reasons[eid] = tuple(r.message for r in a.reasons)
    out = {}
    for r in rows:
        if r["parent_id"] is None:
            eid = event_of.get(r["id"], "")
            out[r["event_id"]] = (best.get(eid, "none"), reasons.get(eid, ()))
    return out


def red_demo(
    rows: Sequence[dict[str, Any]], size24: dict[str, int], policy: Policy, top: int = 20, count: int = 6,
    counts: bool = True,
) -> list[RedCase]:  # fmt: skip
    """Replay the `top` largest cascades with and without `count` injected offline-action posts each."""
    chosen = sorted(size24, key=lambda e: (-size24[e], e))[:top]
    keep = set(chosen)
    mine = [r for r in rows if r["event_id"] in keep]
    sources = [r["id"] for r in mine if r["parent_id"] is None]
    plain = _levels(mine, policy, counts)
    injected = _levels(inject(mine, sources, count, after_min=10.0, every_min=4.0), policy, counts)
    return [RedCase(e, size24[e], plain[e][0], injected[e][0], injected[e][1]) for e in chosen]
