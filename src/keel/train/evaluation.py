"""Measuring a model's outputs on a prepared dataset version: holdout metrics with intervals,
the overfit gap, calibration, segments, fairness, the reference profile, and the comparison
with the production version on the same holdout."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from keel.train.features import to_pandas
from keel.train.metrics import LOWER_IS_BETTER, calibration_table, score
from keel.train.prepare import Prepared, outputs
from keel.train.reference import reference_profile
from keel.train.report import EvaluationReport
from keel.train.segments import fairness_section, segment_report
from keel.train.spec import TrainSpec

N_BOOT = 200
"""Bootstrap resamples behind each holdout interval."""


def primary_metric(task: str) -> str:
    return "rmse" if task == "regression" else "roc_auc"


def better(metric: str, a: float, b: float) -> float:
    """How much better a is than b (positive = better), whichever way the metric points."""
    return b - a if metric in LOWER_IS_BETTER else a - b


def evaluate_outputs(
    prep: Prepared, spec: TrainSpec, out_tr: np.ndarray, out_te: np.ndarray, *, overfit: bool = True
) -> dict[str, Any]:
    """What a model's outputs on the training and holdout rows say: holdout metrics with
    intervals, training metrics and the overfit gap, calibration, segments, fairness and the
    reference profile for drift. The same for a model keel fitted and one trained elsewhere
    (an imported ONNX graph passes `overfit=False`: its training rows are not these)."""
    xtr = prep.x.iloc[prep.train_idx]
    ytr, yte = prep.y[prep.train_idx], prep.y[prep.test_idx]
    holdout = score(prep.task, yte, out_te, n_boot=N_BOOT, seed=spec.seed)
    train_m = score(prep.task, ytr, out_tr)
    gap = {}
    if overfit:
        for m, entry in holdout.items():
            tv, hv = train_m[m]["value"], entry["value"]
            if tv is not None and hv is not None:
                gap[m] = round(-better(m, hv, tv), 6)  # train better than holdout -> positive gap
    report: dict[str, Any] = {
        "classes": [str(c) for c in prep.classes],
        "split": {
            "method": prep.split_method,
            "train_rows": len(prep.train_idx),
            "holdout_rows": len(prep.test_idx),
        },
        "metrics": holdout,
        "train_metrics": train_m,
        "overfit": gap,
    }
    if prep.task == "classification" and out_te.shape[1] == 2:
        report["calibration"] = calibration_table(yte.astype(float), out_te[:, 1])
    common = (prep.frame, prep.contract, prep.test_idx, prep.task, yte, out_te)
    rows, minority = spec.min_group_rows, spec.min_group_minority
    report["segments"] = segment_report(
        *common, min_group_rows=rows, seed=spec.seed, min_group_minority=minority
    )
    report["fairness"] = fairness_section(
        *common, bands=spec.fairness, min_group_rows=rows, min_group_minority=minority
    )
    report["reference"] = reference_profile(
        xtr, prep.features, prep.categorical, out_tr, np.asarray(out_te)
    )
    return report


def vs_production(
    prep: Prepared, production: tuple[Pipeline, EvaluationReport], holdout: Mapping[str, Any]
) -> dict[str, Any]:
    """How much better the candidate's holdout metrics are than production's on the same
    holdout rows (positive is better), and production's own values; a note instead when
    production cannot be scored on these rows."""
    pipe, evaluation = production
    prod_features = list(evaluation.features)
    missing = [f for f in prod_features if f not in prep.frame.columns]
    if missing or evaluation.task != prep.task:
        return {
            "note": f"production cannot be scored on this holdout (missing {missing}, task {evaluation.task})"
        }
    if prep.task == "classification" and list(evaluation.classes) != [str(c) for c in prep.classes]:
        return {"note": "production was trained on other classes"}
    x = to_pandas(prep.frame, prod_features, prep.contract).iloc[prep.test_idx]
    prod = score(prep.task, prep.y[prep.test_idx], outputs(pipe, x, prep.task))
    out: dict[str, Any] = {}
    for m, entry in holdout.items():
        pv = prod.get(m, {}).get("value")
        if pv is not None and entry["value"] is not None:
            out[m] = round(better(m, entry["value"], pv), 6)
    out["production"] = {m: e["value"] for m, e in prod.items()}
    return out
