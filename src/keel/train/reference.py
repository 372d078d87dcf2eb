"""The reference profile of the training data: what monitoring compares live traffic with."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

_BINS = 20


def reference_profile(
    frame: pd.DataFrame, features: list[str], categorical: list[str], output: np.ndarray
) -> dict[str, Any]:
    """Per numeric feature: quantile bin edges and counts; per category: frequencies; and the
    distribution of the model's output on the same rows."""
    columns: dict[str, Any] = {}
    for f in features:
        s = frame[f]
        if f in categorical:
            counts = s.fillna("__missing__").astype(str).value_counts()
            columns[f] = {
                "kind": "categorical",
                "counts": {str(k): int(v) for k, v in counts.items()},
                "rows": len(s),
            }
        else:
            columns[f] = _numeric(np.asarray(s, dtype=float))
    out = np.asarray(output, dtype=float)
    return {
        "rows": len(frame),
        "columns": columns,
        "output": _numeric(out if out.ndim == 1 else out[:, -1]),
    }


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
