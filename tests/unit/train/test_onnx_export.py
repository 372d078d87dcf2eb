"""ONNX export: HistGradientBoosting through keel's converter, boosters through onnxmltools,
column names that are not identifiers, all checked against onnxruntime on real data."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from keel.data import contract_from_dict
from keel.store import ConfigError
from keel.train.features import build_pipeline
from keel.train.onnx_export import onnx_parity, pipeline_to_onnx

pytestmark = pytest.mark.slow


def _frame(loader: Any, *, nan_share: float = 0.0, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    data = loader(as_frame=True)
    x = data.data.astype(np.float32).astype(np.float64)  # keel's float32 input precision
    if nan_share:
        rng = np.random.default_rng(seed)
        x = x.mask(rng.random(x.shape) < nan_share)
    return x, data.target.to_numpy()


def _contract(x: pd.DataFrame, categorical: tuple[str, ...] = ()) -> Any:
    columns: dict[str, Any] = {
        c: {"type": "category"} if c in categorical else {"type": "float"} for c in x.columns
    }
    columns["y"] = {"type": "float", "role": "target"}
    return contract_from_dict({"name": "t", "columns": columns})


def _fit(estimator: Any, x: pd.DataFrame, y: Any, categorical: tuple[str, ...] = ()) -> Any:
    pipe = build_pipeline(_contract(x, categorical), list(x.columns), estimator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LightGBM's feature-name notices; not under test
        return pipe.fit(x, y)


def _parity(pipe: Any, x: pd.DataFrame, categorical: tuple[str, ...] = ()) -> float:
    data = pipeline_to_onnx(pipe, list(x.columns), set(categorical))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnx_parity(data, pipe, x, set(categorical))


class TestHistGradientBoosting:
    def test_binary_classifier_exports_with_parity(self) -> None:
        """A binary HistGradientBoostingClassifier exports and agrees within 1e-5."""
        x, y = _frame(load_breast_cancer)

        pipe = _fit(HistGradientBoostingClassifier(max_iter=60, random_state=0), x, y)

        assert _parity(pipe, x) <= 1e-5

    def test_multiclass_classifier_exports_with_parity(self) -> None:
        """A three-class HistGradientBoostingClassifier exports and agrees within 1e-5."""
        x, y = _frame(load_wine)

        pipe = _fit(HistGradientBoostingClassifier(max_iter=40, random_state=0), x, y)

        assert _parity(pipe, x) <= 1e-5

    @pytest.mark.parametrize("loss", ["squared_error", "poisson"])
    def test_regressor_exports_with_parity(self, loss: str) -> None:
        """A HistGradientBoostingRegressor (identity and log link) agrees within 1e-5."""
        x, y = _frame(load_diabetes)

        pipe = _fit(HistGradientBoostingRegressor(max_iter=80, loss=loss, random_state=0), x, y)

        assert _parity(pipe, x) <= 1e-5

    @pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
    def test_missing_values_follow_missing_go_to_left(self, task: str) -> None:
        """With missing values seen in training (no imputer before the trees), every row with
        NaNs takes the branch scikit-learn takes."""
        loader = {"binary": load_breast_cancer, "multiclass": load_wine}.get(task, load_diabetes)
        x, y = _frame(loader, nan_share=0.2)
        cls = (
            HistGradientBoostingRegressor
            if task == "regression"
            else HistGradientBoostingClassifier
        )
        passthrough = ColumnTransformer([("num", "passthrough", list(x.columns))])
        pipe = Pipeline([("prep", passthrough), ("model", cls(max_iter=40, random_state=0))])
        pipe.fit(x, y)
        nodes = np.concatenate([p.nodes for it in pipe[-1]._predictors for p in it])
        inner = nodes[nodes["is_leaf"] == 0]
        # both directions are taken by missing values somewhere: the flag is really exercised
        assert set(inner["missing_go_to_left"].tolist()) == {0, 1}

        assert _parity(pipe, x) <= 1e-5

    def test_categorical_splits_are_refused_with_the_reason(self) -> None:
        """A model with native categorical splits is refused, saying why and what to do."""
        rng = np.random.default_rng(0)
        x = pd.DataFrame({"a": rng.integers(0, 5, 400).astype(float), "b": rng.normal(size=400)})
        y = (x["a"].isin([1, 3]) ^ (x["b"] > 1)).astype(int).to_numpy()
        model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
        passthrough = ColumnTransformer([("num", "passthrough", ["a", "b"])])
        pipe = Pipeline([("prep", passthrough), ("model", model)]).fit(x, y)

        with pytest.raises(ConfigError) as exc:
            pipeline_to_onnx(pipe, ["a", "b"], set(), label="m@1")

        assert "m@1 (HistGradientBoostingClassifier) cannot be converted" in str(exc.value)
        assert "uses categorical splits (feature indices [0])" in str(exc.value)
        assert "Train it without categorical_features" in str(exc.value)

    def test_graph_uses_standard_ml_opset(self) -> None:
        """The exported graph passes onnx.checker and imports ai.onnx.ml 5, no private domain."""
        x, y = _frame(load_breast_cancer)
        pipe = _fit(HistGradientBoostingClassifier(max_iter=5), x, y)

        model = onnx.load_from_string(pipeline_to_onnx(pipe, list(x.columns), set()))

        onnx.checker.check_model(model, full_check=True)
        assert {o.domain: o.version for o in model.opset_import}["ai.onnx.ml"] == 5
        assert {n.domain for n in model.graph.node} <= {"", "ai.onnx.ml"}


class TestColumnNames:
    def test_hyphenated_and_spaced_columns_export_and_keep_their_names(self) -> None:
        """Columns named 'credit-score' and 'num of loans' export; the graph's inputs keep those
        names and the parity check feeds them."""
        rng = np.random.default_rng(1)
        n = 600
        x = pd.DataFrame(
            {
                "credit-score": rng.normal(650, 60, n).astype(np.float32).astype(float),
                "num of loans": rng.integers(0, 6, n).astype(float),
                "home owner": rng.choice(["yes", "no", ""], n).astype(object),
            }
        )
        y = ((x["credit-score"] > 640) & (x["num of loans"] < 4)).astype(int).to_numpy()
        pipe = _fit(LogisticRegression(max_iter=500), x, y, ("home owner",))

        data = pipeline_to_onnx(pipe, list(x.columns), {"home owner"})

        names = [i.name for i in onnx.load_from_string(data).graph.input]
        assert names == ["credit-score", "num of loans", "home owner"]
        assert onnx_parity(data, pipe, x, {"home owner"}) <= 1e-5


class TestBoosters:
    @pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
    def test_booster_classifier_exports_with_parity(self, kind: str) -> None:
        """An XGBClassifier or LGBMClassifier as the pipeline's last step exports through
        onnxmltools and agrees within 1e-5 on real data."""
        x, y = _frame(load_breast_cancer, nan_share=0.05)
        x.columns = [c.replace(" ", "-") for c in x.columns]  # hyphenated names, too
        if kind == "xgboost":
            from xgboost import XGBClassifier

            est: Any = XGBClassifier(n_estimators=40, max_depth=3)
        else:
            from lightgbm import LGBMClassifier

            est = LGBMClassifier(n_estimators=40, num_leaves=8, verbose=-1)

        pipe = _fit(est, x, y)

        assert _parity(pipe, x) <= 1e-5

    @pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
    def test_booster_multiclass_and_regressor_export(self, kind: str) -> None:
        """Multiclass boosters and booster regressors export too (regressors in float32, so
        their parity is relative to the target's scale)."""
        xw, yw = _frame(load_wine)
        xd, yd = _frame(load_diabetes)
        if kind == "xgboost":
            from xgboost import XGBClassifier, XGBRegressor

            clf: Any = XGBClassifier(n_estimators=30, max_depth=3)
            reg: Any = XGBRegressor(n_estimators=30, max_depth=3)
        else:
            from lightgbm import LGBMClassifier, LGBMRegressor

            clf = LGBMClassifier(n_estimators=30, num_leaves=8, verbose=-1)
            reg = LGBMRegressor(n_estimators=30, num_leaves=8, verbose=-1)

        assert _parity(_fit(clf, xw, yw), xw) <= 1e-5
        assert _parity(_fit(reg, xd, yd), xd) <= 1e-5 * float(np.abs(yd).max())
