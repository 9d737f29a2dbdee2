"""The pure part of bench/bench_limits.py: rates and the ratio of each path to the limit it is bounded by.

The bench itself needs the local stack and the shared data and is run by hand (see its docstring).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    sys.path.insert(0, str(ROOT / "bench"))  # the bench imports its siblings (_pipeline, bench_collector_e2e)
    spec = importlib.util.spec_from_file_location("bench_limits", ROOT / "bench" / "bench_limits.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_limits"] = module
    spec.loader.exec_module(module)
    return module


def test_table_divides_each_path_by_its_own_limit(bench: ModuleType) -> None:
    rows = [
        bench.Row("es", 10_000, 1.0, limit=bench.ES_LIMIT),
        bench.Row("kafka", 30_000, 0.5, limit=bench.PRODUCE_LIMIT),
        bench.Row("indexer", 4_000, 1.0, bench.ES_LIMIT),
        bench.Row("collector", 12_000, 1.0, bench.PRODUCE_LIMIT),
    ]
    lines = bench._table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert "10,000" in lines[2] and "x" not in lines[2].split("|")[5]  # a limit has no ratio
    assert "0.40x ES bulk" in lines[4]
    assert "0.20x Kafka produce" in lines[5]


def test_rate_is_items_per_second(bench: ModuleType) -> None:
    assert bench.Row("p", 500, 0.25).rate == 2_000


def test_a_limit_measured_twice_is_their_mean(bench: ModuleType) -> None:
    rows = [
        bench.Row("es before", 10_000, 1.0, limit=bench.ES_LIMIT),
        bench.Row("es after", 10_000, 0.5, limit=bench.ES_LIMIT),  # 20,000/s: the limit moved during the run
        bench.Row("path", 6_000, 1.0, bench.ES_LIMIT, cpu_s=1.2),
    ]
    assert bench.limits_of(rows) == {bench.ES_LIMIT: 15_000}
    assert "0.40x ES bulk" in bench._table(rows).splitlines()[4]


def test_cpu_per_item_is_shown_when_measured(bench: ModuleType) -> None:
    measured = bench.Row("path", 4_000, 2.0, cpu_s=1.0)
    assert measured.cpu_us_per_item == 250
    assert bench.Row("path", 4_000, 2.0).cpu_us_per_item is None
    line = bench._table([bench.Row("es", 1, 1.0, limit=bench.ES_LIMIT), measured]).splitlines()[3]
    assert line.rstrip(" |").endswith("250")


def test_engine_cpu_is_a_column_of_its_own(bench: ModuleType) -> None:
    row = bench.Row("raw", 2_000, 1.0, limit=bench.ES_LIMIT, engines_cpu_s=0.17)
    assert row.engines_us_per_item == 85
    assert bench._table([row]).splitlines()[2].rstrip(" |").endswith("85")


def test_the_engines_are_found_by_their_listening_port(bench: ModuleType) -> None:
    import socket

    import bench_collector_e2e as e2e  # a sibling of bench_limits, on the path the fixture set

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        pids = e2e.engine_pids(port)
        assert os.getpid() in pids
        assert e2e.cpu_seconds(pids) > 0
    assert os.getpid() not in e2e.engine_pids(port)  # closed: nobody listens there any more


def test_the_paths_run_with_the_services_gc_or_cpythons_and_it_is_restored(bench: ModuleType) -> None:
    import gc

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with bench.gc_mode("service"):
        assert gc.get_threshold() == (20_000, 50, 100)
        assert gc.get_freeze_count() > 0  # what the process held at start is out of the scans, as in a service
        with bench.gc_mode("default"):
            assert gc.get_threshold() == (700, 10, 10)
            assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == (20_000, 50, 100)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert (gc.get_freeze_count() > 0) == (frozen > 0)


def test_the_summary_gives_each_run_its_own_limit_and_counts_the_runs_that_met_the_target(
    bench: ModuleType,
) -> None:
    def run(limit_rate: int, import_rate: int, inprocess_rate: int) -> list:
        return [
            bench.Row("raw ES bulk", limit_rate, 1.0, limit=bench.ES_LIMIT),
            bench.Row("end to end via ImportPosts + 1 indexer process", import_rate, 1.0, bench.ES_LIMIT),
            bench.Row("end to end, collector + 1 indexer process", inprocess_rate, 1.0, bench.ES_LIMIT),
            bench.Row("indexer (consume→document→bulk create)", 9_000, 1.0, bench.ES_LIMIT),
        ]

    text = bench.summary([run(20_000, 8_000, 9_000), run(10_000, 3_900, 6_000), run(16_000, 7_200, 7_200)])
    lines = text.splitlines()
    assert lines[0].startswith("ratios over 3 runs")
    assert "0.40 0.39 0.45 (median 0.40; >= 0.4x in 2 of 3)" in lines[1]
    assert "0.45 0.60 0.45 (median 0.45; >= 0.5x in 1 of 3)" in lines[2]
    assert lines[3].endswith("(median 0.56)")  # a stage has no target
    assert bench.target_of("raw ES bulk") is None


def test_the_summary_also_gives_the_ratios_against_the_limit_until_acknowledged(bench: ModuleType) -> None:
    """The limit is timed until searchable, as the paths are; the ratios against the raw bulk without its refresh
    (the measure until stop 20) are listed after, for the target rows only."""
    rows = [
        bench.Row("raw ES bulk", 10_000, 1.0, limit=bench.ES_LIMIT),
        bench.Row("  the same until acknowledged", 10_000, 0.8, limit=bench.ES_ACKED),  # 12,500/s
        bench.Row("end to end, collector + 1 indexer process", 5_500, 1.0, bench.ES_LIMIT),
        bench.Row("indexer (consume→document→bulk create)", 9_000, 1.0, bench.ES_LIMIT),
    ]
    lines = bench.summary([rows]).splitlines()
    assert "0.55 (median 0.55; >= 0.5x in 1 of 1)" in lines[1]
    assert lines[3].startswith("the same against the raw bulk until acknowledged")
    assert lines[4] == "  end to end, collector + 1 indexer process: 0.44 (median 0.44; >= 0.5x in 0 of 1)"
    assert len(lines) == 5  # the indexer stage has no target: not repeated
    assert "x" not in bench._table(rows).splitlines()[3].split("|")[5]  # the acknowledged limit bounds no path


def test_the_warm_up_ends_once_two_rounds_agree(bench: ModuleType) -> None:
    assert not bench.warmed_up([])
    assert not bench.warmed_up([9_000.0])
    assert not bench.warmed_up([9_000.0, 16_000.0])  # still compiling
    assert bench.warmed_up([9_000.0, 16_000.0, 17_500.0])
    assert bench.warmed_up([20_000.0, 17_500.0])


def test_ceilings_say_what_the_cores_allow_and_what_the_target_needs(bench: ModuleType) -> None:
    rows = [
        bench.Row("es", 20_000, 1.0, limit=bench.ES_LIMIT),
        # 100 + 100 µs a post on 2 CPUs: a ceiling of 10,000/s, of which 8,000/s is 80 %
        bench.Row(
            "end to end, collector + 1 indexer process", 8_000, 1.0, bench.ES_LIMIT, cpu_s=0.8, engines_cpu_s=0.8
        ),
        bench.Row("indexer", 8_000, 1.0, bench.ES_LIMIT, cpu_s=0.8, engines_cpu_s=0.8),  # a stage: no target
        bench.Row("end to end via ImportPosts, one process", 8_000, 1.0, bench.ES_LIMIT, cpu_s=0.8),  # engines unknown
    ]
    lines = bench.ceilings(rows, 2).splitlines()
    assert len(lines) == 2
    # 0.5x of 20,000 = 10,000/s at 80 % of the ceiling: 2e6 * 0.8 / 10,000 - 100 = 60 µs of ours
    assert "100 + 100 µs a post -> ceiling 10,000/s, reached 80%" in lines[1]
    assert "0.5x (10,000/s) at that share needs ours <= 60 µs a post" in lines[1]
    assert bench.ceilings(rows[:1], 2) == ""
