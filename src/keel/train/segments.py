"""Per-segment metrics and per-group fairness, judged only on groups big enough to say something.

A group (a value of the segment column, or a band of a sensitive column) is *judged* when it
has at least `min_group_rows` holdout rows and, for classification, both classes among them.
Smaller groups are still listed, with their size and the reason, but no gate and no "worst
segment" is decided by them: a 3-row segment's AUC of 0.5 says nothing about the model.

Numeric sensitive columns are cut into bands before fairness is measured (a group per distinct
age is a group per person): quantile bands by default, or the edges given in the spec.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import polars as pl

from keel.data import Contract
from keel.store import ConfigError
from keel.train.fairness import fairness_report, group_verdict
from keel.train.metrics import LOWER_IS_BETTER, score
from keel.train.spec import Bands

# a numeric sensitive column with more distinct values than this is banded without being asked
MAX_DISTINCT_UNBANDED = 10
_N_BOOT_SEGMENT = 100


def segment_report(
    frame: pl.DataFrame,
    contract: Contract,
    test_idx: np.ndarray,
    task: str,
    y: np.ndarray,
    out: np.ndarray,
    *,
    min_group_rows: int,
    seed: int,
    min_group_minority: int = 1,
) -> dict[str, Any]:
    """Holdout metrics (with bootstrap intervals) per value of the contract's segment column.

    Returns {} without a segment column; else the column, the metric, the worst judged group,
    every group (rows, metrics, judged, reason) and the list of groups not judged.
    """
    segs = contract.with_role("segment")
    if not segs or segs[0].name not in frame.columns:
        return {}
    col = segs[0].name
    values = frame.get_column(col).cast(pl.String).fill_null("missing").to_numpy()[test_idx]
    groups: dict[str, dict[str, Any]] = {}
    not_judged: list[dict[str, Any]] = []
    for g in sorted(set(values.tolist()), key=str):
        rows = np.flatnonzero(values == g)
        reason = group_verdict(y[rows], task, min_group_rows, min_group_minority)
        groups[str(g)] = {
            "rows": len(rows),
            "judged": reason is None,
            "reason": reason,
            "metrics": score(task, y, out, rows=rows, n_boot=_N_BOOT_SEGMENT, seed=seed),
        }
        if reason is not None:
            not_judged.append({"group": str(g), "rows": len(rows), "reason": reason})
    metric = "rmse" if task == "regression" else "roc_auc"
    scored = {
        g: s["metrics"][metric]["value"]
        for g, s in groups.items()
        if s["judged"] and s["metrics"][metric]["value"] is not None
    }
    worst = None
    if scored:
        worst = (max if metric in LOWER_IS_BETTER else min)(scored, key=lambda g: scored[g])
    return {
        "column": col,
        "metric": metric,
        "min_group_rows": min_group_rows,
        **({"min_group_minority": min_group_minority} if min_group_minority > 1 else {}),
        "worst": worst,
        "groups": groups,
        "not_judged": not_judged,
    }


def fairness_section(
    frame: pl.DataFrame,
    contract: Contract,
    test_idx: np.ndarray,
    task: str,
    y: np.ndarray,
    out: np.ndarray,
    *,
    bands: dict[str, Bands],
    min_group_rows: int,
    min_group_minority: int = 1,
) -> dict[str, Any]:
    """Fairness per sensitive column (binary classification only), numeric columns banded."""
    sensitive = [c for c in contract.with_role("sensitive") if c.name in frame.columns]
    unknown = sorted(set(bands) - {c.name for c in sensitive})
    if unknown:
        msg = (
            f"Spec fairness names {unknown}, which are not sensitive columns of contract "
            f"{contract.name!r}; its sensitive columns are {sorted(c.name for c in sensitive)}. "
            "Give the column role 'sensitive' in the contract, or remove it from 'fairness'."
        )
        raise ConfigError(msg)
    if task != "classification" or out.ndim != 2 or out.shape[1] != 2 or not sensitive:
        return {}
    groups: dict[str, np.ndarray] = {}
    banding: dict[str, dict[str, Any]] = {}
    for c in sensitive:
        numeric = c.type in ("int", "float")
        series = frame.get_column(c.name)
        if c.name in bands and not numeric:
            msg = (
                f"Spec fairness.{c.name} gives bands, but column {c.name!r} has type {c.type!r}; "
                "bands cut numeric (int or float) columns. Remove it from 'fairness'."
            )
            raise ConfigError(msg)
        if numeric and (c.name in bands or series.drop_nulls().n_unique() > MAX_DISTINCT_UNBANDED):
            labels, info = band_column(series, bands.get(c.name, Bands()))
            groups[c.name], banding[c.name] = labels[test_idx], info
        else:
            groups[c.name] = series.cast(pl.String).fill_null("missing").to_numpy()[test_idx]
    report = fairness_report(
        y, (out[:, 1] >= 0.5).astype(int), groups, min_group_rows=min_group_rows,
        min_group_minority=min_group_minority,
    )  # fmt: skip
    for name, info in banding.items():
        report[name]["bands"] = info
    return report


def band_column(series: pl.Series, bands: Bands) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels ('[25, 45)', '>= 65', 'missing') for every row of a numeric column, and how it was cut.

    Quantile cut points come from the whole column (every row of the dataset version), so every
    candidate trained on it gets the same bands.
    """
    values = series.cast(pl.Float64).to_numpy()
    present = values[np.isfinite(values)]
    if bands.edges is not None:
        cuts = np.asarray(bands.edges, dtype=float)
        method = "given"
        labels_for = _given_labels(cuts)
    else:
        inner = np.linspace(0, 1, bands.quantiles + 1)[1:-1]
        cuts = np.unique(np.quantile(present, inner)) if len(present) else np.array([])
        # a cut at the minimum would leave an empty first band
        cuts = cuts[cuts > present.min()] if len(present) else cuts
        method = "quantile"
        lo, hi = (float(present.min()), float(present.max())) if len(present) else (0.0, 0.0)
        labels_for = _quantile_labels(cuts, lo, hi)
    which = np.digitize(np.nan_to_num(values, nan=-np.inf), cuts, right=False)
    labels = np.array([labels_for[i] for i in which], dtype=object)
    labels[~np.isfinite(values)] = "missing"
    info: dict[str, Any] = {"method": method, "edges": [float(c) for c in cuts]}
    if method == "quantile":
        info["quantiles"] = bands.quantiles
    return labels, info


def _num(v: float) -> str:
    return f"{v:g}"


def _given_labels(cuts: np.ndarray) -> list[str]:
    labels = [f"< {_num(cuts[0])}"]
    labels += [f"[{_num(a)}, {_num(b)})" for a, b in itertools.pairwise(cuts)]
    return [*labels, f">= {_num(cuts[-1])}"]


def _quantile_labels(cuts: np.ndarray, lo: float, hi: float) -> list[str]:
    points = [lo, *cuts.tolist(), hi]
    labels = [f"[{_num(a)}, {_num(b)})" for a, b in itertools.pairwise(points[:-1])]
    return [*labels, f"[{_num(points[-2])}, {_num(hi)}]"]
