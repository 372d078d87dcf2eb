"""Drift between two data sets on Ray Data: the current set profiled per block, merged by addition.

The reference is profiled here as `drift_between` does (its quantile bin edges need all of
its rows, and its standard deviation is what the binned statistics divide by). The current
set is typed here too (a CSV column becomes numeric only if every row is a number: a decision
on the whole column), then split into blocks; each block is profiled on the reference's edges
by `profile_of`, the local path's own function, and the blocks' counts are added
(`keel.monitor.merge`). Counts on fixed edges and category counts add exactly, so the report
is the local one, which the tests check. Exact mode (every row, sorted) is not offered here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import polars as pl

from keel.monitor.drift import DriftConfig, DriftReport, compare_profiles
from keel.monitor.offline import column_kinds, domain_classifier, profile_of, typed
from keel.monitor.profiles import merge
from keel.store import ConfigError

if TYPE_CHECKING:
    from keel.data import Contract


def block_profile(
    block: pl.DataFrame,
    numeric: list[str],
    categorical: list[str],
    edges: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The additive part of `profile_of` for one block: rows, bin counts, category counts
    (the current set's standard deviation does not add, and no statistic reads it)."""
    profile, _ = profile_of(block, numeric, categorical, edges)
    for column in profile["columns"].values():
        column.pop("std", None)
    return profile


def _profile_batch(
    batch: Any, numeric: list[str], categorical: list[str], edges: dict[str, list[float]]
) -> Any:
    import pyarrow as pa

    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)  # a table in, a frame out
    arrays = {k: np.asarray(v, dtype=float) for k, v in edges.items()}
    profile = block_profile(frame, numeric, categorical, arrays)
    return pa.table({"profile": [orjson.dumps(profile)]})


def drift_between_ray(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    contract: Contract | None = None,
    multivariate: bool = False,
    config: DriftConfig | None = None,
    blocks: int = 4,
    num_cpus: float = 0.5,
    concurrency: int = 2,
) -> DriftReport:
    """`drift_between` (profile mode) with the current set profiled on Ray Data in `blocks`
    blocks, by at most `concurrency` tasks at once of `num_cpus` CPUs each (each new worker
    imports keel, Polars and SciPy: measured, eight of them at once took half a minute on two
    loaded cores). Joins the Ray cluster this process is connected
    to, else starts one (or joins RAY_ADDRESS)."""
    if blocks < 1 or concurrency < 1 or not (math.isfinite(num_cpus) and num_cpus > 0):
        msg = f"Ray drift got blocks={blocks}, concurrency={concurrency}, num_cpus={num_cpus}; expected 1 block or more, 1 task or more at once and a CPU share above 0 (e.g. 0.5)."
        raise ConfigError(msg)
    try:
        import ray
    except ImportError as exc:
        msg = "keel monitor drift --engine ray needs Ray Data, which is not installed: pip install 'keel[ray]'."
        raise ConfigError(msg) from exc

    reference, current = typed(reference), typed(current)
    numeric, categorical = column_kinds(reference, contract)
    missing = [c for c in [*numeric, *categorical] if c not in current.columns]
    numeric = [c for c in numeric if c not in missing]
    categorical = [c for c in categorical if c not in missing]
    ref_profile, edges = profile_of(reference, numeric, categorical)
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    dataset = ray.data.from_arrow(current.select([*numeric, *categorical]).to_arrow())
    profile_batch: Any = _profile_batch  # Ray's stub takes one-argument functions only
    profiles = dataset.repartition(blocks).map_batches(
        profile_batch,
        fn_kwargs={
            "numeric": numeric,
            "categorical": categorical,
            "edges": {k: v.tolist() for k, v in edges.items()},
        },
        batch_format="pyarrow",
        batch_size=None,
        num_cpus=num_cpus,
        concurrency=concurrency,
    )
    merged: dict[str, Any] = block_profile(current.clear(), numeric, categorical, edges)
    batches: Any = profiles.iter_batches(batch_format="pyarrow", batch_size=None)
    for batch in batches:
        for raw in batch.column("profile").to_pylist():
            merged = merge(merged, orjson.loads(raw))
    report = compare_profiles(ref_profile, merged, config)
    return dataclasses.replace(
        report,
        missing_columns=tuple(missing),
        rows=(reference.height, current.height),
        multivariate=(
            domain_classifier(reference, current, numeric, categorical) if multivariate else None
        ),
    )
