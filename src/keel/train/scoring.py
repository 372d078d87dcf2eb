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

from keel.data import Contract, ValidationReport, read_source, validate
from keel.registry import ModelStore
from keel.train.features import to_pandas
from keel.train.report import report_of

ProgressCallback = Callable[[int, int], None]


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


@dataclass(frozen=True, slots=True)
class ScoringPlan:
    """What scoring a file with one version needs: the model, its input contract (the
    features and id columns of its contract; other columns pass through unchecked), the
    features in order and the classes. Shared by the local path and Ray's actors."""

    ref: str
    pipeline: Any
    contract: Contract
    inputs: Contract
    features: list[str]
    classes: list[str]


def plan_scoring(models: ModelStore, ref: str, columns: list[str]) -> ScoringPlan:
    """Load `ref` and its input contract for a file with these columns."""
    version, pipeline = models.load(ref)
    contract = models.contract(version.ref)
    ev = report_of(version)
    features = list(ev.features)
    keep = set(features) | {c.name for c in contract.with_role("id")}
    inputs = replace(
        contract,
        columns=tuple(c for c in contract.columns if c.name in keep),
        extra_columns="drop",
        duplicate_rows="allow",
        max_bad_share=1.0,
    )
    missing_id = [c.name for c in contract.with_role("id") if c.name not in columns]
    if missing_id:
        inputs = replace(
            inputs, columns=tuple(c for c in inputs.columns if c.name not in missing_id)
        )
    return ScoringPlan(version.ref, pipeline, contract, inputs, features, list(ev.classes))


def score_chunk(
    plan: ScoringPlan, chunk: pl.DataFrame, source_rows: np.ndarray
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """(scored, refused) rows of one chunk; `source_rows`: each row's number in the file."""
    report = validate(chunk, plan.inputs)
    bad = set(report.bad_rows.tolist())
    good_idx = np.array([i for i in range(chunk.height) if i not in bad], dtype=np.int64)
    refused = _refused(chunk, report, source_rows) if bad else None
    if not len(good_idx):
        return None, refused
    clean = report.cleaned[good_idx.tolist()]
    out = pl.DataFrame({"source_row": source_rows[good_idx].astype(np.int64)})
    for c in plan.contract.with_role("id"):
        if c.name in clean.columns:
            out = out.with_columns(clean.get_column(c.name))
    x = to_pandas(clean, plan.features, plan.inputs)
    return out.with_columns(_predictions(plan.pipeline, x, plan.classes)), refused


def score_file(
    ref: str,
    source: str | Path,
    output: Path,
    *,
    models: ModelStore,
    chunk_rows: int = 50_000,
    on_progress: ProgressCallback | None = None,
) -> ScoreResult:
    """Score `source`; write predictions to `output` and refused rows beside it (`*.refused.csv`)."""
    frame = read_source(source).frame
    plan = plan_scoring(models, ref, frame.columns)
    scored: list[pl.DataFrame] = []
    refused: list[pl.DataFrame] = []
    total = frame.height
    for start in range(0, max(total, 1), chunk_rows):
        chunk = frame.slice(start, chunk_rows)
        good, bad = score_chunk(plan, chunk, np.arange(start, start + chunk.height))
        scored.extend([good] if good is not None else [])
        refused.extend([bad] if bad is not None else [])
        if on_progress:
            on_progress(min(start + chunk_rows, total), total)
    return write_scores(plan.ref, total, scored, refused, output)


def write_scores(
    ref: str, total: int, scored: list[pl.DataFrame], refused: list[pl.DataFrame], output: Path
) -> ScoreResult:
    """Write scored rows to `output` and refused ones beside it; what was done."""
    result = pl.concat(scored, how="diagonal") if scored else pl.DataFrame({"source_row": []})
    _write(result, output)
    side = output.with_name(output.stem + ".refused.csv")
    n_refused = sum(r.height for r in refused)
    if refused:
        _write(pl.concat(refused, how="diagonal"), side)
    return ScoreResult(
        model=ref,
        rows_in=total,
        rows_scored=result.height,
        rows_refused=n_refused,
        output=str(output),
        refused_output=str(side) if refused else None,
    )


def _refused(
    chunk: pl.DataFrame, report: ValidationReport, source_rows: np.ndarray
) -> pl.DataFrame:
    """The refused rows of a chunk as text, with their source row, first rule and column."""
    rows, rules, cols = report.first_rules()
    return (
        chunk.select(pl.all().cast(pl.String))
        .gather(rows)
        .with_columns(
            pl.Series("source_row", source_rows[rows], dtype=pl.Int64),
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
