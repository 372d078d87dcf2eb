"""The preprocessing pipeline derived from a contract: part of the model, so serving takes raw rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from keel.data import Contract
from keel.store import ConfigError

FEATURE_ROLES = ("feature", "segment")
"""Roles used as model inputs by default. Sensitive columns are left out (they are judged by the
fairness report instead), and so are ids, pseudonyms, timestamps, targets and ignored columns."""


def default_features(contract: Contract, target: str) -> list[str]:
    return [
        c.name
        for c in contract.columns
        if c.role in FEATURE_ROLES
        and c.name != target
        and c.type != "datetime"
        and c.anonymize is None
    ]


def check_features(contract: Contract, features: list[str], target: str) -> None:
    unknown = [f for f in features if f not in contract.names]
    if unknown:
        msg = f"Spec features {unknown} are not in contract {contract.name!r}; its columns are {contract.names}."
        raise ConfigError(msg)
    if target in features:
        msg = f"The target {target!r} is also listed as a feature; remove it from 'features'."
        raise ConfigError(msg)
    if not features:
        msg = f"No features to train on in contract {contract.name!r}; list them under 'features' in the spec."
        raise ConfigError(msg)


def build_pipeline(contract: Contract, features: list[str], estimator: Any) -> Pipeline:
    """Impute and scale numbers, one-hot encode categories (unseen values ignored), then the estimator."""
    numeric = [f for f in features if contract.column(f).type in ("int", "float", "bool")]
    categorical = [f for f in features if contract.column(f).type in ("category", "string")]
    other = [f for f in features if f not in numeric and f not in categorical]
    if other:
        msg = f"Features {other} are date-times; derive numbers from them (hour, weekday) before training."
        raise ConfigError(msg)
    parts = []
    if numeric:
        # scaled so linear models converge; trees are left unscaled: they need no scaling, and
        # unscaled values reach an ONNX export's float32 comparisons exactly as they reach ours
        steps: list[tuple[str, Any]] = [
            ("fill", SimpleImputer(strategy="median", keep_empty_features=True))
        ]
        if not _is_tree(estimator):
            steps.append(("scale", StandardScaler()))
        parts.append(("num", Pipeline(steps), numeric))
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        # missing categories arrive as "" (to_pandas): a string marker that the
                        # ONNX converter can carry, unlike None or NaN in an object column
                        (
                            "fill",
                            SimpleImputer(
                                missing_values="", strategy="constant", fill_value="__missing__"
                            ),
                        ),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    prep = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=True)
    return Pipeline([("prep", prep), ("model", estimator)])


def _is_tree(estimator: Any) -> bool:
    module = type(estimator).__module__
    return module.startswith(
        ("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost", "catboost")
    )


def to_pandas(frame: pl.DataFrame, features: list[str], contract: Contract) -> pd.DataFrame:
    """Model input as pandas with the contract's types (numbers as float, categories as object)."""
    out = {}
    for f in features:
        s = frame.get_column(f)
        if contract.column(f).type in ("category", "string"):
            out[f] = np.asarray(s.cast(pl.String).fill_null("").to_list(), dtype=object)
        else:
            # through float32, the precision of an ONNX export's inputs and of sklearn's trees
            out[f] = s.cast(pl.Float32).cast(pl.Float64).to_numpy()
    return pd.DataFrame(out)


def source_feature(transformed_name: str, features: list[str]) -> str:
    """The input column a transformed column comes from ('cat__region_north' -> 'region')."""
    _, _, rest = transformed_name.partition("__")
    best = max(
        (f for f in features if rest == f or rest.startswith(f + "_")), key=len, default=rest
    )
    return best
