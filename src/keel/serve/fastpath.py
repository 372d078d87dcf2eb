"""A NumPy forward pass for keel's own preprocessing, so a served model skips pandas.

Measured (docs/benchmarks.md): scikit-learn's Pipeline + ColumnTransformer costs ~7 ms per call
on this machine whatever the batch size, almost all of it pandas and column bookkeeping; the
estimator itself answers a 64-row batch in well under a millisecond. keel builds the
preprocessing itself (`keel.train.features.build_pipeline`: median imputer and scaler for
numbers, "" -> `__missing__` and one-hot for categories), so it can replay the fitted steps
with NumPy and hand the estimator a plain array. The fast path is used only if it reproduces
the pipeline's outputs exactly on sample rows at load; otherwise the pipeline answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Forward = Callable[[list[dict[str, Any]]], np.ndarray]


def compile_forward(
    pipeline: Any, features: list[str], categorical: set[str]
) -> tuple[Forward, Any] | None:
    """A function from cleaned records to the estimator's input array, and the estimator;
    None when the pipeline is not one keel built."""
    try:
        prep, model = pipeline.named_steps["prep"], pipeline.steps[-1][1]
        parts = {
            name: (steps, cols)
            for name, steps, cols in prep.transformers_
            if name in ("num", "cat")
        }
    except (AttributeError, KeyError, ValueError):
        return None
    if any(name not in ("num", "cat", "remainder") for name, *_ in prep.transformers_):
        return None
    num_cols: list[str] = list(parts["num"][1]) if "num" in parts else []
    cat_cols: list[str] = list(parts["cat"][1]) if "cat" in parts else []
    if sorted(num_cols + cat_cols) != sorted(features):
        return None
    fill = mean = scale = None
    if num_cols:
        num = parts["num"][0]
        fill = np.asarray(num.named_steps["fill"].statistics_, dtype=np.float64)
        scaler = num.named_steps.get("scale")
        if scaler is not None:
            mean = np.asarray(scaler.mean_) if scaler.with_mean else None
            scale = np.asarray(scaler.scale_) if scaler.with_std else None
    lookups: list[tuple[dict[str, int], int]] = []
    width = 0
    if cat_cols:
        encoder = parts["cat"][0].named_steps["onehot"]
        for cats in encoder.categories_:
            lookups.append(({str(c): i for i, c in enumerate(cats)}, width))
            width += len(cats)
    n_num = len(num_cols)

    def forward(rows: list[dict[str, Any]]) -> np.ndarray:
        n = len(rows)
        out = np.zeros((n, n_num + width), dtype=np.float64)
        if n_num:
            block = np.array(
                [[np.nan if r[c] is None else r[c] for c in num_cols] for r in rows],
                dtype=np.float32,
            ).astype(np.float64)
            missing = np.isnan(block)
            if missing.any() and fill is not None:
                block = np.where(missing, fill, block)
            if mean is not None:
                block = block - mean
            if scale is not None:
                block = block / scale
            out[:, :n_num] = block
        for j, col in enumerate(cat_cols):
            lookup, offset = lookups[j]
            for i, r in enumerate(rows):
                v = r[col]
                k = lookup.get("__missing__" if v is None or v == "" else str(v))
                if k is not None:
                    out[i, n_num + offset + k] = 1.0
        return out

    return forward, model
