"""A dataset version made ready for one spec: features, encoded target, train/holdout split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.pipeline import Pipeline

from keel.data import Contract
from keel.store import ConfigError
from keel.train.features import check_features, default_features, to_pandas
from keel.train.spec import TrainSpec
from keel.train.split import split_rows


@dataclass
class Prepared:
    """A dataset version ready for one spec: features, encoded target, split."""

    frame: pl.DataFrame
    contract: Contract
    features: list[str]
    categorical: list[str]
    target: str
    task: str
    classes: list[Any]
    y: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    split_method: str
    x: pd.DataFrame
    weights: np.ndarray | None = None
    """Per row, its weight at fit (`recency_half_life_days`); None: all the same."""


def prepare(frame: pl.DataFrame, contract: Contract, spec: TrainSpec) -> Prepared:
    """The rows of a dataset version ready for one spec: target, task, features, split.

    Raises:
        ConfigError: no target, a feature not in the data, or a target a task cannot use.
    """
    targets = contract.with_role("target")
    target = spec.target or (targets[0].name if targets else None)
    if target is None or target not in frame.columns:
        msg = f"No target: the spec names {spec.target!r} and contract {contract.name!r} has no column with role 'target'. Set 'target:' in the spec."
        raise ConfigError(msg)
    frame = frame.filter(pl.col(target).is_not_null())
    features = (
        list(spec.features) if spec.features is not None else default_features(contract, target)
    )
    check_features(contract, features, target)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        msg = f"Features {missing} are not in the dataset version (dropped by anonymization?); remove them from 'features'."
        raise ConfigError(msg)
    raw_y = frame.get_column(target).to_numpy()
    task = spec.task or _infer_task(contract, target, raw_y)
    classes: list[Any] = []
    if task == "classification":
        classes = sorted(np.unique(raw_y).tolist(), key=str)
        if spec.positive_label is not None:
            if spec.positive_label not in classes:
                msg = f"positive_label {spec.positive_label!r} is not a value of {target!r}; its values are {classes}."
                raise ConfigError(msg)
            classes = [c for c in classes if c != spec.positive_label] + [spec.positive_label]
        if len(classes) < 2:
            msg = f"Target {target!r} has a single value ({classes}); a classifier needs at least two."
            raise ConfigError(msg)
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[v] for v in raw_y.tolist()], dtype=np.int64)
    else:
        y = raw_y.astype(float)
    train_idx, test_idx, method = split_rows(
        frame, contract, spec.split, y, seed=spec.seed, stratify=task == "classification"
    )
    categorical = [f for f in features if contract.column(f).type in ("category", "string")]
    return Prepared(
        frame,
        contract,
        features,
        categorical,
        target,
        task,
        classes,
        y,
        train_idx,
        test_idx,
        method,
        to_pandas(frame, features, contract),
        _recency_weights(frame, contract, spec.recency_half_life_days),
    )


def _recency_weights(
    frame: pl.DataFrame, contract: Contract, half_life: float | None
) -> np.ndarray | None:
    """0.5 ** (age / half_life), the age in days before the newest row (a row without a time
    weighs as the oldest)."""
    if half_life is None:
        return None
    stamps = contract.with_role("timestamp")
    if not stamps:
        msg = f"recency_half_life_days needs a timestamp column to date the rows; contract {contract.name!r} has none."
        raise ConfigError(msg)
    col = frame.get_column(stamps[0].name)
    if col.dtype == pl.String:
        col = col.str.to_datetime(strict=False)
    t = col.dt.epoch("us").cast(pl.Float64).to_numpy()
    if np.isnan(t).all():
        return np.ones(frame.height)
    age_days = (np.nanmax(t) - np.where(np.isnan(t), np.nanmin(t), t)) / 86_400e6
    return np.asarray(0.5 ** (age_days / half_life), dtype=float)


def _infer_task(contract: Contract, target: str, y: np.ndarray) -> str:
    ctype = contract.column(target).type
    if ctype == "float":
        return "regression"
    return (
        "classification"
        if ctype in ("bool", "category", "string") or len(np.unique(y)) <= 20
        else "regression"
    )


def outputs(pipeline: Pipeline, x: pd.DataFrame, task: str) -> np.ndarray:
    return (
        np.asarray(pipeline.predict(x), dtype=float)
        if task == "regression"
        else np.asarray(pipeline.predict_proba(x))
    )
