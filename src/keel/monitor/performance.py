"""Live performance from feedback, estimated performance before labels, and shadow comparison.

Labels arrive late. A window is *judged* only when enough of its predictions have labels
(`min_coverage`, `min_labels`); before that its metrics are shown with their coverage but no
verdict is drawn from them. Until labels come, binary classifiers get an *estimate* from the
model's own scores (confidence-based performance estimation, as NannyML's CBPE): if the scores
are calibrated, a row scored s is a positive with probability s, so the expected ROC AUC and
accuracy follow from the score histogram alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl

from keel.monitor.status import LiveWindow, PooledMetric, ShadowComparison
from keel.train import (
    LOWER_IS_BETTER,
    EvaluationReport,
    score,
    weighted_binary,
    weighted_regression,
)


@dataclass(frozen=True)
class PerformanceConfig:
    min_coverage: float = 0.5
    """Share of a window's predictions that need labels before the window is judged."""
    min_labels: int = 50
    """Fewest labels for a verdict on a window."""
    pool_windows: int = 7
    """Recent judged windows pooled for the performance verdict (one window alone is noise)."""


def labelled(predictions: pl.DataFrame, feedback: pl.DataFrame) -> pl.DataFrame:
    """Predictions with their label (the latest one sent for each id), null where none yet."""
    last = (
        feedback.sort("time")
        .group_by("prediction_id")
        .agg(pl.col("label").last(), pl.col("time").last().alias("label_time"))
    )
    return predictions.join(last, on="prediction_id", how="left")


