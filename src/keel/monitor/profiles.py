"""Window profiles: mergeable summaries of the traffic a version answered in one time window.

A profile holds, per feature, counts on the reference profile's bin edges (plus nulls, sum,
sum of squares, min and max) or category counts; the model's output on the reference output
edges, predicted classes and, for binary classifiers, a fine histogram of the positive-class
score (what performance estimation needs); and latency. Every field merges by addition (min
and max by min and max), so profiles of several workers or replicas, or of several segments,
add up to the profile of all of them.

Serving does nothing per request for them: at each flush of the prediction log, the batch just
written is folded into the profiles in memory (`Profiler.observe`), vectorised per feature.
Saving them is the profiler's own thread (`Profiler.start`), never the log's: a slow, locked
or unreachable database delays the profiles, not the log. A save that fails keeps every
changed window (nothing is dropped), and the thread tries again after a pause that doubles up
to `retry_max_s`.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from keel.data import MISSING
from keel.store import Database, tables
from keel.store.database import as_utc
from keel.train import EvaluationReport

_log = logging.getLogger("keel.monitor")
SCORE_BINS = 50  # positive-class score histogram on [0, 1], for performance estimation
LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500, math.inf)
_MAX_CATEGORIES = 200  # beyond, new categories count as "__other__" (a window cannot blow up)


@dataclass(frozen=True)
class ProfileSpec:
    """What a version's profiles count on: its features and its reference profile."""

    features: tuple[str, ...]
    categorical: frozenset[str]
    reference: Mapping[str, Any]
    task: str
    classes: tuple[str, ...]

    @classmethod
    def from_evaluation(cls, evaluation: EvaluationReport) -> ProfileSpec:
        """What the profiles of a version with this evaluation report count."""
        return cls(
            features=evaluation.features,
            categorical=frozenset(evaluation.categorical),
            reference=evaluation.reference or {"columns": {}, "rows": 0},
            task=evaluation.task,
            classes=evaluation.classes,
        )

    @property
    def binary(self) -> bool:
        return self.task == "classification" and len(self.classes) == 2

    def empty(self) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for f in self.features:
            ref = self.reference["columns"].get(f, {})
            if f in self.categorical or ref.get("kind") == "categorical":
                columns[f] = {"kind": "categorical", "counts": {}}
            else:
                edges = ref.get("edges") or []
                columns[f] = _numeric_empty(edges)
        out_edges = (self.reference.get("output") or {}).get("edges") or []
        output = _numeric_empty(out_edges)
        output["classes"] = {}
        if self.binary:
            output["scores"] = [0] * SCORE_BINS
        return {
            "rows": 0,
            "columns": columns,
            "output": output,
            "latency": {"counts": [0] * len(LATENCY_BUCKETS_MS), "sum_ms": 0.0},
            "errors": 0,
        }


def _numeric_empty(edges: Sequence[float]) -> dict[str, Any]:
    return {
        "kind": "numeric",
        "edges": list(edges),
        "counts": [0] * max(0, len(edges) - 1),
        "nulls": 0,
        "sum": 0.0,
        "sumsq": 0.0,
        "min": None,
        "max": None,
    }


def _add_numeric(acc: dict[str, Any], values: np.ndarray) -> None:
    finite = values[np.isfinite(values)]
    acc["nulls"] += int(len(values) - len(finite))
    if len(finite) == 0:
        return
    edges = acc["edges"]
    if len(edges) >= 2:
        idx = np.clip(np.searchsorted(edges, finite, side="right") - 1, 0, len(edges) - 2)
        counts = np.bincount(idx, minlength=len(edges) - 1)
        acc["counts"] = [a + int(b) for a, b in zip(acc["counts"], counts, strict=True)]
    acc["sum"] += float(finite.sum())
    acc["sumsq"] += float(np.square(finite).sum())
    lo, hi = float(finite.min()), float(finite.max())
    acc["min"] = lo if acc["min"] is None else min(acc["min"], lo)
    acc["max"] = hi if acc["max"] is None else max(acc["max"], hi)


def _add_counts(acc: dict[str, int], values: Iterable[Any]) -> None:
    for v in values:
        k = MISSING if _is_missing(v) else str(v)
        if k not in acc and len(acc) >= _MAX_CATEGORIES:
            k = "__other__"
        acc[k] = acc.get(k, 0) + 1


def _is_missing(v: Any) -> bool:
    return v is None or v == "" or (isinstance(v, float) and math.isnan(v))


def update(
    profile: dict[str, Any],
    spec: ProfileSpec,
    rows: Sequence[Mapping[str, Any]],
    outputs: np.ndarray,
    predicted: Sequence[Any],
    latency_ms: np.ndarray,
) -> None:
    """Add answered rows (dicts) to a profile, in place."""
    columns = {
        f: (
            [None if _is_missing(r.get(f)) else r.get(f) for r in rows]
            if f in spec.categorical
            else np.array([np.nan if r.get(f) is None else r.get(f) for r in rows], dtype=float)
        )
        for f in profile["columns"]
    }
    update_columns(profile, columns, np.asarray(outputs, float), predicted, latency_ms)


