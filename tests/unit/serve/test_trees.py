"""The batch tree evaluator answers the very numbers scikit-learn answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression

from keel.serve.trees import compile_trees


def _data(classes: int = 2, nan: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6))
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(scale=0.5, size=600) > 0).astype(int)
    if classes == 3:
        y = y + (x[:, 3] > 0.8)
    if nan:
        x[rng.random(x.shape) < 0.1] = np.nan
    test = rng.normal(size=(257, 6))
    if nan:
        test[rng.random(test.shape) < 0.1] = np.nan
    return x, y, test


@pytest.mark.parametrize(
    ("model", "classes", "nan"),
    [
        (RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0), 2, False),
        (RandomForestClassifier(n_estimators=20, random_state=0), 3, False),
        (RandomForestClassifier(n_estimators=20, random_state=0), 2, True),
        (ExtraTreesClassifier(n_estimators=20, random_state=0), 2, False),
        (HistGradientBoostingClassifier(max_iter=40, random_state=0), 2, False),
        (HistGradientBoostingClassifier(max_iter=20, random_state=0), 3, False),
        (HistGradientBoostingClassifier(max_iter=30, random_state=0), 2, True),
    ],
)
def test_classifiers_give_the_same_probabilities(model: Any, classes: int, nan: bool) -> None:
    x, y, test = _data(classes, nan)
    model.fit(x, y)
    predict = compile_trees(model)
    assert predict is not None
    for rows in (test, test[:1], test[:64]):
        assert np.array_equal(predict(rows), model.predict_proba(rows))


@pytest.mark.parametrize(
    "model",
    [
        RandomForestRegressor(n_estimators=25, random_state=0),
        ExtraTreesRegressor(n_estimators=10, max_depth=6, random_state=0),
        HistGradientBoostingRegressor(max_iter=50, random_state=0),
    ],
)
def test_regressors_give_the_same_predictions(model: Any) -> None:
    x, y, test = _data()
    target = x[:, 0] * 3 + y
    model.fit(x, target)
    predict = compile_trees(model)
    assert predict is not None
    assert np.array_equal(predict(test), model.predict(test))


def test_what_it_cannot_reproduce_is_refused() -> None:
    x, y, _ = _data()
    assert compile_trees(LogisticRegression().fit(x, y)) is None
    cats = np.column_stack([x[:, :3], (x[:, 3] > 0).astype(int)])
    hgb = HistGradientBoostingClassifier(max_iter=10, categorical_features=[3]).fit(cats, y)
    assert compile_trees(hgb) is None
    multi = RandomForestRegressor(n_estimators=3).fit(x, np.column_stack([y, y]))
    assert compile_trees(multi) is None
