"""Two versions of a model on the same rows: the statistics the loop decides from.

- `backtest`: a challenger against production on the newest labelled rows the challenger was
  not trained on (rows whose labels arrived after it was trained), both scored offline from the
  logged features, with a paired-bootstrap interval of the metric difference. Labels come late,
  but they keep coming for rows logged before the retrain: a backtest needs no new traffic.
- `compare_versions`: after a production move, the new version against the one it replaced on
  the rows the new one answered since: the previous version scored offline on the same rows,
  so a harder world is not mistaken for a worse model. Estimated metrics (before labels) come
  from both versions' scores on those rows; error rates from the new version's windows.

Everything here computes; nothing acts (the loop does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import polars as pl

from keel.data import validate
from keel.monitor.logfiles import read_log
from keel.monitor.performance import estimate_binary, labelled
from keel.registry import ModelStore
from keel.store import Settings
from keel.train import LOWER_IS_BETTER, to_pandas, weighted_binary, weighted_regression

_SCORE_BINS = 20
_LOGGED = ["prediction_id", "time", "version", "role", "features", "prediction", "probabilities"]


class WindowFigures(Protocol):
    """What `compare_versions` reads of a window's status."""

    @property
    def start(self) -> dt.datetime: ...
    @property
    def version(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def error_rate(self) -> float: ...


@dataclass(frozen=True, slots=True)
class PairedDifference:
    """One metric of two versions on the same labelled rows, with a 95 % paired-bootstrap
    interval of the improvement (positive: `second` is better, whichever way the metric
    points)."""

    metric: str
    labels: int
    minority: int
    """Rows of the rarer class (classifiers), or `labels` (regression)."""
    first: float
    second: float
    improvement: float
    low: float | None
    high: float | None

    def __post_init__(self) -> None:
        if self.labels < 2:
            msg = f"PairedDifference.labels is {self.labels}; expected at least 2 labelled rows"
            raise ValueError(msg)
        if (self.low is None) != (self.high is None):
            msg = f"PairedDifference low={self.low} high={self.high}: expected both or neither"
            raise ValueError(msg)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Backtest:
    """A challenger against production on labelled rows it was not trained on."""

    challenger: int
    production: int
    labelled_after: dt.datetime
    """Rows whose label arrived after this (the challenger's training) were used."""
    rows: int
    """Such rows in the log (production and canary traffic)."""
    difference: PairedDifference | None
    """`first` production, `second` the challenger; None until two classes are labelled."""

    def to_json(self) -> dict[str, Any]:
        return {
            "challenger": self.challenger,
            "production": self.production,
            "labelled_after": self.labelled_after.isoformat(),
            "rows": self.rows,
            "difference": None if self.difference is None else self.difference.to_json(),
        }


@dataclass(frozen=True, slots=True)
class VersionComparison:
    """The version now in production (`after`) against the one it replaced (`before`), on
    what `after` answered since `since`."""

    before: int
    after: int
    since: dt.datetime
    metric: str
    rows: int
    """Rows `after` answered as production since `since` (its windows)."""
    error_rate: float
    """The worst error rate of `after`'s complete windows since `since`."""
    estimated_after: float | None
    estimated_before: float | None
    """The estimated metric (binary classifiers, from scores alone) of both on the same rows."""
    live: PairedDifference | None
    """`first` before, `second` after, on the labelled rows; None before two classes."""

    def to_json(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
            "since": self.since.isoformat(),
            "live": None if self.live is None else self.live.to_json(),
        }


def paired_difference(
    task: str,
    y: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    metric: str,
    *,
    n_boot: int = 400,
    seed: int = 0,
) -> PairedDifference | None:
    """`metric` of two sets of outputs on the same labels, and the improvement of `second`
    with a 95 % paired-bootstrap interval (the same resamples for both). None when the metric
    is undefined (fewer than two rows, or one class only) or the task is multiclass."""
    n = len(y)
    if n < 2 or (task != "regression" and len(np.unique(y)) < 2):
        return None
    rng = np.random.default_rng(seed)
    weights = np.vstack(
        [np.ones((1, n)), rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)]
    )
    if task == "regression":
        fa = weighted_regression(y.astype(float), first.astype(float), weights)
        fb = weighted_regression(y.astype(float), second.astype(float), weights)
        minority = n
    elif first.ndim == 2 and first.shape[1] == 2:
        fa = weighted_binary(y.astype(float), first[:, 1].astype(float), weights)
        fb = weighted_binary(y.astype(float), second[:, 1].astype(float), weights)
        minority = int(min(np.sum(y == 0), np.sum(y == 1)))
    else:
        return None
    if metric not in fa or not (np.isfinite(fa[metric][0]) and np.isfinite(fb[metric][0])):
        return None
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    diffs = (fb[metric] - fa[metric]) * sign
    boots = diffs[1:][np.isfinite(diffs[1:])]
    low = high = None
    if len(boots) >= 20:
        lo, hi = np.percentile(boots, [2.5, 97.5])
        low, high = float(lo), float(hi)
    return PairedDifference(
        metric, n, minority, float(fa[metric][0]), float(fb[metric][0]), float(diffs[0]), low, high
    )


