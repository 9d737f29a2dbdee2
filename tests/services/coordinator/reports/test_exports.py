"""The package's public list names exactly what it offers, so the coordinator imports from one place."""

from __future__ import annotations

import types

import services.coordinator.reports as reports


def test_all_lists_every_public_name_and_only_those() -> None:
    public = {
        name
        for name, value in vars(reports).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert set(reports.__all__) == public
    assert reports.__all__ == sorted(reports.__all__)
    for name in ("render_rapid_report_html", "render_rapid_report_pdf", "render_statistics_html", "Claim"):
        assert name in reports.__all__