def update_columns(
    profile: dict[str, Any],
    columns: Mapping[str, Any],
    outputs: np.ndarray,
    predicted: Any,
    latency_ms: np.ndarray,
) -> None:
    """Add answered rows given as columns (NumPy floats for numeric features, sequences or
    Polars series of values for categorical ones) to a profile, in place."""
    profile["rows"] += len(outputs)
    for f, acc in profile["columns"].items():
        values = columns.get(f)
        if values is None:
            continue
        if acc["kind"] == "categorical":
            _add_value_counts(acc["counts"], values)
        else:
            _add_numeric(acc, np.asarray(values, dtype=float))
    out = profile["output"]
    _add_numeric(out, outputs)
    _add_value_counts(out["classes"], predicted)
    if "scores" in out:
        finite = outputs[np.isfinite(outputs)]
        idx = np.clip((finite * SCORE_BINS).astype(int), 0, SCORE_BINS - 1)
        counts = np.bincount(idx, minlength=SCORE_BINS)
        out["scores"] = [a + int(b) for a, b in zip(out["scores"], counts, strict=True)]
    lat = profile["latency"]
    idx = np.searchsorted(LATENCY_BUCKETS_MS, latency_ms, side="left")
    counts = np.bincount(idx, minlength=len(LATENCY_BUCKETS_MS))
    lat["counts"] = [a + int(b) for a, b in zip(lat["counts"], counts, strict=True)]
    lat["sum_ms"] += float(latency_ms.sum())


def _add_value_counts(acc: dict[str, int], values: Any) -> None:
    import polars as pl

    series = (
        values
        if isinstance(values, pl.Series)
        else pl.Series(list(values), dtype=pl.String, strict=False)
    )
    series = series.cast(pl.String).fill_null(MISSING).replace("", MISSING)
    counts = series.value_counts()
    for k, n in zip(counts[:, 0].to_list(), counts[:, 1].to_list(), strict=True):
        key = k if (k in acc or len(acc) < _MAX_CATEGORIES) else "__other__"
        acc[key] = acc.get(key, 0) + int(n)


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The profile of both: counts add, minima and maxima combine."""
    return _merge(a, b)  # type: ignore[no-any-return]


def _merge(a: Any, b: Any, key: str = "") -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        # the leaves are merged here rather than by a call each: a day of hourly profiles of
        # fifty features is ~500 leaves a merge, and the calls were most of a cold year's read
        out = dict(a)
        for k, v in b.items():
            if k not in a:
                out[k] = v
                continue
            x = a[k]
            if isinstance(x, dict):
                out[k] = _merge(x, v, k)
            elif k == "edges" or k == "kind":
                continue
            elif type(x) is list and type(v) is list:
                out[k] = [p + q for p, q in zip(x, v, strict=True)] if len(x) == len(v) else x
            elif x is None or v is None:
                out[k] = v if x is None else x
            elif k == "min":
                out[k] = min(x, v)
            elif k == "max":
                out[k] = max(x, v)
            else:
                out[k] = x + v
        return out
    if key == "edges" or key == "kind":
        return a
    if isinstance(a, list) and isinstance(b, list):
        return [x + y for x, y in zip(a, b, strict=True)] if len(a) == len(b) else a
    if a is None or b is None:
        return b if a is None else a
    if key == "min":
        return min(a, b)
    if key == "max":
        return max(a, b)
    return a + b


def stored(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile as the database keeps it: without the bin edges, which are the version's
    reference edges (readers compare on those) and were 70 % of every stored profile's JSON
    (35 KB -> 11 KB a window at fifty features), so of a cold year's read."""
    for acc in (*profile["columns"].values(), profile["output"]):
        acc.pop("edges", None)
    return profile


def numeric_summary(acc: Mapping[str, Any]) -> dict[str, float | None]:
    """Mean and standard deviation from a numeric accumulator's sums."""
    n = sum(acc.get("counts") or []) or 0
    if not n:
        return {"mean": None, "std": None}
    mean = acc["sum"] / n
    var = max(0.0, acc["sumsq"] / n - mean * mean)
    return {"mean": mean, "std": math.sqrt(var)}


def window_start(time: dt.datetime, window_s: int) -> dt.datetime:
    ts = int(time.timestamp())
    return dt.datetime.fromtimestamp(ts - ts % window_s, dt.UTC)


Key = tuple[str, int, str, str, dt.datetime]  # model, version, role, segment, window start


