"""The window profiles of one server process: folded from the prediction log's batches,
saved to the database by a thread of their own.

Serving does nothing per request for them: at each flush of the prediction log, the batch
just written (`LogBatch`: its records and the inputs refused meanwhile) is folded into the
profiles in memory (`Profiler.observe`), vectorised per feature. Saving them is the
profiler's own thread (`Profiler.start`), never the log's: a slow, locked or unreachable
database delays the profiles, not the log. A save that fails keeps every changed window
(nothing is dropped), and the thread tries again after a pause that doubles up to
`retry_max_s`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
import time
import uuid
from typing import Any

import polars as pl
import sqlalchemy as sa

from keel.monitor.logfiles import LogBatch
from keel.monitor.profiles import ProfileSpec, merge, stored, update_columns, window_start
from keel.store import Database, tables

__all__ = ["Profiler"]

_log = logging.getLogger("keel.monitor")

Key = tuple[str, int, str, str, dt.datetime]  # model, version, role, segment, window start


class Profiler:
    """Window profiles of what one server process answered, saved by a thread of their own.

    Each process writes its own row per window (`writer`), replacing it with its running total;
    readers add the rows of every writer. So a restart or a second worker never double counts.

    A window more than two windows older than the newest seen is final and dropped from memory
    once saved. Records that arrive for such a window later (a replay, a spilled batch moved
    late) are kept apart as a delta and added to the saved row, never written over it: found
    by two replicas replaying the same window (tests/integration/test_replicas.py), where a
    replaced row lost the records the writer had saved before.
    """

    def __init__(self, db: Database, *, window_s: int = 3600) -> None:
        self.db = db
        self.window_s = window_s
        self.writer = uuid.uuid4().hex
        self._dirty: set[Key] = set()
        self._lock = threading.Lock()
        self._profiles: dict[Key, dict[str, Any]] = {}
        self._newest: dt.datetime | None = None  # the newest window start seen
        self._late: set[Key] = set()  # windows held as a delta to add to the saved row
        self._pending_adds: dict[Key, dict[str, Any]] = {}  # deltas a failed save kept
        self._specs: dict[tuple[str, int], ProfileSpec] = {}
        self._save_lock = threading.Lock()  # one save at a time: a later total never lands first
        self._in_flight = 0  # windows of the save under way
        self._saving_since: float | None = None
        self.failures = 0  # saves that failed (their windows were kept)
        self.saved = 0  # windows written
        self.last_error: str | None = None  # why the last save failed; None once one succeeds
        self.last_error_kind: str | None = None  # its type only (hosts and paths stay in logs)
        self.failing_since: dt.datetime | None = None
        self._cond = threading.Condition()
        self._started = 0  # rounds of the saver begun, and finished
        self._finished = 0
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self, model: str, version: int, spec: ProfileSpec) -> None:
        self._specs[(model, version)] = spec

    def observe(self, batch: LogBatch) -> None:
        """Fold a batch of the prediction log (the records it wrote, the inputs refused) into
        the window profiles. Called by the log's flush thread: serving pays nothing per
        request, and the JSON of the inputs is decoded by Polars, in Rust, once per batch.
        Measured: the first design (rows handed over per request, folded in Python) cost
        17-41 % of serving's throughput; see docs/benchmarks.md."""
        frame = batch.records
        if frame.height:
            frame = frame.with_columns(
                pl.col("time").dt.truncate(f"{self.window_s}s").alias("__window"),
                pl.col("segment").fill_null(""),
            )
            keys = ["model", "version", "role", "segment", "__window"]
            for (model, version, role, segment, start), part in frame.group_by(keys):
                key = (str(model), int(version), str(role), str(segment), _utc(start))
                self._fold(key, part)
        for r in batch.refused:
            self._count_refused(r.model, r.version, r.role, r.time, r.rows)

    def _fold(self, key: Key, part: pl.DataFrame) -> None:
        spec = self._specs.get((key[0], key[1]))
        if spec is None:
            return
        dtype = pl.Struct(
            {f: (pl.String if f in spec.categorical else pl.Float64) for f in spec.features}
        )
        inputs = part.get_column("features").str.json_decode(dtype).struct.unnest()
        columns: dict[str, Any] = {
            f: inputs.get_column(f)
            if f in spec.categorical
            else inputs.get_column(f).to_numpy().astype(float)
            for f in spec.features
        }
        probs = part.get_column("probabilities")
        if probs.null_count() < part.height:
            outputs = probs.list.last().cast(pl.Float64).fill_null(float("nan")).to_numpy()
        else:
            outputs = (
                part.get_column("prediction")
                .cast(pl.Float64, strict=False)
                .fill_null(float("nan"))
                .to_numpy()
            )
        latency = part.get_column("latency_ms").fill_null(0.0).to_numpy()
        with self._lock:
            self._note(key)
            profile = self._profiles.setdefault(key, spec.empty())
            update_columns(profile, columns, outputs, part.get_column("prediction"), latency)
            self._dirty.add(key)

    def _note(self, key: Key) -> None:
        """Mark a window not in memory that is older than the final horizon as a delta;
        track the newest start. Called under the lock."""
        start = key[4]
        horizon = dt.timedelta(seconds=2 * self.window_s)
        late = self._newest is not None and start < self._newest - horizon
        if late and key not in self._profiles:
            self._late.add(key)
        if self._newest is None or start > self._newest:
            self._newest = start

    def _count_refused(
        self, model: str, version: int, role: str, time: dt.datetime, count: int
    ) -> None:
        """Count `count` refused inputs (a failed request, or rows skipped) in their window."""
        key = (model, version, role, "", window_start(time, self.window_s))
        spec = self._specs.get((model, version))
        if spec is None:
            return
        with self._lock:
            self._note(key)
            self._profiles.setdefault(key, spec.empty())["errors"] += count
            self._dirty.add(key)

    @property
    def unsaved_windows(self) -> int:
        """Windows changed in memory and not yet in the database."""
        with self._lock:
            return len(self._dirty) + self._in_flight + len(self._pending_adds)

    @property
    def saving_for_s(self) -> float:
        """How long the save under way has taken so far (0 when none is)."""
        since = self._saving_since
        return 0.0 if since is None else time.monotonic() - since

    def flush(self) -> int:
        """Write the windows that changed; returns their count. A failure keeps them changed
        (the next save writes them, with whatever came since) and is counted in `failures`,
        with its reason in `last_error`."""
        with self._save_lock:
            snapshot, adds = self._take_snapshot()
            if not snapshot and not adds:
                return 0
            self._saving_since = time.monotonic()
            try:
                self._write(snapshot, adds)
            except Exception as exc:  # whatever failed, no window is dropped
                with self._lock:
                    self._dirty |= set(snapshot)
                    for k, delta in adds.items():  # added at the next save, with what came
                        kept = self._pending_adds.get(k)
                        self._pending_adds[k] = delta if kept is None else merge(kept, delta)
                    self._in_flight = 0
                self.failures += 1
                cause = getattr(exc, "orig", None) or exc  # the driver's error, without SQL
                self.last_error_kind = type(cause).__name__
                self.last_error = f"{type(cause).__name__}: {(str(cause).splitlines() or [''])[0]}"
                self.failing_since = self.failing_since or dt.datetime.now(dt.UTC)
                _log.warning(
                    "window profiles not saved (%d windows kept, retrying): %s",
                    len(snapshot),
                    self.last_error,
                )
                return 0
            finally:
                self._saving_since = None
            with self._lock:
                self._in_flight = 0
            self.saved += len(snapshot) + len(adds)
            self.last_error = None
            self.last_error_kind = None
            self.failing_since = None
            self._evict()
            return len(snapshot) + len(adds)

    def _take_snapshot(self) -> tuple[dict[Key, dict[str, Any]], dict[Key, dict[str, Any]]]:
        """The changed windows to write whole, and the late deltas to add (taken out of
        memory: what arrives for them next is a new delta)."""
        with self._lock:
            changed, self._dirty = self._dirty, set()
            snapshot = {
                k: stored(copy.deepcopy(self._profiles[k])) for k in changed if k in self._profiles
            }
            adds, self._pending_adds = self._pending_adds, {}
            for k in changed & self._late:
                self._profiles.pop(k, None)
                self._late.discard(k)
                delta = snapshot.pop(k, None)
                if delta is not None:
                    adds[k] = delta if k not in adds else merge(adds[k], delta)
            self._in_flight = len(snapshot) + len(adds)
        return snapshot, adds

    def _write(
        self, snapshot: dict[Key, dict[str, Any]], adds: dict[Key, dict[str, Any]] | None = None
    ) -> None:
        now = dt.datetime.now(dt.UTC)
        t = tables.window_profiles
        with self.db.begin() as conn:
            for key, delta in (adds or {}).items():
                self._add(conn, key, delta, now)
            for (model, version, role, segment, start), profile in snapshot.items():
                where = sa.and_(
                    t.c.model == model,
                    t.c.version == version,
                    t.c.role == role,
                    t.c.segment == segment,
                    t.c.window_start == start,
                    t.c.writer == self.writer,
                )
                values = {
                    "rows": profile["rows"],
                    "profile": profile,
                    "updated_at": now,
                    "window_s": self.window_s,
                }
                if conn.execute(t.update().where(where).values(**values)).rowcount == 0:
                    conn.execute(
                        t.insert().values(
                            model=model,
                            version=version,
                            role=role,
                            segment=segment,
                            window_start=start,
                            writer=self.writer,
                            **values,
                        )
                    )

    def _add(self, conn: Any, key: Key, delta: dict[str, Any], now: dt.datetime) -> None:
        """Add a late window's delta to this writer's saved row (or insert it)."""
        t = tables.window_profiles
        model, version, role, segment, start = key
        where = sa.and_(
            t.c.model == model,
            t.c.version == version,
            t.c.role == role,
            t.c.segment == segment,
            t.c.window_start == start,
            t.c.writer == self.writer,
        )
        row = conn.execute(sa.select(t.c.rows, t.c.profile).where(where)).first()
        if row is None:
            conn.execute(
                t.insert().values(
                    model=model, version=version, role=role, segment=segment,
                    window_start=start, writer=self.writer, rows=delta["rows"], profile=delta,
                    updated_at=now, window_s=self.window_s,
                )
            )  # fmt: skip
            return
        total = merge(row.profile, delta)
        conn.execute(
            t.update().where(where).values(rows=total["rows"], profile=total, updated_at=now)
        )

    def _evict(self) -> None:
        # windows more than two windows older than the newest seen are final: forget them,
        # unless they changed since the save (a failed save keeps every window it held)
        with self._lock:
            if not self._profiles:
                return
            newest = max(k[4] for k in self._profiles)
            horizon = newest - dt.timedelta(seconds=2 * self.window_s)
            for k in [k for k in self._profiles if k[4] < horizon and k not in self._dirty]:
                del self._profiles[k]

    # ---- the saver thread ------------------------------------------------------------------

    def start(self, interval_s: float, *, retry_max_s: float = 30.0) -> None:
        """Save changed windows every `interval_s` in a thread; after a failure wait twice as
        long as before (at most `retry_max_s`), keeping every unsaved window."""

        def run() -> None:
            delay = interval_s
            while True:
                self._kick.wait(delay)
                self._kick.clear()
                stopping = self._stop.is_set()
                with self._cond:
                    self._started += 1
                try:
                    self.flush()
                except Exception:  # the saver must survive anything; the windows stay dirty
                    _log.exception("saving window profiles failed")
                with self._cond:
                    self._finished += 1
                    self._cond.notify_all()
                if stopping:
                    return
                delay = interval_s if self.last_error is None else min(retry_max_s, delay * 2)

        self._thread = threading.Thread(target=run, name="keel-profile-save", daemon=True)
        self._thread.start()

    def save_now(self, timeout_s: float) -> bool:
        """Ask the saver for a save of everything observed so far and wait for it at most
        `timeout_s`; whether it happened and succeeded. Without a running saver, saves here."""
        if self._thread is None or not self._thread.is_alive():
            self.flush()
            return self.last_error is None
        with self._cond:
            target = self._started + 1  # a round begun after this call saw all observed rows
            self._kick.set()
            done = self._cond.wait_for(lambda: self._finished >= target, timeout=timeout_s)
        return done and self.last_error is None

    def stop(self, timeout_s: float = 10.0) -> None:
        """The last save, waited for at most `timeout_s`; what stays unsaved is logged."""
        if self._thread is not None:
            self._stop.set()
            self._kick.set()
            self._thread.join(timeout=timeout_s)
        else:
            self.flush()
        if self.unsaved_windows:
            _log.error(
                "%d window profiles could not be saved at shutdown: %s",
                self.unsaved_windows,
                self.last_error or f"the database did not answer in {timeout_s:g} s",
            )


def _utc(start: dt.datetime) -> dt.datetime:
    return start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start
