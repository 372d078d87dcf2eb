"""Drift between two data sets, with no server: exact, or through profiles as serving makes them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from keel.data import MISSING

if TYPE_CHECKING:
    from keel.data import Contract
from keel.monitor.drift import (
    DriftConfig,
    DriftReport,
    bin_counts,
    bin_edges,
    compare_frames,
    compare_profiles,
)
from keel.monitor.driftresult import DomainDrift

_FEW_VALUES = 5  # numeric columns with at most this many distinct values are compared as categories
_DOMAIN_SAMPLE = 20_000


def column_kinds(
    reference: pl.DataFrame, contract: Contract | None = None
) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns to compare: from the contract's types and roles when given
    (features, target, segment; never ids, timestamps or PII), else from the data."""
    if contract is not None:
        numeric, categorical = [], []
        for col in contract.columns:
            if (
                col.role in ("id", "timestamp", "pii", "ignore")
                or col.name not in reference.columns
            ):
                continue
            if col.type in ("int", "float") and _many_values(reference.get_column(col.name)):
                numeric.append(col.name)
            elif col.type in ("int", "float", "category", "bool", "string"):
                categorical.append(col.name)
        return numeric, categorical
    numeric, categorical = [], []
    for name, dtype in reference.schema.items():
        s = reference.get_column(name)
        if dtype.is_numeric() and _many_values(s):
            numeric.append(name)
        elif dtype.is_numeric() or dtype in (pl.String, pl.Categorical, pl.Boolean, pl.Enum):
            categorical.append(name)
    return numeric, categorical


def _many_values(s: pl.Series) -> bool:
    return bool(s.drop_nulls().head(100_000).n_unique() > _FEW_VALUES)


def typed(frame: pl.DataFrame) -> pl.DataFrame:
    """Text columns that are all numbers (CSV read as text) become floats."""
    out = []
    for name, dtype in frame.schema.items():
        s = frame.get_column(name)
        if dtype == pl.String and _looks_numeric(s):
            as_num = s.str.strip_chars().cast(pl.Float64, strict=False)
            blank = s.is_null() | (s.str.strip_chars() == "")
            if as_num.is_null().sum() == blank.sum() and (~blank).any():
                s = as_num
        out.append(s)
    return pl.DataFrame(out)


def _looks_numeric(s: pl.Series) -> bool:
    head = s.drop_nulls().head(1000)
    return (
        bool(head.len()) and head.str.strip_chars().cast(pl.Float64, strict=False).null_count() == 0
    )


def profile_of(
    frame: pl.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    edges: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A profile like serving's (counts on quantile edges of the reference, category counts)."""
    edges = dict(edges or {})
    columns: dict[str, Any] = {}
    for name in numeric:
        x = frame.get_column(name).cast(pl.Float64).to_numpy()
        if name not in edges:
            edges[name] = bin_edges(x)
        finite = x[np.isfinite(x)]
        columns[name] = {
            "kind": "numeric",
            "edges": edges[name].tolist(),
            "counts": bin_counts(x, edges[name]).tolist(),
            "std": float(finite.std()) if len(finite) else 0.0,
        }
    for name in categorical:
        counts = (
            frame.get_column(name).cast(pl.String).fill_null(MISSING).replace("", MISSING)
        ).value_counts()
        columns[name] = {
            "kind": "categorical",
            "counts": dict(zip(counts[:, 0].to_list(), counts[:, 1].to_list(), strict=True)),
        }
    return {"rows": frame.height, "columns": columns}, edges


def drift_between(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    contract: Contract | None = None,
    exact: bool = False,
    multivariate: bool = False,
    config: DriftConfig | None = None,
) -> DriftReport:
    """Drift of every comparable column of `current` against `reference`."""
    reference, current = typed(reference), typed(current)
    numeric, categorical = column_kinds(reference, contract)
    missing = [c for c in [*numeric, *categorical] if c not in current.columns]
    numeric = [c for c in numeric if c not in missing]
    categorical = [c for c in categorical if c not in missing]
    if exact:
        report = compare_frames(
            reference, current, numeric=numeric, categorical=categorical, config=config
        )
    else:
        ref_profile, edges = profile_of(reference, numeric, categorical)
        cur_profile, _ = profile_of(current, numeric, categorical, edges)
        report = compare_profiles(ref_profile, cur_profile, config)
    return dataclasses.replace(
        report,
        missing_columns=tuple(missing),
        rows=(reference.height, current.height),
        multivariate=(
            domain_classifier(reference, current, numeric, categorical) if multivariate else None
        ),
    )


def domain_classifier(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    sample: int = _DOMAIN_SAMPLE,
    seed: int = 0,
) -> DomainDrift:
    """Can a model tell the two apart? Cross-validated ROC AUC of a gradient-boosted classifier
    on a sample of each; 0.5 means no. Drifted when the AUC's lower 99.9 % bound (Hanley and
    McNeil's standard error) clears 0.5 by the margin of 0.02."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    cols = [*numeric, *categorical]
    r = reference.select(cols).sample(min(sample, reference.height), seed=seed)
    c = current.select(cols).sample(min(sample, current.height), seed=seed + 1)
    both = pl.concat([r, c], how="vertical_relaxed")
    x = both.with_columns(
        [
            pl.col(n)
            .cast(pl.String)
            .fill_null(MISSING)
            .replace("", MISSING)
            .cast(pl.Categorical)
            .to_physical()
            .clip(upper_bound=250)  # the classifier takes at most 255 categories
            for n in categorical
        ]
        + [pl.col(n).cast(pl.Float64) for n in numeric]
    ).to_numpy()
    y = np.r_[np.zeros(r.height), np.ones(c.height)]
    cat_mask = [n in categorical for n in cols]
    model = HistGradientBoostingClassifier(
        max_iter=100, categorical_features=cat_mask if any(cat_mask) else None, random_state=seed
    )
    proba = cross_val_predict(model, x, y, cv=3, method="predict_proba")[:, 1]
    auc = float(roc_auc_score(y, proba))
    n1, n2 = r.height, c.height
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = float(
        np.sqrt((auc * (1 - auc) + (n1 - 1) * (q1 - auc**2) + (n2 - 1) * (q2 - auc**2)) / (n1 * n2))
    )
    lower = auc - 3.29 * se
    return DomainDrift(
        auc=auc, auc_lower=lower, threshold=0.52, drifted=bool(lower > 0.52), rows=(n1, n2)
    )
