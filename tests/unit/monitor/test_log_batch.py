"""One path from a served row to its log record and its profile: the log's flush hands the
batch it wrote, with the inputs refused meanwhile, to its sink as one `LogBatch`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from keel.monitor import LogBatch, ParquetAppender, PredictionLog, Refused, prediction_ids
from keel.monitor.logcolumns import micros
from keel.monitor.logfiles import PREDICTION_SCHEMA

AT = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def records(
    n: int, at: dt.datetime = AT, probabilities: list[Any] | None = None
) -> dict[str, list[Any]]:
    return {
        "prediction_id": prediction_ids(n, AT), "time": [at] * n, "model": ["m"] * n,
        "version": [1] * n, "role": ["production"] * n, "segment": [None] * n,
        "features": ['{"amount": 1.5}'] * n, "prediction": ["1"] * n,
        "probabilities": probabilities if probabilities is not None else [[0.25, 0.75]] * n,
        "latency_ms": [1.0] * n,
    }  # fmt: skip


def test_times_are_kept_to_the_microsecond_whatever_their_zone() -> None:
    """Aware times in any zone, and naive ones (taken as UTC), land as the same instants
    that Polars' own conversion gives."""
    paris = dt.timezone(dt.timedelta(hours=1))
    values = [AT, AT.astimezone(paris), AT.replace(tzinfo=None), AT + dt.timedelta(seconds=1)]

    got = pl.Series(micros(values), dtype=pl.Int64).cast(pl.Datetime("us", "UTC"))

    assert got.to_list() == pl.Series(values, dtype=pl.Datetime("us", "UTC")).to_list()
    assert got.to_list() == [AT, AT, AT, AT + dt.timedelta(seconds=1)]


def test_a_time_that_is_not_a_datetime_is_refused_with_its_value() -> None:
    """A record whose time is a string is a caller's bug: named, not logged wrong."""
    with pytest.raises(TypeError) as refused:
        micros(["2026-03-01"])

    assert str(refused.value) == "A log record's time is '2026-03-01'; expected a datetime."


@pytest.mark.parametrize(
    "probabilities",
    [
        [[0.25, 0.75], [0.5, 0.5], [1.0, 0.0]],
        [None, None, None],
        [[0.25, 0.75], None, [1.0, 0.0]],
        [[0.2, 0.3, 0.5], [0.5, 0.5], [1.0]],
        [[float("nan"), 1.0], [0.5, 0.5], [0.0, 1.0]],
    ],
    ids=["same-length", "none", "some-none", "ragged", "nan"],
)
def test_the_flushed_frame_equals_polars_own_conversion(
    tmp_path: Path, probabilities: list[Any]
) -> None:
    """The batch the flush builds (times as microseconds, probabilities through NumPy when
    they allow it) is the frame Polars builds from the same records."""
    appender = ParquetAppender(str(tmp_path), "predictions", schema=PREDICTION_SCHEMA)
    columns = records(3, probabilities=probabilities)
    appender.append_columns(columns)

    frame = appender._take()

    assert frame is not None
    assert frame.equals(pl.DataFrame(columns, schema=PREDICTION_SCHEMA))
    assert frame.schema == pl.Schema(PREDICTION_SCHEMA)


def test_the_sink_gets_the_written_records_and_the_refused_counts_in_one_batch(
    tmp_path: Path,
) -> None:
    """A flush hands the sink one batch: the records it wrote and the inputs refused since the
    last flush, counted per model, version, role and second."""
    batches: list[LogBatch] = []
    log = PredictionLog(str(tmp_path), sink=batches.append)
    log.log(records(4))
    log.refused("m", 1, "production", AT, 3)
    log.refused("m", 1, "production", AT.replace(microsecond=0), 2)

    assert log.flush() == 4

    (batch,) = batches
    assert batch.records.height == 4
    assert (
        batch.records.get_column("prediction_id").to_list()
        == log.predictions.read("m").get_column("prediction_id").to_list()
    )
    assert batch.refused == (Refused("m", 1, "production", AT.replace(microsecond=0), 5),)


def test_refused_inputs_without_predictions_still_reach_the_sink(tmp_path: Path) -> None:
    """An interval of refused inputs only (every request malformed) is counted too."""
    batches: list[LogBatch] = []
    log = PredictionLog(str(tmp_path), sink=batches.append)
    log.refused("m", 2, "canary", AT)

    log.flush()
    log.flush()

    assert [(b.records.height, b.refused) for b in batches] == [
        (0, (Refused("m", 2, "canary", AT.replace(microsecond=0), 1),))
    ]


def test_a_failing_sink_costs_no_record(tmp_path: Path) -> None:
    """Monitoring failing on a batch never loses the batch's records."""

    def broken(batch: LogBatch) -> None:
        msg = "profiles broke"
        raise RuntimeError(msg)

    log = PredictionLog(str(tmp_path), sink=broken)
    log.log(records(3))
    log.refused("m", 1, "production", AT)

    assert log.flush() == 3
    assert log.predictions.read("m").height == 3


def test_a_batch_without_the_log_columns_is_refused_naming_them() -> None:
    """A LogBatch is the log's columns: a frame lacking some is named when built."""
    with pytest.raises(ValueError, match=r"LogBatch.records lacks the columns \['latency_ms'\]"):
        LogBatch(pl.DataFrame(records(1)).drop("latency_ms"))


def test_a_refused_count_needs_an_aware_time_and_a_positive_count() -> None:
    """Refused counts are validated when built: naive times and empty counts are errors."""
    with pytest.raises(ValueError, match="naive datetime"):
        Refused("m", 1, "production", AT.replace(tzinfo=None), 1)
    with pytest.raises(ValueError, match="at least 1"):
        Refused("m", 1, "production", AT, 0)


def test_pandas_timestamps_and_microseconds_are_taken_too() -> None:
    """A pandas Timestamp (a datetime subclass) and epoch microseconds land as the same instant."""
    import pandas as pd

    stamp = pd.Timestamp(AT)
    us = micros([AT])[0]

    assert micros([stamp, us, AT]) == [us, us, us]
    with pytest.raises(TypeError, match="True"):
        micros([True])
