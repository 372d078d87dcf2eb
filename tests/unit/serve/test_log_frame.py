"""The log's column-by-column frame builder equals Polars' own constructor on every shape of
buffer the log holds (aware times shared by a request's records, class probabilities of one
width, of several widths, none, NaN)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest

from keel.monitor.logfiles import FEEDBACK_SCHEMA, PREDICTION_SCHEMA
from keel.serve.predlog import _frame

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 3, 1, 13, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def records(probabilities: list[Any], times: list[Any] | None = None) -> dict[str, list[Any]]:
    n = len(probabilities)
    return {
        "prediction_id": [f"id{i}" for i in range(n)],
        "time": times or [T0] * (n // 2) + [T1] * (n - n // 2),
        "model": ["m"] * n,
        "version": [1] * n,
        "role": ["production"] * n,
        "segment": [None, "eu"] * (n // 2) + [None] * (n % 2),
        "features": ['{"a": 1.0}'] * n,
        "prediction": ["1"] * n,
        "probabilities": probabilities,
        "latency_ms": [0.5] * n,
    }


@pytest.mark.parametrize(
    "probabilities",
    [
        [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]],
        [[0.1, 0.2, 0.7], [float("nan"), 0.5, 0.5]],
        [[0.25, 0.75], [0.1, 0.2, 0.7]],  # two models of different class counts
        [None, None, None],  # regression
        [[0.25, 0.75], None],  # a classifier and a regressor in one flush
        [[], []],
        [],
    ],
)
def test_prediction_frame_equals_polars(probabilities: list[Any]) -> None:
    columns = records(probabilities)
    expected = pl.DataFrame(columns, schema=PREDICTION_SCHEMA)
    got = _frame(columns, PREDICTION_SCHEMA)
    assert got.schema == expected.schema
    assert got.equals(expected)


def test_distinct_times_and_microseconds_are_kept() -> None:
    times = [T0 + dt.timedelta(microseconds=i) for i in range(5)]
    columns = records([[0.5, 0.5]] * 5, times)
    got = _frame(columns, PREDICTION_SCHEMA)
    assert got.get_column("time").to_list() == times
    assert got.equals(pl.DataFrame(columns, schema=PREDICTION_SCHEMA))


def test_times_that_are_not_aware_take_polars_own_path() -> None:
    columns = records([[0.5, 0.5]] * 2, [dt.datetime(2026, 3, 1, 12), T0])
    assert _frame(columns, PREDICTION_SCHEMA).equals(
        pl.DataFrame(columns, schema=PREDICTION_SCHEMA)
    )


def test_feedback_frame_equals_polars() -> None:
    columns = {
        "prediction_id": ["a", "b"],
        "time": [T0, T1],
        "model": ["m", "m"],
        "label": ["1", "0"],
    }
    assert list(columns) == list(FEEDBACK_SCHEMA)
    got = _frame(columns, FEEDBACK_SCHEMA)
    assert got.equals(pl.DataFrame(columns, schema=FEEDBACK_SCHEMA))
