"""The protocols' answers as pure functions: the same answers the routed endpoints and the hot
path send, built from what the core returned."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from keel.data import RecordError
from keel.serve.errors import RequestError
from keel.serve.predictor import Answered
from keel.serve.protocols import keel_answer, keel_answer_bytes, mlflow_answer, mlflow_model
from keel.serve.runtime import Prediction


def _runtime(task: str = "classification") -> Any:
    return SimpleNamespace(
        resolved=SimpleNamespace(name="fraud", version=3), task=task, classes=[0, 1]
    )


def _answered(refused: list[RecordError] | None = None, routed: bool = False) -> Answered:
    version = 4 if routed else None
    predictions = [Prediction(0, [0.9, 0.1], version), Prediction(1, [0.2, 0.8])]
    return Answered(_runtime(), predictions, ["a", "b"], refused or [])


def test_every_row_answered_lists_predictions_ids_and_probabilities() -> None:
    """on_error "fail": one slot per row, the classifier's probabilities and classes."""
    assert keel_answer(_answered(), skip=False) == {
        "model": "fraud",
        "version": 3,
        "predictions": [0, 1],
        "prediction_ids": ["a", "b"],
        "probabilities": [[0.9, 0.1], [0.2, 0.8]],
        "classes": [0, 1],
    }


def test_skipped_rows_get_null_and_are_listed_under_errors() -> None:
    """on_error "skip": the refused row keeps its place with nulls; its reason is listed."""
    bad = RecordError(row=1, field="amount", value="x", rule="type", expected="a number")

    out = keel_answer(_answered([bad]), skip=True)

    assert out["predictions"] == [0, None, 1]
    assert out["prediction_ids"] == ["a", None, "b"]
    assert out["probabilities"] == [[0.9, 0.1], None, [0.2, 0.8]]
    assert out["errors"] == [bad.to_dict()]


def test_rows_answered_by_a_segment_version_say_which() -> None:
    """A row a segment's own version answered carries that version; the others the default."""
    out = keel_answer(_answered(routed=True), skip=False)

    assert out["versions"] == [4, 3]


def test_the_bytes_are_the_answer_as_json() -> None:
    """What the hot path sends is the same answer, encoded once."""
    answered = _answered()

    assert orjson.loads(keel_answer_bytes(answered, "fail")) == keel_answer(answered, False)
    assert "errors" in orjson.loads(keel_answer_bytes(answered, "skip"))


def test_mlflow_answers_with_the_predictions_alone() -> None:
    """MLflow's scoring format: {"predictions": [...]}."""
    assert mlflow_answer(_answered()) == {"predictions": [0, 1]}


def test_mlflow_names_the_model_or_serves_the_only_one() -> None:
    """Asked for by name, or the only one served; several and none named: a 400 naming them."""
    assert mlflow_model("churn", ["fraud", "churn"]) == "churn"
    assert mlflow_model(None, ["fraud"]) == "fraud"
    with pytest.raises(RequestError, match=r"serves \['churn', 'fraud'\]; name one"):
        mlflow_model(None, ["fraud", "churn"])
