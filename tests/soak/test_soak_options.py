"""bench/soak.py's options for focused runs: ``--faults`` (a subset, spread over the run), ``--down``, ``--window``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from soak import FAULTS, SoakOptions, parse_args, parse_faults, spread  # noqa: E402


def test_the_default_and_the_short_form_inject_every_fault_at_their_shares() -> None:
    for options in (parse_args([]), parse_args(["--short"])):
        assert options.faults == FAULTS and len(options.fault_at) == len(FAULTS)
    assert parse_args([]).fault_at == SoakOptions().fault_at
    assert parse_args(["--short"]).fault_at == SoakOptions.short().fault_at
    assert parse_args(["--faults", "all"]).faults == FAULTS
    control = parse_args(["--faults", "none"])  # a run without faults: the machine's own latency
    assert (control.faults, control.fault_at) == ((), ())


def test_a_subset_keeps_the_order_of_faults_and_is_spread_over_the_run() -> None:
    options = parse_args(["--faults", "es,kafka", "--duration", "90", "--down", "40", "--window", "10"])
    assert options.faults == ("restart kafka", "restart elasticsearch")
    assert options.fault_at == spread(2) == (0.225, 0.575)
    assert (options.duration_s, options.down_s, options.window_s) == (90.0, 40.0, 10.0)
    assert parse_args(["--faults", "kafka", "--short"]).fault_at == (0.4,)
    assert parse_args(["--faults", "kafka", "--short"]).duration_s == 60.0  # --short itself unchanged


def test_spread_leaves_the_last_quarter_of_the_run_for_recovery() -> None:
    for count in range(1, 6):
        shares = spread(count)
        assert len(shares) == count and list(shares) == sorted(shares) and shares[-1] < 0.75


def test_unknown_faults_are_refused_with_the_names_to_choose_from() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="collector, indexer, grader, kafka, es"):
        parse_faults("kafka,broker")
    with pytest.raises(ValueError, match="2 faults but 1 start shares"):
        SoakOptions(faults=FAULTS[:2], fault_at=(0.1,))
    with pytest.raises(ValueError, match="unknown faults"):
        SoakOptions(faults=("reboot",), fault_at=(0.1,))


def test_a_standby_grader_in_the_ci_form_started_before_the_grader_kill() -> None:
    for options in (parse_args(["--short"]), parse_args(["--standby"])):
        grader_kill = options.fault_at[options.faults.index("kill -9 grader")]
        assert options.standby_at is not None and options.standby_at < grader_kill
    assert parse_args([]).standby_at is None
    assert parse_args(["--short", "--no-standby"]).standby_at is None
