"""Fairness per sensitive column, with fairlearn's MetricFrame, on groups big enough to judge."""

from __future__ import annotations

from typing import Any

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)


def group_verdict(
    y_group: np.ndarray, task: str, min_group_rows: int, min_minority: int = 1
) -> str | None:
    """Why a group is not judged (too few rows, one class only, too few of the rarer class),
    or None when it is.

    A classification group needs both classes: with one, AUC does not exist and a true or
    false positive rate is a ratio over nothing; with `min_minority`, that many of each.
    """
    rows = len(y_group)
    if rows < min_group_rows:
        return f"{rows} rows < {min_group_rows}"
    if task == "classification":
        counts = np.unique(y_group, return_counts=True)[1]
        if len(counts) < 2:
            return f"one class only in {rows} rows"
        if counts.min() < min_minority:
            return f"{counts.min()} of the rarer class < {min_minority}"
    return None


def fairness_report(
    y: np.ndarray,
    pred: np.ndarray,
    sensitive: dict[str, np.ndarray],
    *,
    min_group_rows: int = 30,
    min_group_minority: int = 1,
) -> dict[str, Any]:
    """Per sensitive column: selection rate, TPR and FPR per group, and the gaps between groups.

    `y` and `pred` are 0/1 (binary classification); groups are the column's values (or bands).
    Gaps are measured between judged groups only (see `group_verdict`); the others are listed
    in `not_judged` with their size. With fewer than two judged groups the gaps are None and
    `note` says why.
    """
    out: dict[str, Any] = {}
    for name, raw in sensitive.items():
        groups = np.asarray([str(g) for g in raw], dtype=object)
        judged: list[str] = []
        not_judged: list[dict[str, Any]] = []
        for g in sorted(set(groups.tolist())):
            rows = groups == g
            reason = group_verdict(y[rows], "classification", min_group_rows, min_group_minority)
            if reason is None:
                judged.append(g)
            else:
                not_judged.append({"group": g, "rows": int(rows.sum()), "reason": reason})
        entry: dict[str, Any] = {
            "min_group_rows": min_group_rows,
            "by_group": {},
            "not_judged": not_judged,
            "demographic_parity_difference": None,
            "demographic_parity_ratio": None,
            "equalized_odds_difference": None,
        }
        keep = np.isin(groups, judged)
        yk, pk, gk = y[keep], pred[keep], groups[keep]
        if judged:
            frame = MetricFrame(
                metrics={
                    "selection_rate": selection_rate,
                    "tpr": true_positive_rate,
                    "fpr": false_positive_rate,
                    "count": lambda yt, _yp: len(yt),
                },
                y_true=yk,
                y_pred=pk,
                sensitive_features=gk,
            )
            entry["by_group"] = {
                str(g): {
                    k: (None if not np.isfinite(v) else round(float(v), 6)) for k, v in row.items()
                }
                for g, row in frame.by_group.to_dict(orient="index").items()
            }
        if len(judged) >= 2:
            for key, fn in (
                ("demographic_parity_difference", demographic_parity_difference),
                ("demographic_parity_ratio", demographic_parity_ratio),
                ("equalized_odds_difference", equalized_odds_difference),
            ):
                entry[key] = round(float(fn(yk, pk, sensitive_features=gk)), 6)
        else:
            entry["note"] = (
                f"{len(judged)} group(s) of {name!r} with >= {min_group_rows} rows and both "
                "classes; gaps between groups need two"
            )
        out[name] = entry
    return out
