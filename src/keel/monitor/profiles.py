"""Window profiles: mergeable summaries of the traffic a version answered in one time window.

A profile holds, per feature, counts on the reference profile's bin edges (plus nulls, sum,
sum of squares, min and max) or category counts; the model's output on the reference output
edges, predicted classes and, for binary classifiers, a fine histogram of the positive-class
score (what performance estimation needs); and latency. Every field merges by addition (min
and max by min and max), so profiles of several workers or replicas, or of several segments,
add up to the profile of all of them.

They are folded from the prediction log's batches by `keel.monitor.profiler.Profiler` and read
back, summed over writers, by `read_windows`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from keel.data import MISSING
from keel.monitor.windowprofile import WindowProfile
from keel.store import Database, as_utc, tables
from keel.train import EMPTY_REFERENCE, CategoricalReference, EvaluationReport, ReferenceProfile

_log = logging.getLogger("keel.monitor")
SCORE_BINS = 50  # positive-class score histogram on [0, 1], for performance estimation
LATENCY_BUCKETS_MS = (0.5, 1, 2, 5, 10, 20, 50, 100, 250, 500, 1000, 2500, math.inf)
_MAX_CATEGORIES = 200  # beyond, new categories count as "__other__" (a window cannot blow up)


@dataclass(frozen=True)
class ProfileSpec:
    """What a version's profiles count on: its features and its reference profile."""

    features: tuple[str, ...]
    categorical: frozenset[str]
    reference: ReferenceProfile
    """Typed, or the JSON of an evaluation's `reference` (read into the type)."""
    task: str
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "reference", ReferenceProfile.from_json(self.reference))

    @classmethod
    def from_evaluation(cls, evaluation: EvaluationReport) -> ProfileSpec:
        """What the profiles of a version with this evaluation report count."""
        return cls(
            features=evaluation.features,
            categorical=frozenset(evaluation.categorical),
            reference=evaluation.reference or EMPTY_REFERENCE,
            task=evaluation.task,
            classes=evaluation.classes,
        )

    @property
    def binary(self) -> bool:
        return self.task == "classification" and len(self.classes) == 2

    def empty(self) -> dict[str, Any]:
        columns: dict[str, Any] = {}
        for f in self.features:
            ref = self.reference.column(f)
            if f in self.categorical or isinstance(ref, CategoricalReference):
                columns[f] = {"kind": "categorical", "counts": {}}
            else:
                columns[f] = _numeric_empty(ref.edges if ref is not None else ())
        out = self.reference.output
        output = _numeric_empty(out.edges if out is not None else ())
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


def window_start(time: dt.datetime, window_s: int) -> dt.datetime:
    ts = int(time.timestamp())
    return dt.datetime.fromtimestamp(ts - ts % window_s, dt.UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """One window's profile, summed over writers (and segments, unless read by segment)."""

    start: dt.datetime
    window_s: int
    version: int
    role: str
    segment: str
    rows: int
    profile: WindowProfile

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            msg = f"Window.start is {self.start!r}, a naive datetime; expected one in UTC."
            raise ValueError(msg)

    def merge(self, other: Window) -> Window:
        """This window with another's profile added (another writer, segment or window)."""
        return dataclasses.replace(
            self, rows=self.rows + other.rows, profile=self.profile.merge(other.profile)
        )


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
    # the stored JSON is summed first (the fast path of a cold year's read), typed once
    merged: dict[tuple[Any, ...], tuple[int, int, dict[str, Any]]] = {}
    for r in records:
        key = (
            as_utc(r["window_start"]),
            r["version"],
            r["role"],
            r["segment"] if by_segment else "",
        )
        if key in merged:
            window_s, rows, profile = merged[key]
            merged[key] = (window_s, rows + r["rows"], merge(profile, r["profile"]))
        else:
            merged[key] = (r["window_s"], r["rows"], dict(r["profile"]))
    windows = [
        Window(start, window_s, version, role, seg, rows, WindowProfile.from_json(profile))
        for (start, version, role, seg), (window_s, rows, profile) in merged.items()
    ]
    return sorted(windows, key=lambda w: (w.start, w.version, w.segment))


def latest_window(db: Database, model: str) -> dt.datetime | None:
    """The start of the newest window of a model, or None."""
    t = tables.window_profiles
    with db.engine.connect() as conn:
        value = conn.execute(
            sa.select(sa.func.max(t.c.window_start)).where(t.c.model == model)
        ).scalar()
    return as_utc(value) if value is not None else None
