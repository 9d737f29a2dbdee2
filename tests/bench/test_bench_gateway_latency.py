"""The pure parts of bench/bench_gateway_latency.py: percentiles, ghz report parsing, /proc CPU time, the table.

No load is generated and no process started here; the bench itself is run by hand (see its docstring).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gateway_latency", ROOT / "bench" / "bench_gateway_latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gateway_latency"] = module
    spec.loader.exec_module(module)
    return module


def test_percentile_interpolates_between_closest_ranks(bench: ModuleType) -> None:
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert bench.percentile(values, 0.0) == 1.0
    assert bench.percentile(values, 0.5) == 3.0
    assert bench.percentile(values, 1.0) == 5.0
    assert bench.percentile(values, 0.9) == pytest.approx(4.6)
    assert bench.percentile([10.0, 20.0], 0.25) == pytest.approx(12.5)
    assert bench.percentile([7.0], 0.99) == 7.0
    hundred = [float(i) for i in range(1, 101)]
    assert bench.percentile(hundred, 0.99) == pytest.approx(99.01)


@pytest.mark.parametrize(("values", "q"), [([], 0.5), ([1.0], -0.1), ([1.0], 1.5)])
def test_percentile_refuses_nonsense(bench: ModuleType, values: list[float], q: float) -> None:
    with pytest.raises(ValueError):
        bench.percentile(values, q)


def _report(**overrides: Any) -> dict[str, Any]:
    """A ghz JSON report in the shape `ghz -O json` writes (latencies in ns, per-call details)."""
    report: dict[str, Any] = {
        "count": 5,
        "total": 2_000_000_000,  # 2 s
        "average": 3_000_000,
        "rps": 2.5,
        "statusCodeDistribution": {"OK": 4, "Unavailable": 1},
        "errorDistribution": {"rpc error: code = Unavailable desc = down": 1},
        "latencyDistribution": [
            {"percentage": 50, "latency": 3_000_000},
            {"percentage": 90, "latency": 4_000_000},
            {"percentage": 99, "latency": 4_000_000},
        ],
        "details": [
            {"timestamp": "2026-11-30T03:00:00Z", "latency": 4_000_000, "error": "", "status": "OK"},
            {"timestamp": "2026-11-30T03:00:00Z", "latency": 1_000_000, "error": "", "status": "OK"},
            {"timestamp": "2026-11-30T03:00:01Z", "latency": 3_000_000, "error": "", "status": "OK"},
            {"timestamp": "2026-11-30T03:00:01Z", "latency": 2_000_000, "error": "", "status": "OK"},
            {"timestamp": "2026-11-30T03:00:01Z", "latency": 9_000_000, "error": "down", "status": "Unavailable"},
        ],
    }
    report.update(overrides)
    return report


def test_ghz_report_counts_only_ok_calls_and_their_latencies(bench: ModuleType) -> None:
    result = bench.parse_ghz_report(_report())
    assert (result.count, result.ok, result.duration_s) == (5, 4, 2.0)
    assert result.latencies_ms == (1.0, 2.0, 3.0, 4.0)  # the failed 9 ms call is left out
    assert result.calls_per_s == 2.0
    assert result.quantile_ms(0.5) == pytest.approx(2.5)
    assert result.errors == {"rpc error: code = Unavailable desc = down": 1}


def test_ghz_report_without_details_uses_the_reported_distribution(bench: ModuleType) -> None:
    result = bench.parse_ghz_report(_report(details=None, statusCodeDistribution={"OK": 5}, errorDistribution={}))
    assert result.latencies_ms == ()
    assert (result.ok, result.errors) == (5, {})
    assert result.quantile_ms(0.5) == 3.0 and result.quantile_ms(0.99) == 4.0
    with pytest.raises(ValueError, match="p75"):
        result.quantile_ms(0.75)


def test_process_cpu_seconds_from_proc_stat_with_a_hostile_command_name(bench: ModuleType) -> None:
    # Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    stat = "4242 (py (thon) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 7 3 20 0 9 0 100 0 0"
    assert bench.process_cpu_s(stat, 100) == pytest.approx(3.0)  # (250 + 50) ticks, children's 7 + 3 not counted


def test_process_cpu_seconds_of_this_process_grows(bench: ModuleType) -> None:
    import os

    def read() -> float:
        return float(bench.process_cpu_s(Path("/proc/self/stat").read_text(), os.sysconf("SC_CLK_TCK")))

    before = read()
    sum(i * i for i in range(3_000_000))  # about 0.2 s of CPU
    assert read() > before


def _result(bench: ModuleType, latencies: list[float], *, ok: int | None = None, count: int | None = None) -> Any:
    n = len(latencies)
    return bench.LoadResult(count=count or n, ok=ok or n, duration_s=10.0, latencies_ms=tuple(sorted(latencies)))


def test_table_shows_added_latency_cpu_rate_and_a_missed_target(bench: ModuleType) -> None:
    direct = _result(bench, [2.0] * 100)
    via = _result(bench, [3.5] * 98 + [10.0, 12.0])
    table = bench.render_table(direct, via, gateway_cpu_s=4.0)
    lines = table.splitlines()
    assert lines[1].split()[-6:] == ["10.0", "2.00", "2.00", "2.00", "100", "0"]
    assert "+1.50" in lines[3] and "+8.02" in lines[3]  # p50 3.5 - 2.0; p99 10.02 (rank 98.01) - 2.0
    assert "100 calls = 25 calls per CPU-second" in table
    assert "NOT met (over by 0.50 ms)" in table


def test_table_says_met_and_lists_failures(bench: ModuleType) -> None:
    direct = bench.LoadResult(count=11, ok=10, duration_s=1.0, errors={"boom": 1}, latencies_ms=(1.0,) * 10)
    via = _result(bench, [1.4] * 10)
    table = bench.render_table(direct, via, gateway_cpu_s=0.5)
    assert "target: added p50 <= 1.00 ms: met (added p50 +0.40 ms)" in table
    assert "failed direct: 1 x boom" in table
    assert table.splitlines()[1].split()[-1] == "1"


def test_protoset_holds_the_grader_service_and_its_imports(bench: ModuleType, tmp_path: Path) -> None:
    from google.protobuf import descriptor_pb2

    path = tmp_path / "grader.protoset"
    bench.write_protoset(path)
    files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
    names = [f.name for f in files]
    assert names[-1] == "qingfeng/v1/event.proto"
    assert "google/protobuf/timestamp.proto" in names
    for f in files:  # every import precedes its importer
        assert all(names.index(dep) < names.index(f.name) for dep in f.dependency)
    services = {s.name: [m.name for m in s.method] for s in files[-1].service}
    assert {"GetPolicy", "ListEvents"} <= set(services["GraderService"])


def test_duration_is_bounded_by_the_credential_lifetime(bench: ModuleType) -> None:
    assert bench.parse_args(["--duration", "5"]).duration == 5.0
    with pytest.raises(SystemExit):
        bench.parse_args(["--duration", "281"])


def test_only_loopback_stores(bench: ModuleType) -> None:
    assert bench.parse_args(["--kafka", "[::1]:19092", "--es", "http://localhost:19200"]).kafka == "[::1]:19092"
    with pytest.raises(SystemExit):
        bench.parse_args(["--kafka", "10.0.0.5:9092"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--es", "http://169.254.169.254:9200"])
