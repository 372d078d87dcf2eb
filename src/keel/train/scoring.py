"""Batch scoring of a CSV or Parquet file with a registered model, in chunks.

Each row is checked against the model's input columns in its contract first; refused rows go
to a side file with the rule and the reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from keel.data import ValidationReport, read_source, validate
from keel.registry import ModelStore
from keel.train.features import to_pandas
from keel.train.report import report_of

ProgressCallback = Callable[[int, int], None]
ChunkCallback = Callable[[pl.DataFrame], None]
"""Called with each chunk's scores as they are made (e.g. `SqlSink.write`)."""


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a batch scoring did: rows in, scored and refused, and where they went."""

    model: str
    rows_in: int
    rows_scored: int
    rows_refused: int
    output: str
    refused_output: str | None

    def __post_init__(self) -> None:
        counts = (self.rows_in, self.rows_scored, self.rows_refused)
        if self.rows_in != self.rows_scored + self.rows_refused or min(counts) < 0:
            msg = f"ScoreResult counts {counts} (in, scored, refused); expected in = scored + refused, none negative."
            raise ValueError(msg)

    def to_json(self) -> dict[str, Any]:
        """The JSON of `keel predict --json`."""
        return {
            "model": self.model,
            "rows_in": self.rows_in,
            "rows_scored": self.rows_scored,
            "rows_refused": self.rows_refused,
            "output": self.output,
            "refused_output": self.refused_output,
        }


def score_file(
    ref: str,
    source: str | Path,
    output: Path,
    *,
    models: ModelStore,
    chunk_rows: int = 50_000,
    on_progress: ProgressCallback | None = None,
    on_chunk: ChunkCallback | None = None,
) -> ScoreResult:
    """Score `source`; write predictions to `output` and refused rows beside it (`*.refused.csv`)."""
    version, pipeline = models.load(ref)
    contract = models.contract(version.ref)
    ev = report_of(version)
    features = list(ev.features)
    keep = set(features) | {c.name for c in contract.with_role("id")}
    # the model's input contract: its features (and id), other columns pass through unchecked
    inputs = replace(
        contract,
        columns=tuple(c for c in contract.columns if c.name in keep),
        extra_columns="drop",
        duplicate_rows="allow",
        max_bad_share=1.0,
    )
    frame = read_source(source).frame
    missing_id = [c.name for c in contract.with_role("id") if c.name not in frame.columns]
    if missing_id:
        inputs = replace(
            inputs, columns=tuple(c for c in inputs.columns if c.name not in missing_id)
        )
    scored: list[pl.DataFrame] = []
    refused: list[pl.DataFrame] = []
    total = frame.height
    for start in range(0, max(total, 1), chunk_rows):
        chunk = frame.slice(start, chunk_rows)
        report = validate(chunk, inputs)
        bad = set(report.bad_rows.tolist())
        good_idx = np.array([i for i in range(chunk.height) if i not in bad], dtype=np.int64)
        if bad:
            refused.append(_refused(chunk, report, start))
        if len(good_idx):
            clean = report.cleaned[good_idx.tolist()]
            out = pl.DataFrame({"source_row": good_idx + start})
            for c in contract.with_role("id"):
                if c.name in clean.columns:
                    out = out.with_columns(clean.get_column(c.name))
            x = to_pandas(clean, features, inputs)
            scored.append(out.with_columns(_predictions(pipeline, x, list(ev.classes))))
            if on_chunk:
                on_chunk(scored[-1])
        if on_progress:
            on_progress(min(start + chunk_rows, total), total)
    result = pl.concat(scored, how="diagonal") if scored else pl.DataFrame({"source_row": []})
    _write(result, output)
    side = output.with_name(output.stem + ".refused.csv")
    n_refused = sum(r.height for r in refused)
    if refused:
        _write(pl.concat(refused, how="diagonal"), side)
    return ScoreResult(
        model=version.ref,
        rows_in=total,
        rows_scored=result.height,
        rows_refused=n_refused,
        output=str(output),
        refused_output=str(side) if refused else None,
    )


def _refused(chunk: pl.DataFrame, report: ValidationReport, start: int) -> pl.DataFrame:
    """The refused rows of a chunk as text, with their source row, first rule and column."""
    rows, rules, cols = report.first_rules()
    return (
        chunk.select(pl.all().cast(pl.String))
        .gather(rows)
        .with_columns(
            pl.Series("source_row", rows + start, dtype=pl.Int64),
            pl.Series("rule", rules, dtype=pl.String),
            pl.Series("column", cols, dtype=pl.String),
        )
    )


def _predictions(pipeline: Any, x: pd.DataFrame, classes: list[str]) -> list[pl.Series]:
    """The prediction column (and a probability column per class for a classifier)."""
    if hasattr(pipeline, "predict_proba") and classes:
        proba = pipeline.predict_proba(x)
        return [
            pl.Series("prediction", [classes[i] for i in proba.argmax(axis=1)], dtype=pl.String),
            *[pl.Series(f"p_{c}", proba[:, i]) for i, c in enumerate(classes)],
        ]
    return [pl.Series("prediction", pipeline.predict(x).astype(float))]


def _write(frame: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.write_parquet(tmp)
    else:
        frame.write_csv(tmp)
    tmp.replace(path)
