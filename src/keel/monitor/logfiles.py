"""The prediction log's format: where its Parquet files are and what their columns hold.

Serving writes these files (`keel.serve.predlog`); monitoring, the loop and anyone with Polars
or DuckDB read them. Layout under the artifact root:
`{kind}/model=NAME/date=YYYY-MM-DD/part-<ms>-<id>.parquet`, kind `predictions` or `feedback`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import fsspec
import polars as pl

PREDICTION_SCHEMA = {
    "prediction_id": pl.String,
    "time": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "version": pl.Int64,
    "role": pl.String,  # production, canary, shadow
    "segment": pl.String,
    "features": pl.String,  # JSON of the model's inputs (no other fields reach the log)
    "prediction": pl.String,
    "probabilities": pl.List(pl.Float64),
    "latency_ms": pl.Float64,
}
FEEDBACK_SCHEMA = {
    "prediction_id": pl.String,
    "time": pl.Datetime("us", "UTC"),
    "model": pl.String,
    "label": pl.String,
}
SCHEMAS: dict[str, Any] = {"predictions": PREDICTION_SCHEMA, "feedback": FEEDBACK_SCHEMA}


def log_files(root: str, kind: str, model: str, since: dt.date | None = None) -> list[str]:
    """The flushed files of one model, oldest day first (optionally from a day on)."""
    fs, base = fsspec.core.url_to_fs(root.rstrip("/"))
    files = sorted(fs.glob(f"{base}/{kind}/model={model}/date=*/part-*.parquet"))
    if since is not None:
        day = since.isoformat()
        files = [f for f in files if f.rsplit("/date=", 1)[1][:10] >= day]
    return [f if "://" not in root else f"{root.split('://', 1)[0]}://{f}" for f in files]


def read_log(root: str, kind: str, model: str, since: dt.date | None = None) -> pl.DataFrame:
    """Every flushed record of one model (of `kind`), as one frame with the log's schema."""
    fs, _ = fsspec.core.url_to_fs(root.rstrip("/"))
    frames = []
    for f in log_files(root, kind, model, since):
        with fs.open(f, "rb") as fh:
            frames.append(pl.read_parquet(fh))
    if not frames:
        return pl.DataFrame(schema=SCHEMAS[kind])
    return pl.concat(frames, how="vertical_relaxed")