def _targets(
    frame: pl.DataFrame, task: str, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(y, outputs) of the labelled rows, in the form `keel.train.metrics.score` takes."""
    if task == "regression":
        y = frame.get_column("label").cast(pl.Float64, strict=False).to_numpy()
        out = frame.get_column("prediction").cast(pl.Float64, strict=False).to_numpy()
        ok = np.isfinite(y) & np.isfinite(out)
        return y[ok], out[ok]
    index = {str(c): i for i, c in enumerate(classes)}
    labels = frame.get_column("label").to_list()
    y = np.array([index.get(str(v), -1) for v in labels])
    proba = np.array(frame.get_column("probabilities").to_list(), dtype=float)
    ok = y >= 0
    if proba.ndim != 2:
        return np.array([], dtype=int), np.zeros((0, max(2, len(classes))))
    return y[ok], proba[ok]


def _window_metrics(
    frame: pl.DataFrame, task: str, classes: Sequence[str], config: PerformanceConfig
) -> dict[str, Any]:
    """Metrics of one window's predictions with whatever labels have arrived: predictions,
    labels, coverage, judged and metrics (the keyword arguments of a `LiveWindow`)."""
    n = frame.height
    have = frame.filter(pl.col("label").is_not_null())
    y, out = _targets(have, task, classes)
    coverage = len(y) / n if n else 0.0
    judged = len(y) >= config.min_labels and coverage >= config.min_coverage
    metrics: dict[str, float | None] = {}
    if len(y) >= 2 and (task == "regression" or len(np.unique(y)) > 1):
        metrics = point_metrics(task, y, out)
    return {
        "predictions": n,
        "labels": len(y),
        "coverage": round(coverage, 4),
        "judged": judged,
        "metrics": metrics,
    }


def point_metrics(task: str, y: np.ndarray, out: np.ndarray) -> dict[str, float | None]:
    """Every metric of the task at once. Binary and regression metrics come from the weighted
    forms in keel.train.metrics with unit weights (equal to scikit-learn's, tested there):
    measured, scikit-learn's six binary metrics per window were most of a loop step."""
    ones = np.ones((1, len(y)))
    if task == "regression":
        values = weighted_regression(y.astype(float), out.astype(float), ones)
    elif out.ndim == 2 and out.shape[1] == 2:
        values = weighted_binary(y.astype(float), out[:, 1].astype(float), ones)
    else:
        return {k: v["value"] for k, v in score(task, y, out).items()}
    return {k: (float(v[0]) if np.isfinite(v[0]) else None) for k, v in values.items()}


def live_performance(
    predictions: pl.DataFrame,
    feedback: pl.DataFrame,
    *,
    task: str,
    classes: Sequence[str],
    window_s: int,
    by_segment: bool = False,
    config: PerformanceConfig | None = None,
) -> list[LiveWindow]:
    """Metrics per window, version and role (and segment), oldest window first."""
    config = config or PerformanceConfig()
    if predictions.height == 0:
        return []
    frame = labelled(predictions, feedback).with_columns(
        pl.col("time").dt.truncate(f"{window_s}s").alias("window_start")
    )
    keys = ["window_start", "version", "role"] + (["segment"] if by_segment else [])
    out = []
    for key, part in frame.sort(keys).group_by(keys, maintain_order=True):
        start, version, role = key[:3]
        segment = key[3] if by_segment else None
        out.append(
            LiveWindow(
                window_start=start,
                version=int(version),
                role=str(role),
                segment=None if segment is None else str(segment),
                **_window_metrics(part, task, classes, config),
            )
        )
    return out


def pooled_performance(
    predictions: pl.DataFrame,
    feedback: pl.DataFrame,
    *,
    task: str,
    classes: Sequence[str],
    metric: str,
    n_boot: int = 300,
    seed: int = 0,
) -> PooledMetric:
    """The metric on every labelled prediction given, with a 95 % bootstrap interval."""
    have = labelled(predictions, feedback).filter(pl.col("label").is_not_null())
    y, out = _targets(have, task, classes)
    result = PooledMetric(metric, len(y))
    if len(y) < 2 or (task != "regression" and len(np.unique(y)) < 2):
        return result
    rng = np.random.default_rng(seed)
    w = np.vstack(
        [np.ones(len(y)), rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=n_boot)]
    ).astype(float)
    if task == "regression":
        values = weighted_regression(y.astype(float), out.astype(float), w).get(metric)
    elif out.ndim == 2 and out.shape[1] == 2:
        values = weighted_binary(y.astype(float), out[:, 1].astype(float), w).get(metric)
    else:
        return PooledMetric(metric, len(y), point_metrics(task, y, out).get(metric))
    if values is None or not np.isfinite(values[0]):
        return result
    boots = values[1:][np.isfinite(values[1:])]
    if len(boots) < 20:
        return PooledMetric(metric, len(y), float(values[0]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return PooledMetric(metric, len(y), float(values[0]), float(lo), float(hi))


def estimate_binary(scores: Sequence[int]) -> dict[str, float | None]:
    """Expected ROC AUC and accuracy of a binary classifier from its score histogram alone
    (bins of equal width on [0, 1]), assuming calibrated scores."""
    counts = np.asarray(scores, dtype=float)
    n = counts.sum()
    if n == 0:
        return {"roc_auc": None, "accuracy": None}
    centres = (np.arange(len(counts)) + 0.5) / len(counts)
    pos = counts * centres  # expected positives per bin
    neg = counts * (1 - centres)
    if pos.sum() == 0 or neg.sum() == 0:
        return {"roc_auc": None, "accuracy": None}
    neg_below = np.cumsum(neg) - neg  # negatives in lower bins
    auc = (np.sum(pos * neg_below) + 0.5 * np.sum(pos * neg)) / (pos.sum() * neg.sum())
    accuracy = float(np.sum(counts * np.maximum(centres, 1 - centres)) / n)
    return {"roc_auc": float(auc), "accuracy": accuracy}


def shadow_comparison(
    predictions: pl.DataFrame,
    feedback: pl.DataFrame,
    *,
    task: str,
    classes: Sequence[str],
    metric: str,
    n_boot: int = 400,
    seed: int = 0,
) -> ShadowComparison:
    """Production against shadow on the same requests: agreement, and once labels are in, the
    metric difference (shadow - production) with a 95 % paired-bootstrap interval."""
    prod = predictions.filter(pl.col("role") == "production")
    shadow = predictions.filter(pl.col("role") == "shadow")
    pairs = prod.join(shadow, on="prediction_id", suffix="_shadow")
    if pairs.height == 0:
        return ShadowComparison(requests=0, agreement=None, metric=metric)
    if task == "regression":
        a = pairs.get_column("prediction").cast(pl.Float64).to_numpy()
        b = pairs.get_column("prediction_shadow").cast(pl.Float64).to_numpy()
        scale = np.abs(a).mean() or 1.0
        agreement = float(np.mean(np.abs(a - b) <= 0.05 * scale))
    else:
        same = pairs.get_column("prediction") == pairs.get_column("prediction_shadow")
        agreement = float(np.mean(same.to_numpy()))
    result = ShadowComparison(
        requests=pairs.height,
        agreement=agreement,
        metric=metric,
        shadow_version=int(pairs.get_column("version_shadow")[-1]),
        production_version=int(pairs.get_column("version")[-1]),
    )
    with_labels = labelled(pairs, feedback).filter(pl.col("label").is_not_null())
    if with_labels.height < 2:
        return result
    return _paired_difference(result, with_labels, task, classes, n_boot=n_boot, seed=seed)


def _paired_difference(
    result: ShadowComparison,
    with_labels: pl.DataFrame,
    task: str,
    classes: Sequence[str],
    *,
    n_boot: int,
    seed: int,
) -> ShadowComparison:
    """The comparison with its labelled requests' metric difference and interval added."""
    metric = result.metric
    y, out_p = _targets(with_labels, task, classes)
    shadow_frame = with_labels.select(
        pl.col("prediction_shadow").alias("prediction"),
        pl.col("probabilities_shadow").alias("probabilities"),
        "label",
    )
    _, out_s = _targets(shadow_frame, task, classes)
    result = replace(result, labels=len(y))
    if len(y) < 2 or (task != "regression" and len(np.unique(y)) < 2):
        return result
    # paired bootstrap: the same resample (a vector of multiplicities) for both versions,
    # all resamples at once with the weighted metrics of keel.train.metrics
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=n_boot).astype(float)
    ones = np.ones((1, len(y)))
    if task == "regression":
        fp = weighted_regression(y.astype(float), out_p.astype(float), np.vstack([ones, weights]))
        fs = weighted_regression(y.astype(float), out_s.astype(float), np.vstack([ones, weights]))
    elif out_p.ndim == 2 and out_p.shape[1] == 2:
        fp = weighted_binary(y.astype(float), out_p[:, 1], np.vstack([ones, weights]))
        fs = weighted_binary(y.astype(float), out_s[:, 1], np.vstack([ones, weights]))
    else:
        return result  # multiclass: agreement only
    if metric not in fp:
        return result
    diffs = fs[metric] - fp[metric]
    base = float(diffs[0])
    boots = diffs[1:][np.isfinite(diffs[1:])]
    if not np.isfinite(base):
        return result
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    result = replace(
        result,
        difference=base,
        improvement=sign * base,  # positive: the shadow is better
        production_value=float(fp[metric][0]),
        shadow_value=float(fs[metric][0]),
    )
    if len(boots) >= 20:
        lo, hi = np.percentile(boots * sign, [2.5, 97.5])
        result = replace(result, low=float(lo), high=float(hi))
    return result


def training_metrics(evaluation: EvaluationReport) -> dict[str, float]:
    """The holdout metrics recorded at training, {name: value}."""
    return {
        k: float(v["value"])
        for k, v in evaluation.metrics.items()
        if isinstance(v, Mapping) and v.get("value") is not None
    }
