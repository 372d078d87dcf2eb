"""What the prediction log's flush costs the GIL: building one batch of 10,000 records.

The flush thread builds a Polars frame from the records buffered since the last flush, while
the event loop waits for the GIL; whatever it holds shows in serving's p99. The records of a
one-row request carry their own time, so a batch holds as many distinct times as requests.

- `before`: times buffered as tz-aware datetimes, converted by Polars at the flush (what the
  log did until issue 13);
- `after`: times converted to epoch microseconds as each request is appended
  (`keel.monitor.appender.micros`), cast once per batch at the flush.

Each variant reports the flush's frame building (GIL held by the writer thread) and the
appends (spread over the requests, on their path). Median of `--repeat` runs.

usage: .venv/bin/python bench/log_flush.py [--rows 10000] [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import threading
import time
from typing import Any

import polars as pl

from keel.monitor import ParquetAppender, prediction_ids
from keel.monitor.logfiles import PREDICTION_SCHEMA


def requests(n: int) -> list[dict[str, list[Any]]]:
    """`n` one-row requests, each at its own time (as serving logs them)."""
    start = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    out = []
    for i in range(n):
        at = start + dt.timedelta(microseconds=137 * i)
        out.append(
            {
                "prediction_id": prediction_ids(1, at), "time": [at], "model": ["m"],
                "version": [1], "role": ["production"], "segment": [None],
                "features": ['{"amount": 12.5, "country": "FR"}'], "prediction": ["1"],
                "probabilities": [[0.2, 0.8]], "latency_ms": [0.4],
            }
        )  # fmt: skip
    return out


class _Before:
    """The previous appender's buffer: lists per column holding the values as given (tz-aware
    datetimes), appended under its lock after the same bound check."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.buffer: dict[str, list[Any]] = {c: [] for c in PREDICTION_SCHEMA}
        self.rows = 0

    def append_columns(self, columns: dict[str, list[Any]]) -> None:
        n = len(next(iter(columns.values())))
        with self.lock:
            if self.rows and self.rows + n > 250_000:
                raise RuntimeError("full")
            for c, values in self.buffer.items():
                values.extend(columns[c])
            self.rows += n


def before(batch: list[dict[str, list[Any]]]) -> tuple[float, float]:
    """The previous buffer: lists per column holding datetimes, one frame at the flush."""
    old = _Before()
    t0 = time.perf_counter()
    for columns in batch:
        old.append_columns(columns)
    buffer = old.buffer
    t1 = time.perf_counter()
    frame = pl.DataFrame(buffer, schema=PREDICTION_SCHEMA)
    t2 = time.perf_counter()
    _check(frame, len(batch))
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def after(batch: list[dict[str, list[Any]]], root: str) -> tuple[float, float]:
    """The appender as it is: times as epoch microseconds from the append on."""
    appender = ParquetAppender(root, "predictions", schema=PREDICTION_SCHEMA)
    t0 = time.perf_counter()
    for columns in batch:
        appender.append_columns(columns)
    t1 = time.perf_counter()
    frame = appender._take()  # the flush's frame building, without the file write
    t2 = time.perf_counter()
    _check(frame, len(batch))
    return (t1 - t0) * 1000, (t2 - t1) * 1000


def _check(frame: pl.DataFrame | None, rows: int) -> None:
    if frame is None or frame.height != rows:
        msg = f"the batch holds {None if frame is None else frame.height} rows; expected {rows}"
        raise RuntimeError(msg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    batch = requests(args.rows)
    runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as root:
        for _ in range(args.repeat):
            runs["before"].append(before(batch))
            runs["after"].append(after(batch, root))
    result = {
        name: {
            "rows": args.rows,
            "appends_ms": round(statistics.median(r[0] for r in rs), 2),
            "flush_frame_ms": round(statistics.median(r[1] for r in rs), 2),
        }
        for name, rs in runs.items()
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for name, r in result.items():
        print(
            f"{name:7s} {r['rows']} records: flush builds the frame in {r['flush_frame_ms']} ms "
            f"(GIL held); appends {r['appends_ms']} ms over the requests"
        )


if __name__ == "__main__":
    main()
