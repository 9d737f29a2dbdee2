"""The garbage collector's settings: applied as given, validated, and off when disabled."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from qingfeng.gc_tuning import GcSettings, apply_gc_settings

from services.collector.settings import CollectorSettings
from services.grader.settings import GraderSettings


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """Leave the interpreter as found. Objects another test froze stay frozen (unfreezing them would hand a whole
    run's leftovers to the next full collection, inside whichever test happens to trigger it)."""
    thresholds, frozen_before = gc.get_threshold(), gc.get_freeze_count()
    yield
    if not frozen_before:
        gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_the_defaults_freeze_start_up_objects_and_raise_the_young_threshold() -> None:
    before = gc.get_freeze_count()
    alive = [[n] for n in range(100)]  # tracked objects made after any earlier freeze
    assert apply_gc_settings(GcSettings()) == (20_000, 50, 100)
    assert gc.get_freeze_count() >= before + len(alive), "every object alive now is out of the collections' walks"


def test_disabled_keeps_the_interpreters_own_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    before = gc.get_freeze_count()
    assert apply_gc_settings(GcSettings(enabled=False, threshold0=5000)) == (700, 10, 10)
    assert gc.get_freeze_count() == before


def test_freeze_can_be_left_off() -> None:
    before = gc.get_freeze_count()
    assert apply_gc_settings(GcSettings(freeze_at_start=False, threshold0=1000)) == (1000, 50, 100)
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize("bad", [{"threshold0": 0}, {"threshold1": 0}, {"threshold2": 10**6}, {"thresold0": 1}])
def test_bad_values_are_refused_with_the_field(bad: dict[str, int]) -> None:
    with pytest.raises(ValidationError) as err:
        GcSettings(**bad)
    assert next(iter(bad)) in str(err.value)


def test_the_hot_services_read_it_from_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QF_GRADER_GC__THRESHOLD0", "5000")
    monkeypatch.setenv("QF_COLLECTOR_GC__ENABLED", "false")
    assert GraderSettings().gc.threshold0 == 5000
    assert CollectorSettings().gc.enabled is False
