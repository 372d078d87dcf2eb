"""The drift result is typed: frozen, validated when built, its JSON unchanged and read back."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from keel.monitor import ColumnDrift, DriftConfig, DriftReport, drift_between


def test_a_report_reads_back_from_its_json() -> None:
    """`from_json(to_dict())` gives the same report, for exact and profile mode."""
    rng = np.random.default_rng(7)
    reference = pl.DataFrame({"x": rng.normal(0, 1, 500), "c": rng.choice(["a", "b"], 500)})
    current = pl.DataFrame({"x": rng.normal(0.5, 1, 400), "c": rng.choice(["a", "b"], 400)})

    for exact in (True, False):
        report = drift_between(reference, current, exact=exact)

        assert DriftReport.from_json(report.to_dict()) == report
        assert report.to_dict()["rows"] == {"reference": 500, "current": 400}
        assert report.to_dict()["missing_columns"] == []


def test_the_report_is_frozen() -> None:
    """Nobody edits a result after the fact."""
    report = DriftReport(columns=(), mode="exact")

    with pytest.raises(dataclasses.FrozenInstanceError):
        report.mode = "profile"  # type: ignore[misc]


def test_a_wrong_field_is_named_with_its_value() -> None:
    """from_json names the field, the value and what was expected."""
    good = {
        "name": "x", "kind": "numeric", "method": "wasserstein", "statistic": 0.1,
        "p_value": 0.5, "threshold": 0.05, "drifted": False, "test": "ks_2samp",
        "n_reference": 10, "n_current": 10, "psi": 0.0, "jensen_shannon": 0.0,
    }  # fmt: skip

    with pytest.raises(ValueError, match="kind") as kind:
        ColumnDrift.from_json({**good, "kind": "text"})
    with pytest.raises(ValueError, match="no field") as unknown:
        ColumnDrift.from_json({**good, "p": 1})
    with pytest.raises(ValueError, match="mode") as mode:
        DriftReport.from_json({"mode": "binned", "columns": [good]})

    assert str(kind.value) == "ColumnDrift.kind is 'text'; expected one of numeric, categorical."
    assert str(unknown.value).startswith(
        "ColumnDrift has no field 'p'; valid fields: drifted, error_bound,"
    )
    assert str(mode.value) == "DriftReport.mode is 'binned'; expected one of exact, profile."


def test_drift_settings_are_checked_when_built() -> None:
    """A typo in `[drift]` is named with the valid keys; a value out of range is named too."""
    with pytest.raises(ValueError, match="alpah") as typo:
        DriftConfig.from_json({"alpah": 0.05})
    with pytest.raises(ValueError, match="alpha") as alpha:
        DriftConfig.from_json({"alpha": 5})

    assert str(typo.value) == (
        "DriftConfig has no field 'alpah'; valid fields: alpha, jensen_shannon, min_rows, "
        "wasserstein."
    )
    assert str(alpha.value) == "drift.alpha is 5; expected a number between 0 and 1, e.g. 0.01."
    assert DriftConfig.from_json({"min_rows": 30}) == DriftConfig(min_rows=30)
