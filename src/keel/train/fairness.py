"""Fairness per sensitive column, with fairlearn's MetricFrame."""

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


def fairness_report(
    y: np.ndarray, pred: np.ndarray, sensitive: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Per sensitive column: selection rate, TPR and FPR per group, and the gaps between groups.

    `y` and `pred` are 0/1 (binary classification); groups are the column's values.
    """
    out: dict[str, Any] = {}
    for name, groups in sensitive.items():
        groups = np.asarray([str(g) for g in groups], dtype=object)
        frame = MetricFrame(
            metrics={
                "selection_rate": selection_rate,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "count": lambda yt, _yp: len(yt),
            },
            y_true=y,
            y_pred=pred,
            sensitive_features=groups,
        )
        by_group = {
            str(g): {
                k: (None if not np.isfinite(v) else round(float(v), 6)) for k, v in row.items()
            }
            for g, row in frame.by_group.to_dict(orient="index").items()
        }
        out[name] = {
            "by_group": by_group,
            "demographic_parity_difference": round(
                float(demographic_parity_difference(y, pred, sensitive_features=groups)), 6
            ),
            "demographic_parity_ratio": round(
                float(demographic_parity_ratio(y, pred, sensitive_features=groups)), 6
            ),
            "equalized_odds_difference": round(
                float(equalized_odds_difference(y, pred, sensitive_features=groups)), 6
            ),
        }
    return out
