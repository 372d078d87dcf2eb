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

from keel.serve.trees import compile_trees, tree_tolerance


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


def _booster_cases() -> list[Any]:
    import lightgbm
    import xgboost

    return [
        pytest.param(xgboost.XGBClassifier(n_estimators=30, max_depth=4), 2, id="xgb-binary"),
        pytest.param(xgboost.XGBClassifier(n_estimators=15, max_depth=3), 3, id="xgb-3-class"),
        pytest.param(xgboost.XGBRegressor(n_estimators=30), 0, id="xgb-regressor"),
        pytest.param(lightgbm.LGBMClassifier(n_estimators=30, verbose=-1), 2, id="lgbm-binary"),
        pytest.param(lightgbm.LGBMClassifier(n_estimators=15, verbose=-1), 3, id="lgbm-3-class"),
        pytest.param(lightgbm.LGBMRegressor(n_estimators=30, verbose=-1), 0, id="lgbm-regressor"),
        pytest.param(
            lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, zero_as_missing=True),
            2,
            id="lgbm-zero-as-missing",
        ),
        pytest.param(
            lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, use_missing=False),
            2,
            id="lgbm-no-missing",
        ),
    ]


@pytest.mark.parametrize(("model", "classes"), _booster_cases())
def test_boosters_answer_within_a_millionth_of_the_library(model: Any, classes: int) -> None:
    """XGBoost and LightGBM boosters, read from their own dumps, answer within 1e-6 of the
    library, with missing values and exact zeros in the rows."""
    x, y, test = _data(max(classes, 2), nan=True)
    x[::11, 4] = 0.0
    test[::5, 4] = 0.0
    target = np.nan_to_num(x[:, 0]) * 2 + np.nan_to_num(x[:, 1]) if classes == 0 else y
    model.fit(x, target)
    predict = compile_trees(model)
    assert predict is not None
    assert tree_tolerance(model) == 1e-6
    for rows in (test, test[:1], test[:64]):
        lib = model.predict_proba(rows) if classes else model.predict(rows)
        ours = predict(rows)
        assert ours.shape == lib.shape
        assert np.abs(ours - lib).max() <= 1e-6


def test_catboost_and_linear_boosters_are_left_to_the_library() -> None:
    """Boosters the evaluator cannot read (CatBoost, XGBoost's linear booster) get None."""
    import catboost
    import xgboost

    x, y, _ = _data()
    cat = catboost.CatBoostClassifier(iterations=5, verbose=False, allow_writing_files=False)
    linear = xgboost.XGBClassifier(n_estimators=5, booster="gblinear")

    assert compile_trees(cat.fit(x, y)) is None
    assert compile_trees(linear.fit(x, y)) is None
