"""Window profiles: mergeable summaries of the traffic a version answered in one time window.

A profile holds, per feature, counts on the reference profile's bin edges (plus nulls, sum,
sum of squares, min and max) or category counts; the model's output on the reference output
edges, predicted classes and, for binary classifiers, a fine histogram of the positive-class
score (what performance estimation needs); and latency. Every field merges by addition (min
and max by min and max), so profiles of several workers or replicas, or of several segments,
add up to the profile of all of them.

Serving only appends what it answered to a list (`Profiler.add`); the arithmetic runs at flush,
off the request path, vectorised per feature.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from keel.store import Database, tables
from keel.store.database import as_utc

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
    def from_evaluation(cls, evaluation: Mapping[str, Any]) -> ProfileSpec:
        return cls(
            features=tuple(evaluation["features"]),
            categorical=frozenset(evaluation.get("categorical", [])),
            reference=evaluation.get("reference") or {"columns": {}, "rows": 0},
            task=evaluation.get("task", "classification"),
            classes=tuple(str(c) for c in evaluation.get("classes", [])),
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
        k = "__missing__" if v is None or v == "" else str(v)
        if k not in acc and len(acc) >= _MAX_CATEGORIES:
            k = "__other__"
        acc[k] = acc.get(k, 0) + 1


def update(
    profile: dict[str, Any],
    spec: ProfileSpec,
    rows: Sequence[Mapping[str, Any]],
    outputs: np.ndarray,
    predicted: Sequence[Any],
    latency_ms: np.ndarray,
) -> None:
    """Add answered rows to a profile (in place)."""
    profile["rows"] += len(rows)
    for f, acc in profile["columns"].items():
        if acc["kind"] == "categorical":
            _add_counts(acc["counts"], (r.get(f) for r in rows))
        else:
            values = np.fromiter(
                (np.nan if (v := r.get(f)) is None else v for r in rows),
                dtype=float,
                count=len(rows),
            )
            _add_numeric(acc, values)
    out = profile["output"]
    _add_numeric(out, outputs)
    _add_counts(out["classes"], predicted)
    if "scores" in out:
        idx = np.clip((outputs * SCORE_BINS).astype(int), 0, SCORE_BINS - 1)
        counts = np.bincount(idx, minlength=SCORE_BINS)
        out["scores"] = [a + int(b) for a, b in zip(out["scores"], counts, strict=True)]
    lat = profile["latency"]
    idx = np.searchsorted(LATENCY_BUCKETS_MS, latency_ms, side="left")
    counts = np.bincount(idx, minlength=len(LATENCY_BUCKETS_MS))
    lat["counts"] = [a + int(b) for a, b in zip(lat["counts"], counts, strict=True)]
    lat["sum_ms"] += float(latency_ms.sum())


def merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The profile of both: counts add, minima and maxima combine."""
    return _merge(a, b)  # type: ignore[no-any-return]


def _merge(a: Any, b: Any, key: str = "") -> Any:
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(a[k], v, k) if k in a else v
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
    """Window profiles of what one server process answered, written at each flush.

    Each process writes its own row per window (`writer`), replacing it with its running total;
    readers add the rows of every writer. So a restart or a second worker never double counts.
    """

    def __init__(self, db: Database, *, window_s: int = 3600) -> None:
        self.db = db
        self.window_s = window_s
        self.writer = uuid.uuid4().hex
        self._pending: list[tuple[Any, ...]] = []
        self._lock = threading.Lock()
        self._profiles: dict[Key, dict[str, Any]] = {}
        self._specs: dict[tuple[str, int], ProfileSpec] = {}
        self.failures = 0

    def register(self, model: str, version: int, spec: ProfileSpec) -> None:
        self._specs[(model, version)] = spec

    def add(
        self,
        model: str,
        version: int,
        role: str,
        segments: Sequence[str | None],
        rows: Sequence[Mapping[str, Any]],
        outputs: np.ndarray,
        predicted: Sequence[Any],
        latency_ms: float,
        time: dt.datetime,
    ) -> None:
        """Queue answered rows (cheap: the arithmetic happens at flush)."""
        with self._lock:
            self._pending.append(
                (model, version, role, segments, rows, outputs, predicted, latency_ms, time)
            )

    def error(self, model: str, version: int, role: str, time: dt.datetime) -> None:
        key = (model, version, role, "", window_start(time, self.window_s))
        spec = self._specs.get((model, version))
        if spec is None:
            return
        with self._lock:
            self._profiles.setdefault(key, spec.empty())["errors"] += 1

    def _apply(self) -> set[Key]:
        with self._lock:
            pending, self._pending = self._pending, []
        grouped: dict[Key, list[tuple[Any, ...]]] = defaultdict(list)
        for model, version, role, segments, rows, outputs, predicted, lat, time in pending:
            start = window_start(time, self.window_s)
            if all(s is None for s in segments):
                grouped[(model, version, role, "", start)].append((rows, outputs, predicted, lat))
                continue
            for i, seg in enumerate(segments):
                grouped[(model, version, role, seg or "", start)].append(
                    ([rows[i]], outputs[i : i + 1], [predicted[i]], lat)
                )
        for key, parts in grouped.items():
            spec = self._specs.get((key[0], key[1]))
            if spec is None:
                continue
            all_rows = [r for p in parts for r in p[0]]
            outs = np.concatenate([np.asarray(p[1], dtype=float) for p in parts])
            predicted = [x for p in parts for x in p[2]]
            lat = np.concatenate([np.full(len(p[0]), p[3], dtype=float) for p in parts])
            with self._lock:
                profile = self._profiles.setdefault(key, spec.empty())
            update(profile, spec, all_rows, outs, predicted, lat)
        return set(grouped)

    def flush(self) -> int:
        """Fold queued rows into the profiles and write those that changed; returns their count."""
        changed = self._apply()
        with self._lock:
            changed |= {k for k, p in self._profiles.items() if p["errors"] and k not in changed}
            snapshot = {k: self._profiles[k] for k in changed if k in self._profiles}
        if not snapshot:
            return 0
        now = dt.datetime.now(dt.UTC)
        t = tables.window_profiles
        try:
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
        except sa.exc.SQLAlchemyError:
            self.failures += 1
            return 0
        self._evict()
        return len(snapshot)

    def _evict(self) -> None:
        # windows more than two windows older than the newest seen are final: forget them
        with self._lock:
            if not self._profiles:
                return
            newest = max(k[4] for k in self._profiles)
            horizon = newest - dt.timedelta(seconds=2 * self.window_s)
            for k in [k for k in self._profiles if k[4] < horizon]:
                del self._profiles[k]


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
    by_segment: bool = False,
) -> list[Window]:
    """Windows of a model, oldest first, summed over writers (and segments unless asked)."""
    t = tables.window_profiles
    query = sa.select(t).where(t.c.model == model).order_by(t.c.window_start)
    if version is not None:
        query = query.where(t.c.version == version)
    if role is not None:
        query = query.where(t.c.role == role)
    if since is not None:
        query = query.where(t.c.window_start >= since)
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
