"""The grader core's outputs on a real replay are frozen: speed work on clustering, windows and grading keeps them.

The first posts of ``../shared/data/weibo_posts.jsonl`` go through ``Grader.process`` one post per call (as
``bench/grading_eval.py`` times it), in four replays: parents kept / ``parent_id`` removed, counts as given /
zeroed. Every output (alerts with their grades and reasons, snapshots with their metrics) is compared by the
SHA-256 of its ``repr``, per chunk of posts, and the final state (``Grader.snapshot()``) by the SHA-256 of its
JSON. Only digests are stored, never the data.

After a deliberate change of an output, rewrite the frozen file and review its diff:

    .venv/bin/python tests/services/grader/unit/test_frozen_replay.py --write
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[4]
FROZEN = Path(__file__).with_name("frozen_replay.json")
POSTS = Path(os.environ.get("QF_SHARED_DATA", REPO / ".." / "shared" / "data")) / "weibo_posts.jsonl"
LIMIT = 5_000
CHUNK = 500  # posts per stored digest: a mismatch names the chunk where outputs first differ
CASES = {"parents": (True, False), "parents_zeroed": (True, True), "noparents": (False, False),
         "noparents_zeroed": (False, True)}  # fmt: skip
# The config of grading_eval's parent_id-removed rows (ClusteringConfig.for_lost_parents(): text links between
# originals, wordless posts unattached), parents removed, counts as given.
LOST_PARENTS = "lost_parents"

needs_data = pytest.mark.skipif(not POSTS.is_file(), reason=f"shared data not found at {POSTS} (set QF_SHARED_DATA)")


def _rows() -> list[dict[str, Any]]:
    with POSTS.open(encoding="utf-8") as fh:
        return [json.loads(line) for line, _ in zip(fh, range(LIMIT), strict=False)]


def replay(with_parent: bool, zeroed: bool, lost_parents: bool = False) -> dict[str, Any]:
    """Chunk digests of every output and the digest of the final state."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from bench_grading import view
    finally:
        sys.path.remove(str(REPO / "bench"))
    from services.grader.adapters.policy_yaml import DEFAULT_POLICY, load_policy_file
    from services.grader.core import ClusteringConfig, Grader, GraderConfig

    views = [view(r, with_parent) for r in _rows()]
    if zeroed:
        views = [replace(v, reposts=0, comments=0, likes=0) for v in views]
    config = GraderConfig(clustering=ClusteringConfig.for_lost_parents()) if lost_parents else GraderConfig()
    grader = Grader(load_policy_file(DEFAULT_POLICY), config)
    chunks: list[str] = []
    h = hashlib.sha256()
    outputs = 0
    for i, pv in enumerate(views, 1):
        for out in grader.process(pv):
            h.update(repr(out).encode("utf-8"))
            outputs += 1
        if i % CHUNK == 0 or i == len(views):
            chunks.append(h.hexdigest()[:16])
            h = hashlib.sha256()
    state = hashlib.sha256(json.dumps(grader.snapshot(), sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return {"posts": len(views), "outputs": outputs, "chunks": chunks, "state": state}


def _replay_case(case: str) -> dict[str, Any]:
    return replay(False, False, lost_parents=True) if case == LOST_PARENTS else replay(*CASES[case])


@needs_data
@pytest.mark.parametrize("case", [*CASES, LOST_PARENTS])
def test_replay_outputs_frozen(case: str) -> None:
    frozen = json.loads(FROZEN.read_text(encoding="utf-8"))[case]
    got = _replay_case(case)
    assert got["posts"] == frozen["posts"], "the shared data changed: rewrite the frozen file"
    assert got["outputs"] == frozen["outputs"]
    for k, (a, b) in enumerate(zip(got["chunks"], frozen["chunks"], strict=True)):
        assert a == b, f"{case}: outputs differ from post {k * CHUNK + 1} to {(k + 1) * CHUNK}"
    assert got["state"] == frozen["state"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(__doc__)
    sys.path.insert(0, str(REPO))
    frozen = {c: _replay_case(c) for c in [*CASES, LOST_PARENTS]}
    FROZEN.write_text(json.dumps(frozen, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FROZEN}")