def score_logged(models: ModelStore, ref: str, rows: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A version's outputs on logged rows (their `features` JSON), as serving computes them:
    checked and cleaned against the version's input contract first. Returns (mask of the rows
    scored, outputs of those rows: class probabilities, or predictions for regression)."""
    version, pipeline = models.load(ref)
    contract = models.contract(version.ref)
    features = list(version.evaluation["features"])
    keep = set(features)
    inputs = dataclasses.replace(
        contract,
        columns=tuple(c for c in contract.columns if c.name in keep),
        quasi_identifiers=tuple(q for q in contract.quasi_identifiers if q in keep),
        extra_columns="drop",
        duplicate_rows="allow",
        max_bad_share=1.0,
    )
    if rows.height == 0:
        return np.zeros(0, dtype=bool), np.zeros((0, 2))
    frame = rows.get_column("features").str.json_decode(infer_schema_length=None).struct.unnest()
    missing = [f for f in features if f not in frame.columns]
    frame = frame.with_columns(pl.lit(None).alias(f) for f in missing)
    report = validate(frame, inputs)
    ok = np.ones(rows.height, dtype=bool)
    ok[report.bad_rows] = False
    x = to_pandas(report.cleaned.filter(pl.Series(ok)), features, inputs)
    if version.evaluation.get("task") == "regression" or not hasattr(pipeline, "predict_proba"):
        return ok, np.asarray(pipeline.predict(x), dtype=float)
    return ok, np.asarray(pipeline.predict_proba(x), dtype=float)


def _logged_outputs(rows: pl.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return rows.get_column("prediction").cast(pl.Float64, strict=False).to_numpy()
    return np.array(rows.get_column("probabilities").to_list(), dtype=float)


def _label_index(rows: pl.DataFrame, task: str, classes: Sequence[str]) -> np.ndarray:
    if task == "regression":
        return rows.get_column("label").cast(pl.Float64, strict=False).to_numpy()
    index = {str(c): i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), -1) for v in rows.get_column("label").to_list()])


def _usable(y: np.ndarray, task: str) -> np.ndarray:
    return np.isfinite(y) if task == "regression" else y >= 0


def _estimated(task: str, metric: str, outputs: np.ndarray) -> float | None:
    """The estimated metric of a binary classifier from its scores alone (CBPE)."""
    if task == "regression" or outputs.ndim != 2 or outputs.shape[1] != 2 or not len(outputs):
        return None
    counts, _ = np.histogram(np.clip(outputs[:, 1], 0, 1), bins=_SCORE_BINS, range=(0, 1))
    return estimate_binary(counts.tolist()).get(metric)


def backtest(
    settings: Settings,
    models: ModelStore,
    name: str,
    *,
    challenger: int,
    production: int,
    labelled_after: dt.datetime,
    since: dt.datetime,
    metric: str,
    missing_label: str | None = None,
    seed: int = 0,
    logged_after: dt.datetime | None = None,
) -> Backtest:
    """`challenger` against `production` on the logged rows (since `since`; production and
    canary traffic, not a shadow's answers) whose label arrived after `labelled_after`: both
    scored offline on the same rows, the difference with its paired-bootstrap interval.

    With `missing_label` (the retrain counted unlabelled rows as that label), the rows logged
    after `labelled_after` instead, an unlabelled one counted as `missing_label` too.

    With `logged_after` (the challenger's training rows stopped there: a holdout), the rows
    logged from then on count too, whenever their label came."""
    root = settings.resolved_artifacts
    preds = read_log(root, "predictions", name, since.date(), columns=_LOGGED)
    preds = preds.filter((pl.col("role") != "shadow") & (pl.col("time") >= since))
    preds = preds.unique("prediction_id", keep="last", maintain_order=True)
    rows = labelled(preds, read_log(root, "feedback", name))
    held_out = pl.lit(False) if logged_after is None else pl.col("time") >= logged_after
    if missing_label is None:
        rows = rows.filter(
            pl.col("label").is_not_null() & ((pl.col("label_time") > labelled_after) | held_out)
        )
    else:
        rows = rows.filter((pl.col("time") > labelled_after) | held_out).with_columns(
            pl.col("label").fill_null(missing_label)
        )
    ev = models.get(f"{name}@{production}").evaluation
    task, classes = ev.get("task", "classification"), [str(c) for c in ev.get("classes", [])]
    y = _label_index(rows, task, classes)
    rows = rows.filter(pl.Series(_usable(y, task)))
    y = y[_usable(y, task)]
    ok_p, out_p = score_logged(models, f"{name}@{production}", rows)
    ok_c, out_c = score_logged(models, f"{name}@{challenger}", rows)
    both = ok_p & ok_c
    difference = paired_difference(
        task, y[both], out_p[both[ok_p]], out_c[both[ok_c]], metric, seed=seed
    )
    return Backtest(challenger, production, labelled_after, rows.height, difference)


def compare_versions(
    settings: Settings,
    models: ModelStore,
    name: str,
    *,
    before: int,
    after: int,
    since: dt.datetime,
    windows: Sequence[WindowFigures],
    metric: str,
    now: dt.datetime,
    seed: int = 0,
) -> VersionComparison:
    """`after` (production since `since`) against `before` on the rows `after` answered as
    production since then: `windows` are `after`'s window statuses (rows, error rates)."""
    window = dt.timedelta(seconds=settings.window_s)
    floor = _window_floor(since, settings.window_s)
    mine = [w for w in windows if w.version == after and w.start >= floor]
    complete = [w for w in mine if w.start + window <= now]
    error_rate = max((float(w.error_rate) for w in complete), default=0.0)
    root = settings.resolved_artifacts
    preds = read_log(root, "predictions", name, since.date(), columns=_LOGGED)
    preds = preds.filter(
        (pl.col("version") == after) & (pl.col("role") == "production") & (pl.col("time") >= since)
    ).unique("prediction_id", keep="last", maintain_order=True)
    ev = models.get(f"{name}@{after}").evaluation
    task, classes = ev.get("task", "classification"), [str(c) for c in ev.get("classes", [])]
    ok, out_before = score_logged(models, f"{name}@{before}", preds)
    answered = _logged_outputs(preds.filter(pl.Series(ok)), task)
    rows = labelled(preds.filter(pl.Series(ok)), read_log(root, "feedback", name))
    y = _label_index(rows, task, classes) if rows.height else np.zeros(0)
    have = _usable(y, task) & rows.get_column("label").is_not_null().to_numpy()
    live = paired_difference(task, y[have], out_before[have], answered[have], metric, seed=seed)
    return VersionComparison(
        before=before,
        after=after,
        since=since,
        metric=metric,
        rows=sum(int(w.rows) for w in mine),
        error_rate=error_rate,
        estimated_after=_estimated(task, metric, answered),
        estimated_before=_estimated(task, metric, out_before),
        live=live,
    )


def _window_floor(t: dt.datetime, window_s: int) -> dt.datetime:
    """The start of the window holding `t` (windows are aligned on the epoch)."""
    epoch = dt.datetime(1970, 1, 1, tzinfo=t.tzinfo or dt.UTC)
    return t - dt.timedelta(seconds=(t - epoch).total_seconds() % window_s)
