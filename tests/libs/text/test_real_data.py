"""Tagging and relevance over the shared Weibo development set (skipped when ../shared/data is absent)."""

from __future__ import annotations

import json
import os
import re
import statistics
from pathlib import Path

import pytest
from qingfeng.text import Enricher

REPO = Path(__file__).resolve().parents[3]
DATA = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data"))
POSTS = DATA / "weibo_posts.jsonl"
# The data set's own "corruption regex" (shared/data/README.md, "How the set was sampled").
CORRUPTION = re.compile("腐败|贪污|受贿|行贿|索贿|纪委|反腐|贪官|贪腐|双规|落马|巨贪|挪用公款")

pytestmark = [
    pytest.mark.data,
    pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)"),
]


@pytest.fixture(scope="module")
def sources() -> list[dict[str, object]]:
    with POSTS.open(encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return [row for row in rows if row["parent_id"] is None]


def test_every_matching_source_post_gets_a_corruption_tag(enricher: Enricher, sources: list[dict[str, str]]) -> None:
    matching = [row for row in sources if CORRUPTION.search(row["text"])]
    assert len(matching) == 45
    untagged = [row["id"] for row in matching if not enricher.enrich(row["text"]).tags.corruption]
    assert untagged == []


def test_matching_source_posts_are_more_relevant(enricher: Enricher, sources: list[dict[str, str]]) -> None:
    matching, rest = [], []
    for row in sources:
        score = enricher.enrich(row["text"]).relevance.score
        (matching if CORRUPTION.search(row["text"]) else rest).append(score)
    assert statistics.mean(matching) > 0.5
    assert statistics.mean(matching) > 5 * statistics.mean(rest)
