"""The reference profile of the training data: what monitoring compares live traffic with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from keel.data import MISSING

_BINS = 20
_SCORE_BINS = 50  # the same bins as serving's window profiles (keel.monitor.profiles)


def reference_profile(
    frame: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    output: np.ndarray,
    holdout_output: np.ndarray | None = None,
) -> dict[str, Any]:
    """Per numeric feature: quantile bin edges and counts; per category: frequencies; and the
    distribution of the model's output on the same rows. For a binary classifier, also the
    histogram of its holdout scores on 50 equal bins of [0, 1] (what performance estimation
    compares windows with: training scores would flatter the model)."""
    columns: dict[str, Any] = {}
    for f in features:
        s = frame[f]
        if f in categorical:
            # the model's input carries a missing category as "" (to_pandas), a raw frame as
            # None or NaN: all are counted as MISSING, the key window profiles count them under
            values = s.astype(object).where(s.notna(), MISSING).astype(str).replace("", MISSING)
            counts = values.value_counts()
            columns[f] = {
                "kind": "categorical",
                "counts": {str(k): int(v) for k, v in counts.items()},
                "rows": len(s),
            }
        else:
            columns[f] = _numeric(np.asarray(s, dtype=float))
    out = np.asarray(output, dtype=float)
    profile: dict[str, Any] = {
        "rows": len(frame),
        "columns": columns,
        "output": _numeric(out if out.ndim == 1 else out[:, -1]),
    }
    if holdout_output is not None and holdout_output.ndim == 2 and holdout_output.shape[1] == 2:
        idx = np.clip((holdout_output[:, 1] * _SCORE_BINS).astype(int), 0, _SCORE_BINS - 1)
        profile["output"]["scores"] = np.bincount(idx, minlength=_SCORE_BINS).tolist()
    return profile


def _numeric(x: np.ndarray) -> dict[str, Any]:
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return {"kind": "numeric", "edges": [], "counts": [], "nulls": len(x)}
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, _BINS + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0] + 1e-9])
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "nulls": int(len(x) - len(finite)),
        "mean": float(finite.mean()),
        "std": float(finite.std()),
    }
