"""The prediction log and the feedback store, and the one batch their flush hands on.

Serving appends each answer's records here (`PredictionLog.log`, lists per column, see
`PREDICTION_SCHEMA`) and each refused input's count (`PredictionLog.refused`); feedback joins
later by prediction id (`add_feedback`). A background thread flushes every
`flush_interval_s`: the records go to Parquet (`ParquetAppender`, with its bounded buffer and
spill) and the same columnar batch, with the refused counts of the interval, goes to the
log's `sink` as one `LogBatch`: the window profiles are folded from what the log wrote, never
from a second copy of the requests. The writer thread writes Parquet and calls the sink, and
nothing else: the profiler saves to the database in its own thread, so a slow, locked or
unreachable database never holds the log.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from keel.monitor.appender import LogFullError, ParquetAppender
from keel.monitor.logfiles import (
    FEEDBACK_SCHEMA,
    PREDICTION_SCHEMA,
    LogBatch,
    Refused,
    day_of,
    prediction_ids,
    read_log,
)

__all__ = ["LogBatch", "LogFullError", "PredictionLog", "Refused", "prediction_ids"]

_KNOWN_IDS = 2_000_000  # ids remembered in memory for feedback; older ones are looked up on disk
_MAX_REFUSED_KEYS = 100_000  # distinct (model, version, role, second) held between flushes
log = logging.getLogger("keel.monitor")


class PredictionLog:
    """Prediction records and feedback for every served model, flushed by a background thread
    (Parquet, then the sink) and relieved by a spill thread when the buffer passes half its
    bound.

    Args:
        root: the log's root (a folder or an fsspec URL).
        flush_interval_s: the writer thread's cadence.
        on_written: called with the prediction rows of each flush that reached the files.
        on_dropped: called with prediction rows counted as dropped (only without a spill).
        sink: called with each `LogBatch` (the window profiles' `Profiler.observe`); its
            failures are logged and never cost a record.
        spill_dir: local folder for spill files (see `ParquetAppender`).
        max_buffered_rows: bound of each memory buffer (`log_buffer_rows`).
        max_spilled_rows: bound of each spill (`log_spill_rows`).
    """

    def __init__(
        self,
        root: str,
        *,
        flush_interval_s: float = 1.0,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        sink: Callable[[LogBatch], None] | None = None,
        spill_dir: str | Path | None = None,
        max_buffered_rows: int = 250_000,
        max_spilled_rows: int = 2_000_000,
    ) -> None:
        self.flush_interval_s = flush_interval_s
        self._sink = sink
        self._refused: dict[tuple[str, int, str, dt.datetime], int] = {}
        self._refused_lock = threading.Lock()
        retry_after_s = max(1.0, 2 * flush_interval_s)
        self.predictions = ParquetAppender(
            root,
            "predictions",
            schema=PREDICTION_SCHEMA,
            on_written=on_written,
            on_dropped=on_dropped,
            on_frame=self._deliver if sink is not None else None,
            spill_dir=spill_dir,
            max_buffered_rows=max_buffered_rows,
            max_spilled_rows=max_spilled_rows,
            retry_after_s=retry_after_s,
        )
        self.feedback = ParquetAppender(
            root,
            "feedback",
            schema=FEEDBACK_SCHEMA,
            spill_dir=spill_dir,
            max_buffered_rows=max_buffered_rows,
            max_spilled_rows=max_spilled_rows,
            retry_after_s=retry_after_s,
        )
        self._recent: OrderedDict[str, str] = OrderedDict()  # prediction id -> model
        self._recent_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_flush_at: float | None = None  # time.monotonic() of the last completed flush

    def log(self, columns: dict[str, list[Any]]) -> None:
        """Append prediction records given as lists per column (see PREDICTION_SCHEMA)."""
        self.predictions.append_columns(columns)
        ids, models, roles = columns["prediction_id"], columns["model"], columns["role"]
        with self._recent_lock:
            for pid, model, role in zip(ids, models, roles, strict=True):
                if role != "shadow":
                    self._recent[pid] = model
            while len(self._recent) > _KNOWN_IDS:
                self._recent.popitem(last=False)

    def refused(self, model: str, version: int, role: str, at: dt.datetime, rows: int = 1) -> None:
        """Count `rows` inputs the contract refused (a failed request, or rows skipped) at `at`;
        they reach the sink with the next flush's batch. The rows themselves are not kept:
        they may hold PII that the anonymization policy cannot be trusted to catch in a
        malformed row."""
        if self._sink is None or rows <= 0:
            return
        at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
        key = (model, version, role, at.replace(microsecond=0))
        with self._refused_lock:
            self._refused[key] = self._refused.get(key, 0) + rows

    def _take_refused(self) -> tuple[Refused, ...]:
        with self._refused_lock:
            taken, self._refused = self._refused, {}
        return tuple(Refused(m, v, r, t, n) for (m, v, r, t), n in taken.items())

    def _deliver(self, frame: pl.DataFrame) -> None:
        """Hand a batch taken from the buffer (just written or spilled) to the sink, with the
        refused counts since the last one. Called by the appender, which logs a failure."""
        if self._sink is not None:
            self._sink(LogBatch(frame, self._take_refused()))

    def _deliver_refused(self) -> None:
        """Refused counts of an interval without predictions go on their own."""
        if self._sink is None:
            return
        refused = self._take_refused()
        if not refused:
            return
        try:
            self._sink(LogBatch(pl.DataFrame(schema=self.predictions.schema), refused))
        except Exception:  # monitoring must never stop the log's writer
            log.exception("window profiles failed on refused inputs")

    def add_feedback(
        self, model: str, labels: list[tuple[str, Any]], now: dt.datetime
    ) -> tuple[int, list[str]]:
        """Accept labels whose prediction ids this model answered; return (accepted, unknown ids).

        Ids not remembered in memory are looked up in the log's files of the days they name
        (only the id and role columns are read); call it off the event loop."""
        ids = [pid for pid, _ in labels]
        known = self._known(model, ids)
        accepted = [(pid, label) for pid, label in labels if pid in known]
        self.feedback.append(
            {"prediction_id": pid, "time": now, "model": model, "label": str(label)}
            for pid, label in accepted
        )
        return len(accepted), [pid for pid in ids if pid not in known]

    def _known(self, model: str, ids: list[str]) -> set[str]:
        with self._recent_lock:
            found = {i for i in ids if self._recent.get(i) == model}
        missing = [i for i in ids if i not in found]
        if not missing:
            return found
        named = [day_of(i) for i in missing]
        days = [d for d in named if d is not None]
        logged = read_log(
            self.predictions.root,
            "predictions",
            model,
            # time-ordered ids: only their days' files; an older random id: every day
            days=days if len(days) == len(named) else None,
            columns=["prediction_id", "role"],
        )
        hits = logged.filter(pl.col("prediction_id").is_in(missing) & (pl.col("role") != "shadow"))
        found.update(hits.get_column("prediction_id").to_list())
        return found

    def flush(self) -> int:
        """Write buffered predictions and feedback to Parquet and hand the batch to the sink
        (never touches the database)."""
        written = self.predictions.flush() + self.feedback.flush()
        self._deliver_refused()
        self.last_flush_at = time.monotonic()
        return written

    @property
    def backlogged(self) -> bool:
        """Whether records wait in spill files (the store failed or the writer fell behind)."""
        return bool(self.predictions.spilled_rows or self.feedback.spilled_rows)

    @property
    def shedding(self) -> bool:
        """Whether new predictions are refused now (buffer and spill full)."""
        return self.predictions.full

    def start(self) -> None:
        def write() -> None:
            _yield_to_requests()
            # a fixed cadence from each flush's start: a slow write does not stretch the gap
            # that a kill -9 can lose beyond the write itself
            next_at = time.monotonic() + self.flush_interval_s
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at = time.monotonic() + self.flush_interval_s
                try:
                    self.flush()
                except Exception:  # the writer must survive anything; the batch is rebuffered
                    log.exception("the prediction log's flush failed")

        def relieve() -> None:
            appenders = (self.predictions, self.feedback)
            while not self._stop.is_set():
                if not any(a.over_half.wait(0) for a in appenders):
                    self.predictions.over_half.wait(self.flush_interval_s)
                for a in appenders:
                    try:
                        a.relieve()
                    except Exception:
                        log.exception("the prediction log's spill failed")
                time.sleep(0.01)  # the writer takes the lock too: let it

        self._threads = [
            threading.Thread(target=write, name="keel-log-flush", daemon=True),
            threading.Thread(target=relieve, name="keel-log-spill", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=timeout_s)
        self.predictions.close(timeout_s)
        self.feedback.close(timeout_s)
        self._deliver_refused()
        self.last_flush_at = time.monotonic()


WRITER_NICE = 10
"""The writer thread's nice level above the server's. Measured (bench/serving.py, HGB, c=64,
one core): a flush of 0.5 s of records took ~8 ms of CPU on the core the event loop needs,
and every request in flight waited that long; at nice +10 the writer still gets a tenth of the
core when both are busy (several times what it needs) and the requests get the rest."""


def _yield_to_requests() -> None:
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: as before
        tid = threading.get_native_id()
        os.setpriority(
            os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICE)
        )
