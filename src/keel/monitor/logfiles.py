"""The prediction log's format: where its Parquet files are and what their columns hold.

Serving writes these files through `keel.monitor.predlog`; monitoring, the loop and anyone with Polars
or DuckDB read them. Layout under the artifact root:
`{kind}/model=NAME/date=YYYY-MM-DD/part-<ms>-<id>.parquet`, kind `predictions` or `feedback`.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Collection, Sequence
from dataclasses import dataclass
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


MONITORED = ("prediction_id", "time", "model", "version", "role", "segment", "prediction",
             "probabilities")  # fmt: skip
"""The prediction columns monitoring reads (not the inputs' JSON, most of a file's bytes)."""


@dataclass(frozen=True, slots=True)
class Refused:
    """Inputs the contract refused for one version and role in one second (no answer, no
    record: only their count reaches the window profiles)."""

    model: str
    version: int
    role: str
    time: dt.datetime
    rows: int

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            msg = f"Refused.time is {self.time!r}, a naive datetime; expected one in UTC."
            raise ValueError(msg)
        if self.rows < 1:
            msg = f"Refused.rows is {self.rows!r}; expected a count of at least 1."
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class LogBatch:
    """One batch of the prediction log as its writer took it: the records (columns of
    `PREDICTION_SCHEMA`) just written to the log's files or a spill file, and the inputs
    refused since the batch before. What the window profiles are folded from."""

    records: pl.DataFrame
    refused: tuple[Refused, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in PREDICTION_SCHEMA if c not in self.records.columns]
        if missing:
            msg = (
                f"LogBatch.records lacks the columns {missing}; expected those of "
                f"PREDICTION_SCHEMA: {list(PREDICTION_SCHEMA)}."
            )
            raise ValueError(msg)


def prediction_ids(n: int, at: dt.datetime) -> list[str]:
    """`n` new prediction ids: UUIDv7s (RFC 9562) as 32 hex digits, the first 12 the logged
    time in milliseconds, 74 bits random. Feedback weeks later, or the prediction explorer,
    finds a prediction by reading one day of the log, not all of it."""
    stamp = f"{int(at.timestamp() * 1000) & 0xFFFFFFFFFFFF:012x}"
    noise = os.urandom(10 * n).hex()
    out = []
    for i in range(n):
        r = noise[20 * i : 20 * i + 20]
        out.append(f"{stamp}7{r[:3]}{'89ab'[int(r[3], 16) & 3]}{r[4:19]}")
    return out


def day_of(prediction_id: str) -> dt.date | None:
    """The day a prediction id was logged on, or None for ids of another form (the random
    UUIDv4s of older logs)."""
    if len(prediction_id) != 32 or prediction_id[12] != "7" or prediction_id[16] not in "89ab":
        return None
    try:
        ms = int(prediction_id[:12], 16)
    except ValueError:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def log_files(
    root: str,
    kind: str,
    model: str,
    since: dt.date | None = None,
    days: Collection[dt.date] | None = None,
) -> list[str]:
    """The flushed files of one model, oldest day first (optionally from a day on, or of
    some days only)."""
    fs, base = fsspec.core.url_to_fs(root.rstrip("/"))
    files = sorted(fs.glob(f"{base}/{kind}/model={model}/date=*/part-*.parquet"))
    if since is not None:
        day = since.isoformat()
        files = [f for f in files if f.rsplit("/date=", 1)[1][:10] >= day]
    if days is not None:
        wanted = {d.isoformat() for d in days}
        files = [f for f in files if f.rsplit("/date=", 1)[1][:10] in wanted]
    return [f if "://" not in root else f"{root.split('://', 1)[0]}://{f}" for f in files]


_FETCH = 64  # objects fetched at once by `read_log` from an object store


def _key(fs: Any, path: str) -> str:
    return str(fs._strip_protocol(path))


def read_log(
    root: str,
    kind: str,
    model: str,
    since: dt.date | None = None,
    *,
    days: Collection[dt.date] | None = None,
    columns: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Every flushed record of one model (of `kind`; from a day on, or of some days), as one
    frame with the log's schema (or only `columns` of it)."""
    fs, _ = fsspec.core.url_to_fs(root.rstrip("/"))
    wanted = list(columns) if columns else None
    files = log_files(root, kind, model, since, days)
    frames = []
    if "://" in root and not root.startswith("file://"):
        # an object store: whole objects fetched concurrently (fsspec's `cat` of a list),
        # `_FETCH` at a time, instead of one request after another per file
        for i in range(0, len(files), _FETCH):
            fetched = fs.cat(files[i : i + _FETCH])
            for f in files[i : i + _FETCH]:
                frames.append(pl.read_parquet(io.BytesIO(fetched[_key(fs, f)]), columns=wanted))
    else:
        for f in files:
            with fs.open(f, "rb") as fh:
                frames.append(pl.read_parquet(fh, columns=wanted))
    if not frames:
        schema = SCHEMAS[kind]
        return pl.DataFrame(schema={c: schema[c] for c in (columns or schema)})
    frame = pl.concat(frames, how="vertical_relaxed")
    return once_per_prediction(frame) if kind == "predictions" else frame


def once_per_prediction(frame: pl.DataFrame) -> pl.DataFrame:
    """Each prediction once: a record logged again under the same id and role (a stream's
    message redelivered after a crash between the log's write and the broker's ack, see
    `keel.stream`) is kept at its first occurrence. Frames without the id column are as read."""
    key = [c for c in ("prediction_id", "role") if c in frame.columns]
    if "prediction_id" not in key or frame.height < 2:
        return frame
    return frame.unique(subset=key, keep="first", maintain_order=True)
