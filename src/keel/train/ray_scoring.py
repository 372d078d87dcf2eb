"""Batch scoring on Ray Data: the chunks of `score_file`, scored by a pool of Ray actors.

The file is read once by keel's own reader (the same typing, the same errors as the local
path) and numbered; Ray Data splits it into blocks (`repartition`: its reader of one local
file makes one block) and `map_batches` hands them to an actor pool, each actor loading the
model once from the registry and scoring with `score_chunk`, the local path's own function.
Rows the contract refuses come back beside the scored ones and go to `OUTPUT.refused.csv`, in
file order, as locally.

What pays on a cluster (many cores, a large model) costs on one machine: every block crosses
the object store twice (Arrow in, Arrow out), actors take seconds to start and load, and the
scheduler is between every block. The local path stays the default (see docs/ray.md).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from keel.data import read_source
from keel.registry import ModelStore
from keel.store import ConfigError, Settings
from keel.train.scoring import ScoreResult, plan_scoring, score_chunk, write_scores

ROW = "__keel_source_row"
"""The column that carries each row's number in the file through Ray."""


class _Scorer:
    """One actor of the pool: loads the version once, scores the blocks it is given."""

    def __init__(self, settings: Settings, ref: str, columns: list[str]) -> None:
        models = ModelStore.open(settings)
        self.plan = plan_scoring(models, ref, columns)
        models.db.dispose()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)  # a table in, a frame out
        rows = frame.get_column(ROW).to_numpy()
        good, bad = score_chunk(self.plan, frame.drop(ROW), rows)
        return pa.table({"scored": [_ipc(good)], "refused": [_ipc(bad)]})


def _ipc(frame: pl.DataFrame | None) -> bytes:
    if frame is None:
        return b""
    buf = io.BytesIO()
    frame.write_ipc(buf)
    return buf.getvalue()


def _frames(parts: list[bytes]) -> list[pl.DataFrame]:
    return [pl.read_ipc(io.BytesIO(p)) for p in parts if p]


def score_file_ray(
    ref: str,
    source: str | Path,
    output: str | Path,
    *,
    models: ModelStore,
    settings: Settings,
    actors: int = 2,
    num_cpus: float = 0.5,
    chunk_rows: int = 50_000,
) -> ScoreResult:
    """`score_file` on Ray Data: `actors` actors of `num_cpus` CPUs each score blocks of at most
    `chunk_rows` rows. Joins the Ray cluster this process is connected to (`ray.init` before),
    else starts one (or joins RAY_ADDRESS)."""
    if actors < 1 or not (math.isfinite(num_cpus) and num_cpus > 0) or chunk_rows < 1:
        msg = (
            f"Ray scoring got actors={actors}, num_cpus={num_cpus}, chunk_rows={chunk_rows}; "
            "expected at least one actor, a CPU share above 0 (e.g. 0.5) and chunks of 1 row or more."
        )
        raise ConfigError(msg)
    try:
        import ray
    except ImportError as exc:
        msg = "keel predict --engine ray needs Ray Data, which is not installed: pip install 'keel[ray]'."
        raise ConfigError(msg) from exc

    frame = read_source(source).frame
    plan = plan_scoring(models, ref, frame.columns)  # fails here, not in every actor
    if not ray.is_initialized():
        ray.init(include_dashboard=False)
    total = frame.height
    numbered = frame.with_columns(pl.Series(ROW, np.arange(total, dtype=np.int64)))
    blocks = max(actors * 2, math.ceil(total / chunk_rows), 1)
    dataset = ray.data.from_arrow(numbered.to_arrow()).repartition(blocks)
    out = dataset.map_batches(
        _Scorer,
        fn_constructor_args=(settings, plan.ref, frame.columns),
        batch_format="pyarrow",
        batch_size=chunk_rows,
        concurrency=actors,
        num_cpus=num_cpus,
    )
    scored: list[bytes] = []
    refused: list[bytes] = []
    batches: Any = out.iter_batches(batch_format="pyarrow", batch_size=None)
    for batch in batches:
        scored.extend(batch.column("scored").to_pylist())
        refused.extend(batch.column("refused").to_pylist())
    return write_scores(
        plan.ref,
        total,
        _in_order(_frames(scored)),
        _in_order(_frames(refused)),
        output,
    )


def _in_order(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """Blocks come back in any order: the rows in file order, as the local path writes them."""
    if not frames:
        return []
    return [pl.concat(frames, how="diagonal").sort("source_row")]
