"""Small groups are listed but not judged; numeric sensitive columns are banded; segment gates read intervals."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from keel.store import ConfigError
from keel.train import EvaluationReport, check_gates, spec_from_dict
from keel.train.fairness import fairness_report
from keel.train.segments import band_column
from keel.train.spec import Bands


def of(sections: dict[str, Any]) -> EvaluationReport:
    """A classifier's report holding these sections (what the gates read)."""
    return EvaluationReport.from_json({"task": "classification", "features": [], **sections})


def _segments(**groups: tuple[int, float, float, float, bool]) -> dict[str, object]:
    return {
        "column": "region",
        "metric": "roc_auc",
        "min_group_rows": 30,
        "groups": {
            g: {
                "rows": rows,
                "judged": judged,
                "reason": None if judged else f"{rows} rows < 30",
                "metrics": {"roc_auc": {"value": v, "low": lo, "high": hi}},
            }
            for g, (rows, v, lo, hi, judged) in groups.items()
        },
    }


def test_segment_gate_ignores_groups_that_are_not_judged() -> None:
    """A 3-row segment with AUC 0.5 no longer stops the model; the note names it with its size."""
    report = {
        "segments": _segments(
            north=(400, 0.86, 0.82, 0.90, True),
            south=(350, 0.83, 0.78, 0.88, True),
            afs=(3, 0.5, 0.5, 0.5, False),
        )
    }

    (gate,) = check_gates(["segments.min.roc_auc >= 0.7"], of(report))

    assert gate.passed
    assert gate.value == 0.83
    assert (gate.low, gate.high) == (0.78, 0.88)
    assert gate.note is not None
    assert "not judged, under 30 rows or one class: afs (3 rows < 30)" in gate.note


def test_segment_gate_passes_only_when_the_interval_clears_the_threshold() -> None:
    """A point value over the threshold with an interval reaching under it fails, with a note; an interval wholly over passes."""
    straddles = {
        "segments": _segments(a=(60, 0.76, 0.65, 0.86, True), b=(500, 0.9, 0.88, 0.92, True))
    }
    clears = {"segments": _segments(a=(60, 0.81, 0.72, 0.89, True), b=(500, 0.9, 0.88, 0.92, True))}

    (unproven,) = check_gates(["segments.min.roc_auc >= 0.7"], of(straddles))
    (shown,) = check_gates(["segments.min.roc_auc >= 0.7"], of(clears))

    assert not unproven.passed
    assert unproven.note is not None
    assert unproven.note.startswith(
        "the point value passes but the interval reaches past 0.7: not shown to pass"
    )
    assert unproven.describe().startswith(
        "gate 'segments.min.roc_auc >= 0.7': got 0.76 (95 % interval 0.65 .. 0.86) ("
    )
    assert shown.passed
    assert shown.describe() == (
        "gate 'segments.min.roc_auc >= 0.7': got 0.81 (95 % interval 0.72 .. 0.89) "
        "(min over 2 judged segments of 'region': value at 'a')"
    )


@pytest.mark.parametrize(
    ("gate", "passed"),
    [
        ("segments.max.log_loss <= 0.7", True),  # interval 0.45 .. 0.62, wholly under 0.7
        ("segments.max.log_loss <= 0.6", False),  # the point 0.55 passes, the interval does not
        ("segments.max.log_loss < 0.62", False),
        ("segments.max.log_loss > 0.4", True),
        ("segments.max.log_loss >= 0.5", False),
        ("segments.max.log_loss == 0.6", True),
        ("segments.max.log_loss == 0.7", False),
    ],
)
def test_interval_verdict_for_every_operator(gate: str, passed: bool) -> None:
    """Each operator passes only when the whole interval is on its passing side (==: inside it)."""
    report = {
        "segments": {
            "column": "c",
            "groups": {
                "a": {
                    "rows": 80,
                    "judged": True,
                    "metrics": {"log_loss": {"value": 0.55, "low": 0.45, "high": 0.62}},
                }
            },
        }
    }

    (result,) = check_gates([gate], of(report))

    assert result.passed is passed


def test_segment_gate_with_no_judged_group_fails_and_lists_the_small_ones() -> None:
    """When every segment is under the minimum, the gate cannot pass on nothing: it fails and says why."""
    report = {"segments": _segments(x=(12, 0.4, 0.2, 0.6, False), y=(9, 0.9, 0.8, 1.0, False))}

    (gate,) = check_gates(["segments.min.roc_auc >= 0.7"], of(report))

    assert not gate.passed
    assert gate.note == (
        "no judged segment has a value for this metric; not judged, under 30 rows or one class: "
        "x (12 rows < 30), y (9 rows < 30)"
    )


