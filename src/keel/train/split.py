"""Holdout splits. By time when the contract has a timestamp: train on the past, test on the most
recent slice (a random split hides drift). Else stratified random, or by group."""

from __future__ import annotations

import numpy as np
import polars as pl
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from keel.data import Contract
from keel.store import ConfigError
from keel.train.spec import Split


def split_rows(
    frame: pl.DataFrame,
    contract: Contract,
    split: Split,
    y: np.ndarray,
    *,
    seed: int,
    stratify: bool,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions of the training and holdout rows, and the method used."""
    n = frame.height
    timestamps = contract.with_role("timestamp")
    method = split.method or ("time" if timestamps else "random")
    if method == "time":
        if not timestamps:
            msg = f"A time split needs a timestamp column; contract {contract.name!r} has none. Use split: {{method: random}}."
            raise ConfigError(msg)
        order = np.argsort(frame.get_column(timestamps[0].name).to_numpy(), kind="stable")
        cut = round(n * (1 - split.test_size))
        return np.sort(order[:cut]), np.sort(order[cut:]), "time"
    idx = np.arange(n)
    if method == "group":
        assert split.group is not None
        if split.group not in frame.columns:
            msg = (
                f"Split group column {split.group!r} is not in the data; columns: {frame.columns}."
            )
            raise ConfigError(msg)
        groups = frame.get_column(split.group).to_numpy()
        train, test = next(
            GroupShuffleSplit(n_splits=1, test_size=split.test_size, random_state=seed).split(
                idx, groups=groups
            )
        )
        return np.sort(train), np.sort(test), "group"
    strat = (
        y
        if stratify and len(np.unique(y)) > 1 and np.min(np.unique(y, return_counts=True)[1]) >= 2
        else None
    )
    train, test = train_test_split(
        idx, test_size=split.test_size, random_state=seed, stratify=strat
    )
    return np.sort(train), np.sort(test), "random"
