"""The evaluation report: typed, frozen, validated when built, JSON only for the stored column."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest

from keel.store import ConfigError
from keel.train import EvaluationReport, GateResult

STORED = Path(__file__).parent / "data" / "report_stored_by_0ffd8a8.json"
"""A report as keel stored it before the report was typed (commit 0ffd8a8): a logistic
regression on the transaction simulator, registered while another version was production."""

# An ONNX graph imported without data, as keel 0ffd8a8 stored it (train/onnx_import.py).
UNEVALUATED = {
    "task": "classification",
    "estimator": "onnx",
    "params": {},
    "target": "is_fraud",
    "features": ["amount", "region"],
    "categorical": ["region"],
    "format": "onnx",
    "classes": ["0", "1"],
    "evaluated": False,
    "note": "not evaluated: imported without --data, so no holdout metrics, gates or reference profile (no drift monitoring).",
    "metrics": {},
    "gates": [],
}


def stored() -> dict[str, Any]:
    return dict(json.loads(STORED.read_text()))


def text(data: Any) -> str:
    """JSON text that tells NaN from NaN apart only by value (NaN != NaN as floats)."""
    return json.dumps(data, sort_keys=True)


class TestStoredReports:
    def test_a_report_stored_by_the_previous_code_loads(self) -> None:
        """Every field of an old stored report is read into the typed report."""
        report = EvaluationReport.from_json(stored())

        assert report.task == "classification"
        assert report.estimator == "sklearn.linear_model.LogisticRegression"
        assert report.classes == ("0", "1")
        assert report.split["method"] in ("time", "random", "group")
        assert report.metric("roc_auc") == stored()["metrics"]["roc_auc"]["value"]
        assert report.vs_production is not None
        assert "production" in report.vs_production
        assert [g.name for g in report.gates] == [
            "holdout.roc_auc >= 0.5",
            "vs_production.roc_auc >= -1",
        ]
        assert all(isinstance(g, GateResult) for g in report.gates)
        assert report.extra == {}

    def test_an_old_report_is_written_back_unchanged(self) -> None:
        """to_json of a loaded old report is that report: same keys, same order, same values."""
        data = stored()

        again = EvaluationReport.from_json(data).to_json()

        assert list(again) == list(data)
        assert text(again) == text(data)

    def test_an_unevaluated_onnx_report_keeps_its_own_keys(self) -> None:
        """An imported graph's report keeps `evaluated`, `note` and keys keel does not type."""
        report = EvaluationReport.from_json(UNEVALUATED)

        assert report.evaluated is False
        assert report.extra == {"format": "onnx"}
        assert report.metric("roc_auc") is None
        assert {k: v for k, v in report.to_json().items() if k in UNEVALUATED} == UNEVALUATED


class TestRoundTrip:
    def test_json_round_trip(self) -> None:
        """from_json(to_json()) gives an equal report."""
        report = EvaluationReport.from_json(UNEVALUATED)

        assert EvaluationReport.from_json(report.to_json()) == report

    def test_pickles_as_its_json(self) -> None:
        """A report crosses processes (the loop's retrain worker) whole."""
        report = EvaluationReport.from_json(stored())

        assert text(pickle.loads(pickle.dumps(report)).to_json()) == text(report.to_json())

    def test_sections_encode_as_json_as_they_are(self) -> None:
        """A section goes to a JSON encoder (an audit event's figures, an HTTP answer) as is."""
        report = EvaluationReport.from_json(stored())

        assert orjson.loads(orjson.dumps(report.runtime)) == stored()["runtime"]
        assert json.loads(json.dumps(report.split)) == stored()["split"]

    def test_is_frozen(self) -> None:
        """Neither the report nor its sections can be changed after it is built."""
        report = EvaluationReport.from_json(stored())

        with pytest.raises(dataclasses.FrozenInstanceError):
            report.task = "regression"  # type: ignore[misc]
        with pytest.raises(TypeError):
            report.metrics["roc_auc"] = {"value": 1.0}  # type: ignore[index]
        with pytest.raises(TypeError):
            report.metrics["roc_auc"]["value"] = 1.0  # nested objects are frozen too


class TestValidation:
    def test_an_unknown_task_names_field_value_and_expectation(self) -> None:
        """A task keel does not know is refused with the valid ones."""
        with pytest.raises(ConfigError) as exc:
            EvaluationReport(task="binary", features=("x",))

        assert str(exc.value) == (
            "EvaluationReport field 'task' is 'binary'; expected one of "
            "['classification', 'regression']."
        )

    def test_features_must_be_names(self) -> None:
        """Features given as one string (not a list) are refused."""
        with pytest.raises(ConfigError, match=r"field 'features' is 'amount'; expected a list"):
            EvaluationReport(task="regression", features="amount")  # type: ignore[arg-type]

    def test_a_metric_without_a_number_is_refused(self) -> None:
        """A holdout metric must be {'value': number or None, ...}; the path is named."""
        with pytest.raises(ConfigError, match=r"field 'metrics.roc_auc' is \{'value': 'high'\}"):
            EvaluationReport.from_json(
                {
                    "task": "classification",
                    "features": [],
                    "metrics": {"roc_auc": {"value": "high"}},
                }
            )

    def test_a_stored_column_without_features_is_refused(self) -> None:
        """A column that is not a report keel wrote says which field is missing."""
        with pytest.raises(ConfigError, match=r"field 'features' is None; expected present"):
            EvaluationReport.from_json({"auc": 0.9})

    def test_a_stored_column_without_task_is_a_classifier(self) -> None:
        """As every reader of the column did before, a missing task means classification."""
        assert EvaluationReport.from_json({"features": ["x"]}).task == "classification"

    def test_a_section_that_is_not_a_mapping_is_refused(self) -> None:
        """Sections are JSON objects; a list where one belongs is named."""
        with pytest.raises(ConfigError, match=r"field 'runtime' is \[1, 2\]; expected a mapping"):
            EvaluationReport(task="regression", features=(), runtime=[1, 2])  # type: ignore[arg-type]


class TestGateResult:
    def test_a_verdict_that_is_not_a_boolean_is_refused(self) -> None:
        """`passed` is true or false, never a word."""
        with pytest.raises(ConfigError, match=r"GateResult field 'passed' is 'yes'; expected true"):
            GateResult("holdout.roc_auc >= 0.8", 0.9, 0.8, ">=", "yes")  # type: ignore[arg-type]

    def test_a_threshold_that_is_not_a_number_is_refused(self) -> None:
        """The threshold is a number; the value may be None (not measured)."""
        assert GateResult("runtime.p99_ms <= 5", None, 5, "<=", False).value is None
        with pytest.raises(ConfigError, match=r"field 'threshold' is '5'; expected a number\."):
            GateResult("runtime.p99_ms <= 5", None, "5", "<=", False)  # type: ignore[arg-type]
