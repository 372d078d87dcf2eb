"""Gates and specs: parsing with clear errors, verdicts with values and thresholds."""

from __future__ import annotations

import pytest

from keel.store import ConfigError
from keel.train import EvaluationReport, check_gates, parse_gate, spec_from_dict

REPORT = EvaluationReport.from_json(
    {
        "task": "classification",
        "features": [],
        "metrics": {"roc_auc": {"value": 0.81}, "log_loss": {"value": 0.3}},
        "train_metrics": {"roc_auc": {"value": 0.95}},
        "overfit": {"roc_auc": 0.14},
        "segments": {
            "groups": {
                "a": {"metrics": {"roc_auc": {"value": 0.9}}},
                "b": {"metrics": {"roc_auc": {"value": 0.62}}},
            }
        },
        "fairness": {"sex": {"demographic_parity_difference": 0.18}},
        "runtime": {"p99_ms": 3.2},
    }
)


def test_gate_verdicts_carry_value_and_threshold() -> None:
    """Each gate reports the value it saw, the threshold and whether it passed."""
    results = check_gates(
        [
            "holdout.roc_auc >= 0.80",
            "overfit.roc_auc <= 0.05",
            "segments.min.roc_auc >= 0.70",
            "fairness.sex.demographic_parity_difference <= 0.10",
            "runtime.p99_ms <= 5",
        ],
        REPORT,
    )

    assert [(r.value, r.passed) for r in results] == [
        (0.81, True),
        (0.14, False),
        (0.62, False),
        (0.18, False),
        (3.2, True),
    ]
    assert results[1].describe() == "gate 'overfit.roc_auc <= 0.05': got 0.14"


def test_vs_production_passes_without_production() -> None:
    """With no production version yet, a vs_production gate passes and says why."""
    (result,) = check_gates(["vs_production.roc_auc >= -0.005"], REPORT)

    assert result.passed
    assert result.note == "no production version"


def test_unknown_metric_fails_with_a_note() -> None:
    """A gate on a metric the report lacks fails and lists the known ones."""
    (result,) = check_gates(["holdout.rmse <= 1"], REPORT)

    assert not result.passed
    assert result.note == "no metric 'rmse'; known: ['log_loss', 'roc_auc']"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("holdout.roc_auc => 0.8", "is not of the form 'PATH OP NUMBER'"),
        ("accuracy >= 0.8", "starts with 'accuracy'; expected holdout"),
    ],
)
def test_malformed_gates(text: str, message: str) -> None:
    """A malformed gate is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=message):
        check_gates([text], REPORT)


def test_parse_gate() -> None:
    """Gates split into path, operator and number."""
    assert parse_gate("vs_production.roc_auc >= -0.005") == ("vs_production.roc_auc", ">=", -0.005)


def test_spec_defaults_and_errors() -> None:
    """A spec needs an estimator; unknown keys and bad splits are named."""
    spec = spec_from_dict({"estimator": "sklearn.linear_model.LogisticRegression"})

    assert spec.split.test_size == 0.2
    assert spec.cost == {"cpu_hour_usd": 0.05}
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['estimater'\]"):
        spec_from_dict({"estimator": "x", "estimater": "y"})
    with pytest.raises(ConfigError, match=r"a group split needs split.group"):
        spec_from_dict({"estimator": "x", "split": {"method": "group"}})
    with pytest.raises(ConfigError, match=r"cannot be imported"):
        spec_from_dict({"estimator": "sklearn.nope.Model"}).make_estimator()
