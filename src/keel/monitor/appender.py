"""Buffered, atomic Parquet appends of the prediction log, with a bounded buffer and a spill.

Records are buffered in memory, as lists per column, and flushed (by `PredictionLog`'s thread,
and at shutdown) to `{kind}/model=NAME/date=YYYY-MM-DD/part-<ms>-<writer>-<seq>.parquet` under
the log root: `<writer>` is random per appender (so per process: replicas never collide) and
`<seq>` counts its files. A reader (or a restart after `kill -9`) never sees a torn file; at
most the last interval is lost:

- on a local disk a file is written under a temporary name, flushed to disk and renamed;
- on an object store (`s3://...`: no atomic rename, no append) a file is one object, built in
  memory and put once at its final, unique name; an object is visible whole or not at all, and
  no file is ever appended to, renamed or written twice.

When full, the policy is spill, then shed; nothing answered is ever dropped:

1. records wait in memory, at most `max_buffered_rows` of them;
2. a batch the artifact store refuses (or, when the buffer is half full before the writer
   comes back, the buffer itself) is written to a local spill file under `spill_dir`
   (Parquet, atomic like the log's files), at most `max_spilled_rows` rows; the writer moves
   spill files to the store, oldest first, as soon as it takes them again, and a restarted
   server finds and moves what a killed one left;
3. with the buffer full and no room to spill, `append_columns` raises `LogFullError` (503 with
   `Retry-After`): the caller is not answered, so every answered prediction's record is held
   in memory, a spill file or the log. A batch that neither the store nor the spill takes goes
   back to the buffer and is tried again.

Each batch taken from the buffer is handed once, as the columnar frame written, to the
appender's `on_frame` (the window profiles): after its write, or after its spill.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import itertools
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import fsspec
import polars as pl

from keel.monitor.logcolumns import batch_frame, micros
from keel.monitor.logfiles import log_files, read_log
from keel.store import OverloadedError

__all__ = ["LogFullError", "ParquetAppender"]

log = logging.getLogger("keel.monitor")


class LogFullError(OverloadedError):
    """Raised by `ParquetAppender.append_columns` (so `PredictionLog.log`) when the buffer is
    full and the spill has no room: the request is refused (503) rather than answered without
    its record."""


def _reason(exc: Exception) -> str:
    """What failed, without the paths (it is shown by `/readyz`, which needs no token)."""
    strerror = getattr(exc, "strerror", None)
    return f"{type(exc).__name__}: {strerror}" if strerror else type(exc).__name__


def _stamp() -> str:
    return f"part-{int(dt.datetime.now(dt.UTC).timestamp() * 1000)}-{uuid.uuid4().hex[:8]}"


def _is_local(fs: Any) -> bool:
    protocol = fs.protocol
    return protocol in ("file", "local") or "file" in protocol


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ParquetAppender:
    """Buffered, atomic Parquet appends partitioned by model and day, with a bounded buffer
    and a local spill (see the module's policy).

    Args:
        root: the log's root (a folder or an fsspec URL).
        kind: `predictions` or `feedback`.
        schema: the columns.
        on_written: called with the rows of each flush that reached the log's files.
        on_dropped: called with rows counted as dropped (only without a spill).
        on_frame: called once with each batch taken from the buffer, after its write or spill.
        spill_dir: local folder for spill files; None: a batch the store refuses is counted
            as dropped (the behaviour of an embedded log without a home folder).
        max_buffered_rows: bound of the memory buffer.
        max_spilled_rows: bound of the spill.
        retry_after_s: what a refused caller is told.
    """

    def __init__(
        self,
        root: str,
        kind: str,
        *,
        schema: dict[str, Any],
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_frame: Callable[[pl.DataFrame], None] | None = None,
        spill_dir: str | Path | None = None,
        max_buffered_rows: int = 250_000,
        max_spilled_rows: int = 2_000_000,
        retry_after_s: float = 1.0,
    ) -> None:
        self.root = root.rstrip("/")
        self._on_frame = on_frame
        self.kind = kind
        self.schema = schema
        self._fs, self._base = fsspec.core.url_to_fs(self.root)
        self._local = _is_local(self._fs)
        self.writer_id = uuid.uuid4().hex[:12]
        """Names this appender's files, with `_seq`: unique across replicas and restarts."""
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flusher at a time (the thread, an admin call)
        # columnar buffer: measured, building a frame from ~3,000 row dicts held the GIL for
        # ~100 ms at every flush (the p99 of serving); from lists per column it takes ~2 ms
        self._buffer: dict[str, list[Any]] = {c: [] for c in schema}
        # times are buffered as epoch microseconds (see `micros`) and cast once per batch
        self._times = [c for c, t in schema.items() if isinstance(t, pl.Datetime)]
        self._buffer_schema = {c: (pl.Int64 if c in self._times else t) for c, t in schema.items()}
        self._rows = 0  # rows in _buffer
        self._retry: list[pl.DataFrame] = []  # batches neither the store nor the spill took
        self._retry_rows = 0
        self._inflight = 0  # rows taken by a flush or a spill and not yet secured
        self._on_written = on_written
        self._on_dropped = on_dropped
        self.max_buffered_rows = max_buffered_rows
        self.max_spilled_rows = max_spilled_rows
        self.retry_after_s = retry_after_s
        self.spill_dir = Path(spill_dir) / kind if spill_dir is not None else None
        self.over_half = threading.Event()  # set when the buffer passes half its bound
        self.written = 0
        self.dropped = 0
        self.spilled = 0  # rows ever spilled
        self.shed = 0  # rows refused because the buffer and the spill were full
        self.store_failures = 0
        self.last_store_error: str | None = None
        self._spilled_rows = 0  # rows in spill files now (this process's view)
        self._spill_files = 0
        if self.spill_dir is not None:
            self._recover_spill()

    # ---- taking records --------------------------------------------------------------------

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records given as dicts (a few: feedback); see `append_columns`."""
        records = list(records)
        columns = {c: [r.get(c) for r in records] for c in self.schema}
        self.append_columns(columns)

    def append_columns(self, columns: dict[str, list[Any]]) -> None:
        """Append equal-length lists, one per column of the schema; `LogFullError` when the
        buffer has no room for them and the spill has none either."""
        n = len(next(iter(columns.values()))) if columns else 0
        if self._times:
            columns = dict(columns)  # the caller's lists stay as given
            for c in self._times:
                columns[c] = micros(columns[c])
        with self._lock:
            held = self._held()
            if held and held + n > self.max_buffered_rows:
                self.over_half.set()
                self.shed += n
                msg = (
                    f"The prediction log is backlogged: {held} records wait in memory "
                    f"(log_buffer_rows = {self.max_buffered_rows}) and {self._spilled_rows} in "
                    f"spill files (log_spill_rows = {self.max_spilled_rows}); this request was "
                    "not answered, so nothing answered goes unlogged. Retry later."
                )
                raise LogFullError(msg, retry_after_s=self.retry_after_s)
            for c, values in self._buffer.items():
                values.extend(columns[c])
            self._rows += n
            if self._rows * 2 >= self.max_buffered_rows:
                self.over_half.set()

    def _held(self) -> int:
        return self._rows + self._retry_rows + self._inflight

    def pending(self) -> int:
        """Records in memory (not yet in a file), including a batch being written."""
        with self._lock:
            return self._held()

    @property
    def spilled_rows(self) -> int:
        """Records in local spill files, waiting for the artifact store."""
        return self._spilled_rows

    @property
    def spill_files(self) -> int:
        return self._spill_files

    @property
    def backlog(self) -> int:
        """Records not yet in the log's files: in memory plus in spill files."""
        return self.pending() + self._spilled_rows

    @property
    def full(self) -> bool:
        """Whether new records are refused now (memory at its bound, no room to spill)."""
        with self._lock:
            return self._held() >= self.max_buffered_rows

    def _take(self) -> pl.DataFrame | None:
        with self._lock:
            if not self._rows:
                return None
            columns, self._buffer = self._buffer, {c: [] for c in self.schema}
            self._inflight += self._rows
            self._rows = 0
            self.over_half.clear()
        return batch_frame(columns, self._buffer_schema, self.schema)

    def _take_retry(self) -> list[pl.DataFrame]:
        with self._lock:
            frames, self._retry = self._retry, []
            self._inflight += self._retry_rows
            self._retry_rows = 0
        return frames

    # Every record taken from the buffer is counted in exactly one place at any moment: in
    # flight, written (gone), in the spill, or back in the buffer; each move is one locked step.

    def _secured(self, rows: int) -> None:
        with self._lock:
            self._inflight -= rows

    def _rebuffer(self, frame: pl.DataFrame) -> None:
        with self._lock:
            self._inflight -= frame.height
            self._retry.append(frame)
            self._retry_rows += frame.height

    def _observe(self, frame: pl.DataFrame) -> None:
        if self._on_frame is None:
            return
        try:
            self._on_frame(frame)
        except Exception:  # monitoring must never cost a prediction record
            log.exception("window profiles failed on a batch")

    # ---- writing ---------------------------------------------------------------------------

    def flush(self) -> int:
        """Write what is buffered (and move spill files to the store); returns the number of
        records written to the log's files."""
        with self._flush_lock:
            written = 0
            ok = True
            for again in self._take_retry():
                n, ok_part = self._secure_counted(again)
                written += n
                ok = ok and ok_part
            frame = self._take()
            if frame is not None:
                n, ok_part = self._secure_counted(frame)
                written += n
                ok = ok and ok_part
                self._observe(frame)  # after the write: a kill -9 loses less
            if ok and self._spilled_rows:
                written += self._drain_spill()
        self.written += written
        if self._on_written and written:
            self._on_written(written)
        return written

    def relieve(self) -> int:
        """Move the memory buffer to a spill file when it is over half its bound (the writer
        is slow or stuck); returns the rows spilled. Called by the log's spill thread."""
        with self._lock:
            over = self._held() * 2 >= self.max_buffered_rows
        if not over or self.spill_dir is None or not self._spill_room(1):
            return 0
        frame = self._take()
        if frame is None:
            return 0
        spilled = 0
        for part in self._parts(frame):  # one (model, day) a file: a file moves whole
            if self._spill(part):
                spilled += part.height
            else:
                self._rebuffer(part)
        self._observe(frame)
        return spilled

    def close(self, timeout_s: float = 10.0) -> None:
        """The last flush at shutdown; when the writer is stuck in the store for `timeout_s`,
        what is buffered goes to the spill instead (a restart moves it)."""
        if self._flush_lock.acquire(timeout=timeout_s):
            self._flush_lock.release()
            self.flush()
            return
        log.error("the %s log's writer is stuck; spilling its buffer", self.kind)
        if self.spill_dir is not None:
            for frame in [*self._take_retry(), self._take()]:
                for part in self._parts(frame) if frame is not None else []:
                    if not self._spill(part, bounded=False):  # over the bound, not lost
                        log.error("lost %d %s records at shutdown", part.height, self.kind)
                        self._secured(part.height)

    def _secure_counted(self, frame: pl.DataFrame) -> tuple[int, bool]:
        try:
            parts = self._parts(frame)
        except Exception:  # a batch that cannot even be split: counted, never silent
            log.exception("could not write %d %s records", frame.height, self.kind)
            self.dropped += frame.height
            if self._on_dropped:
                self._on_dropped(frame.height)
            self._secured(frame.height)
            return 0, False
        return self._secure(parts)

    def _secure(self, parts: list[pl.DataFrame]) -> tuple[int, bool]:
        """Write a batch's parts to the store; what it refuses goes to the spill or back to
        the buffer. Returns (rows written to the store, whether the store took everything)."""
        written = 0
        ok = True
        for part in parts:
            try:
                self._write(part)
            except Exception as exc:  # any refusal of the store (object stores raise their own)
                ok = False
                self.store_failures += 1
                self.last_store_error = _reason(exc)
            else:
                written += part.height
                self._secured(part.height)
                continue
            if self.spill_dir is None:
                self.dropped += part.height
                if self._on_dropped:
                    self._on_dropped(part.height)
                self._secured(part.height)
            elif not self._spill(part):
                self._rebuffer(part)
        if ok:
            self.last_store_error = None
        return written, ok

    def _parts(self, frame: pl.DataFrame) -> list[pl.DataFrame]:
        frame = frame.with_columns(pl.col("time").dt.date().cast(pl.String).alias("__day"))
        return [
            part.drop("__day")
            for _, part in frame.group_by(["model", "__day"], maintain_order=True)
        ]

    def _name(self) -> str:
        ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        return f"part-{ms}-{self.writer_id}-{next(self._seq):08d}.parquet"

    def _write(self, part: pl.DataFrame) -> None:
        model = part.get_column("model")[0]
        day = part.get_column("time").dt.date()[0].isoformat()
        folder = f"{self._base}/{self.kind}/model={model}/date={day}"
        name = self._name()
        if not self._local:  # one whole object at a name never used before
            buf = io.BytesIO()
            part.write_parquet(buf)
            self._fs.pipe_file(f"{folder}/{name}", buf.getvalue())
            return
        os.makedirs(folder, exist_ok=True)
        tmp = f"{folder}/.{name}.tmp"
        try:
            with open(tmp, "wb") as fh:
                part.write_parquet(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, f"{folder}/{name}")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # ---- the spill -------------------------------------------------------------------------

    def _spill_room(self, rows: int) -> bool:
        return self._spilled_rows + rows <= self.max_spilled_rows

    def _spill(self, frame: pl.DataFrame, *, bounded: bool = True) -> bool:
        """Write a batch (in flight) to a spill file if the spill has room for all of it. The
        room is taken before writing, so the writer and the spill thread never both take the
        last of it; the records count as spilled from then on, in flight again on failure."""
        assert self.spill_dir is not None
        with self._lock:
            if bounded and self._spilled_rows + frame.height > self.max_spilled_rows:
                return False
            self._spilled_rows += frame.height
            self._inflight -= frame.height
        name = f"{_stamp()}.parquet"
        tmp = self.spill_dir / f".{name}.tmp"
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(tmp)
            tmp.rename(self.spill_dir / name)
        except Exception:  # a full or read-only disk: the caller keeps the batch in memory
            log.exception("could not spill %d %s records to %s", frame.height, self.kind, tmp)
            with contextlib.suppress(OSError):
                tmp.unlink()
            with self._lock:
                self._spilled_rows -= frame.height
                self._inflight += frame.height
            return False
        with self._lock:
            self._spill_files += 1
        self.spilled += frame.height
        return True

    def _drain_spill(self) -> int:
        """Move spill files to the store, oldest first; stop at the first failure. A file is
        claimed by renaming it (atomic), so two processes sharing a home never both move it."""
        assert self.spill_dir is not None
        written = 0
        for path in sorted(self.spill_dir.glob("part-*.parquet")):
            claimed = path.with_name(f"{path.name}.{os.getpid()}.draining")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another process took it
            frame = pl.read_parquet(claimed)
            try:
                for part in self._parts(frame):
                    self._write(part)
            except Exception as exc:
                self.store_failures += 1
                self.last_store_error = _reason(exc)
                claimed.rename(path)  # whole again: a partial move is written again later
                break
            claimed.unlink()
            written += frame.height
            with self._lock:
                self._spilled_rows = max(0, self._spilled_rows - frame.height)
                self._spill_files = max(0, self._spill_files - 1)
        return written

    def _recover_spill(self) -> None:
        """Count what a previous run left in the spill; give back files a dead process had
        claimed."""
        assert self.spill_dir is not None
        if not self.spill_dir.is_dir():
            return
        for path in self.spill_dir.glob("part-*.parquet.*.draining"):
            pid = int(path.name.rsplit(".", 2)[1])
            if not _alive(pid):
                path.rename(path.with_name(path.name.rsplit(".", 2)[0]))
        for path in self.spill_dir.glob(".part-*.tmp"):
            path.unlink(missing_ok=True)  # torn spill writes of a killed run: never answered
        for path in self.spill_dir.glob("part-*.parquet"):
            self._spilled_rows += pl.scan_parquet(path).select(pl.len()).collect().item()
            self._spill_files += 1

    def files(self, model: str) -> list[str]:
        return log_files(self.root, self.kind, model)

    def read(self, model: str) -> pl.DataFrame:
        """Everything flushed for a model (reads each file; a torn file cannot exist)."""
        return read_log(self.root, self.kind, model)