def test_fairness_gaps_are_measured_between_judged_groups_only() -> None:
    """One-row groups of a raw column are listed as not judged and do not make the gap 1.0."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    pred = rng.integers(0, 2, 200)
    groups = np.array(["a"] * 100 + ["b"] * 98 + ["c", "d"], dtype=object)
    pred[198] = 1  # c selects everyone
    pred[199] = 0  # d selects no one

    report = fairness_report(y, pred, {"g": groups}, min_group_rows=30)["g"]

    assert set(report["by_group"]) == {"a", "b"}
    assert report["not_judged"] == [
        {"group": "c", "rows": 1, "reason": "1 rows < 30"},
        {"group": "d", "rows": 1, "reason": "1 rows < 30"},
    ]
    assert report["demographic_parity_difference"] < 0.3


def test_fairness_with_one_judged_group_has_no_gap_and_the_gate_says_why() -> None:
    """With fewer than two judged groups the gaps are None, and a fairness gate fails naming the reason."""
    y = np.array([0, 1] * 25 + [1, 1, 0])
    pred = y.copy()
    groups = np.array(["big"] * 50 + ["small"] * 3, dtype=object)

    fr = fairness_report(y, pred, {"sex": groups}, min_group_rows=30)
    (gate,) = check_gates(
        ["fairness.sex.demographic_parity_difference <= 0.1"], of({"fairness": fr})
    )

    assert fr["sex"]["demographic_parity_difference"] is None
    assert not gate.passed
    assert (
        gate.note
        == "1 group(s) of 'sex' with >= 30 rows and both classes; gaps between groups need two"
    )


def test_given_bands_label_every_row() -> None:
    """Given lower edges make half-open bands, a band below the first edge, and 'missing' for nulls."""
    series = pl.Series("age", [-3.0, 0.0, 24.9, 25.0, 44.0, 65.0, 90.0, None])

    labels, info = band_column(series, Bands((0.0, 25.0, 45.0, 65.0)))

    assert labels.tolist() == [
        "< 0",
        "[0, 25)",
        "[0, 25)",
        "[25, 45)",
        "[25, 45)",
        ">= 65",
        ">= 65",
        "missing",
    ]
    assert info == {"method": "given", "edges": [0.0, 25.0, 45.0, 65.0]}


def test_quantile_bands_cut_a_continuous_column_into_quartiles() -> None:
    """By default a numeric column is cut at its quartiles: four bands of about a quarter each."""
    series = pl.Series("age", np.arange(18, 98, dtype=float))  # 80 ages

    labels, info = band_column(series, Bands())

    assert info == {"method": "quantile", "edges": [37.75, 57.5, 77.25], "quantiles": 4}
    counts = {str(k): int(v) for k, v in zip(*np.unique(labels, return_counts=True), strict=True)}
    assert counts == {
        "[18, 37.75)": 20,
        "[37.75, 57.5)": 20,
        "[57.5, 77.25)": 20,
        "[77.25, 97]": 20,
    }


def test_spec_min_group_rows_and_fairness_bands_are_read_and_validated() -> None:
    """The spec keys min_group_rows and fairness are read, kept in to_dict, and wrong values named."""
    spec = spec_from_dict(
        {
            "estimator": "x.Y",
            "min_group_rows": 50,
            "fairness": {"AGE": {"bands": [0, 25, 45, 65]}, "INC": {"quantiles": 5}},
        }
    )

    assert spec.min_group_rows == 50
    assert spec.fairness == {"AGE": Bands((0.0, 25.0, 45.0, 65.0)), "INC": Bands(None, 5)}
    assert spec.to_dict()["fairness"] == {
        "AGE": {"bands": [0.0, 25.0, 45.0, 65.0], "quantiles": 4},
        "INC": {"bands": None, "quantiles": 5},
    }
    assert spec_from_dict({"estimator": "x.Y"}).min_group_rows == 30
    with pytest.raises(
        ConfigError, match=r"min_group_rows is 0; expected a whole number of rows >= 1"
    ):
        spec_from_dict({"estimator": "x.Y", "min_group_rows": 0})
    with pytest.raises(
        ConfigError, match=r"fairness.AGE.bands is \[45, 25\]; expected a list of ascending numbers"
    ):
        spec_from_dict({"estimator": "x.Y", "fairness": {"AGE": {"bands": [45, 25]}}})
    with pytest.raises(
        ConfigError, match=r"fairness.AGE.quantiles is 1; expected a whole number of bands >= 2"
    ):
        spec_from_dict({"estimator": "x.Y", "fairness": {"AGE": {"quantiles": 1}}})
    with pytest.raises(ConfigError, match=r"fairness.AGE is \[0, 25\]; expected e.g."):
        spec_from_dict({"estimator": "x.Y", "fairness": {"AGE": [0, 25]}})


def test_a_group_needs_min_group_minority_of_each_class() -> None:
    """`min_group_minority`: a segment with 3 frauds is not judged at 10 (its AUC is noise);
    the default (1) keeps "both classes present"."""
    from keel.train.fairness import group_verdict

    y = np.array([1] * 3 + [0] * 200)
    assert group_verdict(y, "classification", 30) is None
    assert group_verdict(y, "classification", 30, 10) == "3 of the rarer class < 10"
    assert group_verdict(np.zeros(50), "classification", 30, 10) == "one class only in 50 rows"
    assert group_verdict(np.arange(50.0), "regression", 30, 10) is None


def test_segment_gate_names_the_minority_rule() -> None:
    seg: Any = _segments(x=(200, 0.9, 0.85, 0.95, True), y=(200, 0.4, 0.2, 0.6, False))
    seg["min_group_minority"] = 10
    seg["groups"]["y"]["reason"] = "3 of the rarer class < 10"

    (gate,) = check_gates(["segments.min.roc_auc >= 0.7"], of({"segments": seg}))

    assert gate.passed
    assert gate.note is not None
    assert gate.note.endswith(
        "; not judged, under 30 rows or under 10 of a class: y (3 of the rarer class < 10)"
    )


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "10"])
def test_min_group_minority_is_a_whole_number(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"min_group_minority is .*; expected a whole number"):
        spec_from_dict({"estimator": "x.Y", "min_group_minority": bad})
