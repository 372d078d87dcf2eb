"""Recency weights: 0.5 ** (age / half-life), the age counted from the newest row."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from keel.data import contract_from_dict
from keel.store import ConfigError
from keel.train import spec_from_dict
from keel.train.prepare import prepare

CONTRACT = contract_from_dict(
    {
        "name": "t",
        "columns": {
            "ts": {"type": "datetime", "role": "timestamp", "nullable": True},
            "x": {"type": "float"},
            "y": {"type": "int", "role": "target"},
        },
    }
)


def _frame(days: list[int | None]) -> pl.DataFrame:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "ts": [None if d is None else start + dt.timedelta(days=d) for d in days],
            "x": np.arange(len(days), dtype=float),
            "y": [0, 1] * (len(days) // 2),
        }
    )


def test_weights_halve_every_half_life() -> None:
    spec = spec_from_dict({"estimator": "x.Y", "recency_half_life_days": 7})
    prep = prepare(_frame([0, 7, 14, 21, 28, 28, 14, 21, 0, 28]), CONTRACT, spec)

    assert prep.weights is not None
    assert np.allclose(prep.weights, [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1, 1, 1 / 4, 1 / 2, 1 / 16, 1])


def test_a_row_without_a_time_weighs_as_the_oldest() -> None:
    spec = spec_from_dict({"estimator": "x.Y", "recency_half_life_days": 7})
    prep = prepare(_frame([0, 14, None, 14]), CONTRACT, spec)

    assert prep.weights is not None
    assert np.allclose(prep.weights, [1 / 4, 1, 1 / 4, 1])


def test_no_half_life_no_weights() -> None:
    prep = prepare(_frame([0, 14]), CONTRACT, spec_from_dict({"estimator": "x.Y"}))

    assert prep.weights is None


def test_weights_need_a_timestamp() -> None:
    contract = contract_from_dict(
        {"name": "t", "columns": {"x": {"type": "float"}, "y": {"type": "int", "role": "target"}}}
    )
    spec = spec_from_dict({"estimator": "x.Y", "recency_half_life_days": 7})

    with pytest.raises(ConfigError, match=r"needs a timestamp column.*contract 't' has none"):
        prepare(pl.DataFrame({"x": [1.0, 2.0], "y": [0, 1]}), contract, spec)
