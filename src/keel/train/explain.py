"""Explanations with SHAP: global importance on a sample, and the reference rows to explain
single predictions later (the serving layer's `/explain`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from keel.train.features import source_feature

_TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost", "catboost")


def explainer_kind(model: Any) -> str:
    module = type(model).__module__
    if module.startswith(_TREE_MODULES):
        return "tree"
    if module.startswith("sklearn.linear_model") and hasattr(model, "coef_"):
        return "linear"
    return "permutation"


def shap_values(
    pipeline: Pipeline, background: pd.DataFrame, rows: pd.DataFrame, features: list[str]
) -> tuple[np.ndarray, float | np.ndarray, list[str]]:
    """SHAP values of `rows` per input feature (one-hot columns summed back to their source)."""
    prep, model = pipeline[:-1], pipeline[-1]
    names = list(prep.get_feature_names_out())
    bg = np.asarray(prep.transform(background), dtype=float)
    xt = np.asarray(prep.transform(rows), dtype=float)
    # imported here: shap (with numba and its friends) costs about a second at import, and
    # every `keel` command that touches the registry would pay it
    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kind = explainer_kind(model)
        if kind == "tree":
            explainer = shap.TreeExplainer(model, data=bg, feature_perturbation="interventional")
            values = explainer.shap_values(xt, check_additivity=False)
            base = explainer.expected_value
        elif kind == "linear":
            explainer = shap.LinearExplainer(model, bg)
            values = explainer.shap_values(xt)
            base = explainer.expected_value
        else:
            fn = model.predict_proba if hasattr(model, "predict_proba") else model.predict
            explainer = shap.explainers.Permutation(fn, bg)
            result = explainer(xt)
            values, base = result.values, result.base_values
    values = np.asarray(values)
    if values.ndim == 3:  # (rows, columns, classes): explain the positive / last class
        values = values[:, :, -1]
        base = np.asarray(base).reshape(-1)[-1] if np.ndim(base) else base
    sources = [source_feature(n, features) for n in names]
    per_feature = np.zeros((values.shape[0], len(features)))
    for j, src in enumerate(sources):
        if src in features:
            per_feature[:, features.index(src)] += values[:, j]
    return per_feature, base, features


def global_importance(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    features: list[str],
    *,
    seed: int,
    sample: int = 300,
    background: int = 100,
) -> dict[str, Any]:
    """Mean |SHAP| per feature on a sample, and the background rows kept for later explanations."""
    rng = np.random.default_rng(seed)
    bg_idx = rng.choice(len(frame), min(background, len(frame)), replace=False)
    rows_idx = rng.choice(len(frame), min(sample, len(frame)), replace=False)
    bg = frame.iloc[np.sort(bg_idx)]
    values, base, _ = shap_values(pipeline, bg, frame.iloc[np.sort(rows_idx)], features)
    importance = np.abs(values).mean(axis=0)
    order = np.argsort(-importance)
    return {
        "method": explainer_kind(pipeline[-1]),
        "rows_explained": len(rows_idx),
        "importance": {features[i]: round(float(importance[i]), 6) for i in order},
        "expected_value": float(np.asarray(base).reshape(-1)[-1]),
        "background": bg.to_dict(orient="list"),
    }
