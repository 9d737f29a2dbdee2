"""The hand-labelled relevance set (tests/data/relevance) is well formed, balanced and free of leaks between halves.

Labels hold post ids only; texts are joined from ../shared/data at run time, so the checks that need texts or
events skip, saying where they looked, when the shared data is absent (in CI it is present).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
SET = REPO / "tests" / "data" / "relevance"
LABELS = SET / "labels.jsonl"
WRITTEN = SET / "written.jsonl"
DATA = Path(os.environ.get("QF_SHARED_DATA", REPO.parent / "shared" / "data"))
POSTS = DATA / "weibo_posts.jsonl"
SPLITS = {"calibrate", "report"}
LABEL_FIELDS = {"id", "label", "kind", "note", "found_by", "split"}
WRITTEN_FIELDS = {"id", "text", "label", "kind", "note", "split"}
_skip_without_data = pytest.mark.skipif(
    not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)"
)


def needs_data(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test as reading ../shared/data (marker ``data``) and skip it, saying where we looked, when absent."""
    marked: Callable[..., None] = pytest.mark.data(_skip_without_data(test))
    return marked


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _split_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("assign_splits", SET / "assign_splits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def labels() -> list[dict[str, object]]:
    return _read(LABELS)


@pytest.fixture(scope="module")
def written() -> list[dict[str, object]]:
    return _read(WRITTEN) if WRITTEN.is_file() else []


@pytest.fixture(scope="module")
def posts(labels: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    """Only the labelled posts (the file has 57,576 rows)."""
    if not POSTS.is_file():
        pytest.skip(f"shared data not found at {POSTS} (set QF_SHARED_DATA)")
    wanted = {str(r["id"]) for r in labels}
    found: dict[str, dict[str, object]] = {}
    with POSTS.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if row["id"] in wanted:
                found[row["id"]] = row
    return found


def test_every_label_row_has_the_schema_and_no_text(labels: list[dict[str, object]]) -> None:
    assert len(labels) >= 360
    for row in labels:
        assert set(row) == LABEL_FIELDS, row  # a "text" field would republish the data
        assert isinstance(row["id"], str) and re.fullmatch(r"\d{9,20}", row["id"]), row
        assert row["label"] in (0, 1), row
        assert isinstance(row["kind"], str) and re.fullmatch(r"[a-z][a-z-]{1,29}", row["kind"]), row
        assert isinstance(row["note"], str) and 3 <= len(row["note"]) <= 200, row
        assert row["found_by"] in ("search", "random", "cascade", "random-event"), row
        assert row["split"] in SPLITS, row


def test_written_rows_have_the_schema(written: list[dict[str, object]]) -> None:
    assert len(written) <= 60
    for row in written:
        assert set(row) == WRITTEN_FIELDS, row
        assert isinstance(row["id"], str) and re.fullmatch(r"w-\d{3}", row["id"]), row
        assert isinstance(row["text"], str) and 4 <= len(row["text"]) <= 200, row
        assert row["label"] in (0, 1) and row["split"] in SPLITS, row
        assert isinstance(row["kind"], str) and re.fullmatch(r"[a-z][a-z-]{1,29}", row["kind"]), row


def test_no_id_is_labelled_twice(labels: list[dict[str, object]], written: list[dict[str, object]]) -> None:
    counts = collections.Counter(str(r["id"]) for r in labels + written)
    assert [i for i, n in counts.items() if n > 1] == []


def test_a_third_to_a_half_are_relevant(labels: list[dict[str, object]]) -> None:
    # The first 580 rows were 43 % relevant; the later rounds read more reposts of the cascades (mostly not relevant
    # on their own words), a random sample of events and keyword hits elsewhere, and kept their negatives: 32 %.
    share = sum(int(str(r["label"])) for r in labels) / len(labels)
    assert 0.30 <= share <= 0.60, share


def test_the_random_sample_is_there_and_mostly_negative(labels: list[dict[str, object]]) -> None:
    drawn = [r for r in labels if r["found_by"] == "random"]
    assert len(drawn) >= 80
    assert sum(int(str(r["label"])) for r in drawn) / len(drawn) < 0.3


@pytest.mark.parametrize("name", ["labels", "written"])
def test_both_halves_are_present_sized_alike_with_similar_positive_ratios(
    name: str, labels: list[dict[str, object]], written: list[dict[str, object]]
) -> None:
    rows = labels if name == "labels" else written
    if not rows:
        pytest.skip(f"{name}.jsonl is empty")
    halves = {s: [r for r in rows if r["split"] == s] for s in SPLITS}
    assert all(len(h) >= 0.4 * len(rows) for h in halves.values()), {s: len(h) for s, h in halves.items()}
    ratios = [sum(int(str(r["label"])) for r in h) / len(h) for h in halves.values()]
    assert abs(ratios[0] - ratios[1]) <= 0.05, ratios


@needs_data
def test_every_id_is_a_post_in_the_shared_data(
    labels: list[dict[str, object]], posts: dict[str, dict[str, object]]
) -> None:
    assert sorted(str(r["id"]) for r in labels if str(r["id"]) not in posts) == []


@needs_data
def test_at_most_eight_posts_per_event_and_no_event_in_both_halves(
    labels: list[dict[str, object]], posts: dict[str, dict[str, object]]
) -> None:
    per_event: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    for row in labels:
        per_event[str(posts[str(row["id"])]["event_id"])].append(row)
    # a few posts of one cascade, each read on its own words, so that no event dominates the set
    assert {e: len(rs) for e, rs in per_event.items() if len(rs) > 8} == {}
    assert [e for e, rs in per_event.items() if len({r["split"] for r in rs}) > 1] == []


@needs_data
def test_near_duplicate_texts_of_different_events_stay_in_one_half(
    labels: list[dict[str, object]], posts: dict[str, dict[str, object]]
) -> None:
    tool = _split_tool()
    event_of = {str(r["id"]): str(posts[str(r["id"])]["event_id"]) for r in labels}
    text_of = {str(r["id"]): tool.own_words(str(posts[str(r["id"])]["text"])) for r in labels}
    root = tool.groups(event_of, text_of)
    halves: dict[str, set[object]] = collections.defaultdict(set)
    for row in labels:
        halves[root[event_of[str(row["id"])]]].add(row["split"])
    assert {g: s for g, s in halves.items() if len(s) > 1} == {}


def test_near_duplicate_check_joins_copied_texts_and_not_unrelated_ones() -> None:
    tool = _split_tool()
    copied = "今天又有两个人来店里买了一万多元的药品，却要求我们开五万多元的发票，我们没有答应"
    root = tool.groups(
        {"a": "E1", "b": "E2", "c": "E3"},
        {"a": copied, "b": "求证！" + copied[:30], "c": "周末和朋友去爬山，山顶的风景很好，下山后吃了一碗面"},
    )
    assert root["E1"] == root["E2"] != root["E3"]


@needs_data
def test_written_sentences_are_ours_not_copied_from_the_weibo_data(written: list[dict[str, object]]) -> None:
    if not written:
        pytest.skip("written.jsonl is empty")
    texts = {str(r["text"]) for r in written}
    copied: set[str] = set()
    with POSTS.open(encoding="utf-8") as fh:
        for line in fh:
            post = json.loads(line)["text"]
            copied |= {t for t in texts if t in post}
    assert copied == set()
