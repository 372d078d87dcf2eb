"""Weighted bootstrap metrics equal scikit-learn's on every resample."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from keel.train.metrics import calibration_table, score, weighted_binary, weighted_regression


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(0)
    n = 300
    y = (rng.random(n) < 0.3).astype(float)
    p = np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1).round(2)  # rounding makes ties
    w = rng.multinomial(n, np.full(n, 1 / n), size=20).astype(float)
    idx = [np.repeat(np.arange(n), row.astype(int)) for row in w]
    return y, p, w, idx


def test_weighted_binary_equals_sklearn_on_resamples(
    binary: tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]],
) -> None:
    """ROC AUC, PR AUC, log loss, Brier, accuracy and F1 match scikit-learn to 1e-12."""
    y, p, w, idx = binary

    got = weighted_binary(y, p, w)

    for k, rows in enumerate(idx):
        yk, pk = y[rows], p[rows]
        assert got["roc_auc"][k] == pytest.approx(skm.roc_auc_score(yk, pk), abs=1e-12)
        assert got["pr_auc"][k] == pytest.approx(skm.average_precision_score(yk, pk), abs=1e-12)
        assert got["log_loss"][k] == pytest.approx(
            skm.log_loss(yk, np.clip(pk, 1e-15, 1 - 1e-15)), abs=1e-12
        )
        assert got["brier"][k] == pytest.approx(skm.brier_score_loss(yk, pk), abs=1e-12)
        assert got["accuracy"][k] == pytest.approx(skm.accuracy_score(yk, pk >= 0.5), abs=1e-12)
        assert got["f1"][k] == pytest.approx(skm.f1_score(yk, pk >= 0.5), abs=1e-12)


def test_weighted_regression_equals_sklearn() -> None:
    """RMSE, MAE and R² match scikit-learn on resamples."""
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    pred = y + rng.normal(scale=0.5, size=200)
    w = rng.multinomial(200, np.full(200, 1 / 200), size=10).astype(float)

    got = weighted_regression(y, pred, w)

    for k, row in enumerate(w):
        rows = np.repeat(np.arange(200), row.astype(int))
        assert got["rmse"][k] == pytest.approx(
            np.sqrt(skm.mean_squared_error(y[rows], pred[rows])), abs=1e-12
        )
        assert got["mae"][k] == pytest.approx(
            skm.mean_absolute_error(y[rows], pred[rows]), abs=1e-12
        )
        assert got["r2"][k] == pytest.approx(skm.r2_score(y[rows], pred[rows]), abs=1e-12)


def test_score_gives_intervals_around_the_value() -> None:
    """Intervals bracket the point value and are seeded."""
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.4).astype(int)
    p = np.clip(0.4 * y + rng.random(500) * 0.6, 0, 1)
    out = np.c_[1 - p, p]

    a = score("classification", y, out, n_boot=100, seed=3)
    b = score("classification", y, out, n_boot=100, seed=3)

    assert a == b
    auc = a["roc_auc"]
    assert auc["low"] < auc["value"] < auc["high"]  # type: ignore[operator]


def test_single_class_gives_no_auc() -> None:
    """A slice with one class has no ROC AUC (None), not an error."""
    out = np.c_[np.full(5, 0.5), np.full(5, 0.5)]

    assert (
        score("classification", np.zeros(5, dtype=int), out, n_boot=20)["roc_auc"]["value"] is None
    )


def test_calibration_table() -> None:
    """Bins report rows, mean prediction and observed rate."""
    table = calibration_table(np.array([0, 1, 1, 0.0]), np.array([0.05, 0.95, 0.91, 0.12]))

    assert table == [
        {"bin": "0.0-0.1", "rows": 1, "mean_predicted": 0.05, "observed_rate": 0.0},
        {"bin": "0.1-0.2", "rows": 1, "mean_predicted": 0.12, "observed_rate": 0.0},
        {"bin": "0.9-1.0", "rows": 2, "mean_predicted": 0.93, "observed_rate": 1.0},
    ]
