"""The engine's outputs of a batch or command as the owner (``state.EngineOwner``) publishes them: in wire form
(``render``), each applied post's live event (``events_of``), and the trace each event's outputs continue
(``causes``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from opentelemetry.context import Context

from services.grader.convert import RegionNames, alert_proto, event_proto
from services.grader.core import Alert, EventSnapshot, Grader, Output, PostView
from services.grader.ports import Outputs

__all__ = ["causes", "events_of", "render"]


def render(outs: Sequence[Output], names: RegionNames, now: datetime) -> Outputs:
    # A level change comes with the snapshot of its event: its whole-life relevance goes with the alert.
    relevance = {
        o.event_id: total.relevance
        for o in outs
        if isinstance(o, EventSnapshot) and (total := o.window("total")) is not None
    }
    alerts = [alert_proto(o, names, now, relevance=relevance.get(o.event_id)) for o in outs if isinstance(o, Alert)]
    events = [event_proto(o, names, now) for o in outs if isinstance(o, EventSnapshot)]
    return Outputs(tuple(alerts), tuple(events))


def events_of(engine: Grader, posts: Sequence[PostView]) -> dict[str, str]:
    """Post id -> its live event (merges followed; "" when it joined none), in the batch's order."""
    clusterer = engine.clusterer
    get, resolve = clusterer.posts.get, clusterer.resolve
    return {p.id: resolve(get(p.id) or "") or "" for p in posts}


def causes(events: Mapping[str, str], contexts: Mapping[str, Context]) -> dict[str, Context]:
    """Event id -> context of the last post of this batch that went to it (merges followed)."""
    out: dict[str, Context] = {}
    for post_id, event_id in events.items():
        ctx = contexts.get(post_id)
        if ctx is not None and event_id:
            out[event_id] = ctx
    return out