class Profiler:
    """Window profiles of what one server process answered, saved by a thread of their own.

    Each process writes its own row per window (`writer`), replacing it with its running total;
    readers add the rows of every writer. So a restart or a second worker never double counts.
    """

    def __init__(self, db: Database, *, window_s: int = 3600) -> None:
        self.db = db
        self.window_s = window_s
        self.writer = uuid.uuid4().hex
        self._dirty: set[Key] = set()
        self._lock = threading.Lock()
        self._profiles: dict[Key, dict[str, Any]] = {}
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

    def observe(self, frame: Any) -> None:
        """Fold a batch of the prediction log (the frame the log is about to write) into the
        window profiles. Called by the log's flush thread: serving pays nothing per request,
        and the JSON of the inputs is decoded by Polars, in Rust, per batch. Measured: the
        first design (rows handed over per request, folded in Python) cost 17-41 % of
        serving's throughput; see docs/benchmarks.md."""
        import polars as pl

        if frame.height == 0:
            return
        frame = frame.with_columns(
            pl.col("time").dt.truncate(f"{self.window_s}s").alias("__window"),
            pl.col("segment").fill_null(""),
        )
        keys = ["model", "version", "role", "segment", "__window"]
        for (model, version, role, segment, start), part in frame.group_by(keys):
            spec = self._specs.get((str(model), int(version)))
            if spec is None:
                continue
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
            key = (
                str(model),
                int(version),
                str(role),
                str(segment),
                start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start,
            )
            with self._lock:
                profile = self._profiles.setdefault(key, spec.empty())
                update_columns(profile, columns, outputs, part.get_column("prediction"), latency)
                self._dirty.add(key)

    def error(self, model: str, version: int, role: str, time: dt.datetime, count: int = 1) -> None:
        """Count `count` refused inputs (a failed request, or rows skipped) in the window."""
        key = (model, version, role, "", window_start(time, self.window_s))
        spec = self._specs.get((model, version))
        if spec is None:
            return
        with self._lock:
            self._profiles.setdefault(key, spec.empty())["errors"] += count
            self._dirty.add(key)

    @property
    def unsaved_windows(self) -> int:
        """Windows changed in memory and not yet in the database."""
        with self._lock:
            return len(self._dirty) + self._in_flight

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
            with self._lock:
                changed, self._dirty = self._dirty, set()
                snapshot = {
                    k: stored(copy.deepcopy(self._profiles[k]))
                    for k in changed
                    if k in self._profiles
                }
                self._in_flight = len(snapshot)
            if not snapshot:
                return 0
            self._saving_since = time.monotonic()
            try:
                self._write(snapshot)
            except Exception as exc:  # whatever failed, no window is dropped
                with self._lock:
                    self._dirty |= set(snapshot)
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
            self.saved += len(snapshot)
            self.last_error = None
            self.last_error_kind = None
            self.failing_since = None
            self._evict()
            return len(snapshot)

    def _write(self, snapshot: dict[Key, dict[str, Any]]) -> None:
        now = dt.datetime.now(dt.UTC)
        t = tables.window_profiles
        with self.db.begin() as conn:
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


@dataclass
class Window:
    """One window's merged profile."""

    start: dt.datetime
    window_s: int
    version: int
    role: str
    segment: str
    rows: int
    profile: dict[str, Any]


def read_windows(
    db: Database,
    model: str,
    *,
    version: int | None = None,
    role: str | None = "production",
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    by_segment: bool = False,
) -> list[Window]:
    """Windows of a model starting in [since, until), oldest first, summed over writers (and
    segments unless asked)."""
    t = tables.window_profiles
    query = sa.select(t).where(t.c.model == model).order_by(t.c.window_start)
    if version is not None:
        query = query.where(t.c.version == version)
    if role is not None:
        query = query.where(t.c.role == role)
    if since is not None:
        query = query.where(t.c.window_start >= since)
    if until is not None:
        query = query.where(t.c.window_start < until)
    with db.engine.connect() as conn:
        records = conn.execute(query).mappings().all()
    merged: dict[tuple[Any, ...], Window] = {}
    for r in records:
        start = as_utc(r["window_start"])
        seg = r["segment"] if by_segment else ""
        key = (start, r["version"], r["role"], seg)
        if key in merged:
            w = merged[key]
            w.profile = merge(w.profile, r["profile"])
            w.rows += r["rows"]
        else:
            merged[key] = Window(
                start, r["window_s"], r["version"], r["role"], seg, r["rows"], dict(r["profile"])
            )
    return sorted(merged.values(), key=lambda w: (w.start, w.version, w.segment))


def latest_window(db: Database, model: str) -> dt.datetime | None:
    """The start of the newest window of a model, or None."""
    t = tables.window_profiles
    with db.engine.connect() as conn:
        value = conn.execute(
            sa.select(sa.func.max(t.c.window_start)).where(t.c.model == model)
        ).scalar()
    return as_utc(value) if value is not None else None
