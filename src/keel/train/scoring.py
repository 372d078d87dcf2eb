"""Batch scoring of a CSV or Parquet file with a registered model, in chunks.

Each row is checked against the model's input columns in its contract first; refused rows go
to a side file with the rule and the reason, never silently dropped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from keel.data import Contract, ValidationReport, read_source, validate
from keel.registry import ModelStore
from keel.store import SourceError
from keel.train.features import to_pandas
from keel.train.report import report_of

ProgressCallback = Callable[[int, int], None]
ChunkCallback = Callable[[pl.DataFrame], None]


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
    output: str | Path,
    *,
    models: ModelStore,
    chunk_rows: int = 50_000,
    on_progress: ProgressCallback | None = None,
    on_chunk: ChunkCallback | None = None,
) -> ScoreResult:
    """Score `source`; write predictions to `output` and refused rows beside it (`*.refused.csv`);
    `on_chunk` is handed each chunk's scored rows as they are written (`--to-sql`).

    `source` and `output` are local paths or fsspec URLs (`s3://bucket/x.parquet`). A Parquet
    source is read `chunk_rows` at a time and every output is written as it goes, so memory
    holds one chunk (and one of the source's row groups), whatever the file's size; a CSV
    source is read whole. A local output appears whole, by rename; on an object store an
    output is one upload that becomes visible only when it completes."""
    chunks, total, columns = _chunks(source, chunk_rows)
    plan = plan_scoring(models, ref, columns)
    out = str(output)
    side = _side_name(out)
    scored, refused = _ChunkWriter(out), _ChunkWriter(side)
    try:
        start = 0
        for chunk in chunks:
            good, bad = score_chunk(plan, chunk, np.arange(start, start + chunk.height))
            if bad is not None:
                refused.write(bad)
            if good is not None:
                scored.write(good)
                if on_chunk:
                    on_chunk(good)
            start += chunk.height
            if on_progress:
                on_progress(start, total)
        _finish(scored, refused)
    except BaseException:
        scored.abort()
        refused.abort()
        raise
    return ScoreResult(
        model=plan.ref,
        rows_in=start,
        rows_scored=scored.rows,
        rows_refused=refused.rows,
        output=out,
        refused_output=side if refused.rows else None,
    )


def write_scores(
    ref: str,
    total: int,
    scored: list[pl.DataFrame],
    refused: list[pl.DataFrame],
    output: str | Path,
) -> ScoreResult:
    """Write scored rows to `output` and refused ones beside it, as `score_file` does (Ray's
    path scores elsewhere and writes here); what was done."""
    out = str(output)
    side = _side_name(out)
    good, bad = _ChunkWriter(out), _ChunkWriter(side)
    try:
        for frame in scored:
            good.write(frame)
        for frame in refused:
            bad.write(frame)
        _finish(good, bad)
    except BaseException:
        good.abort()
        bad.abort()
        raise
    return ScoreResult(
        model=ref,
        rows_in=total,
        rows_scored=good.rows,
        rows_refused=bad.rows,
        output=out,
        refused_output=side if bad.rows else None,
    )


def _finish(scored: _ChunkWriter, refused: _ChunkWriter) -> None:
    """Close both outputs; a file with no scored row still gets its (empty) output."""
    if not scored.rows:
        scored.write(pl.DataFrame({"source_row": []}, schema={"source_row": pl.Int64}))
    scored.close()
    refused.close()


def _side_name(output: str) -> str:
    head, _, name = output.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}.refused.csv" if head else f"{stem}.refused.csv"


def _chunks(source: str | Path, chunk_rows: int) -> tuple[Iterator[pl.DataFrame], int, list[str]]:
    """The source's rows `chunk_rows` at a time, their count and the column names. Parquet
    (local or remote) is streamed by record batches; a CSV (local, or downloaded) is read
    whole by `read_source`, which knows its encodings and headers."""
    text = str(source)
    suffix = "." + text.rsplit(".", 1)[-1].lower() if "." in text.rsplit("/", 1)[-1] else ""
    if "://" not in text and suffix not in (".parquet", ".pq"):
        frame = read_source(source).frame
        slices = (frame.slice(i, chunk_rows) for i in range(0, frame.height, chunk_rows))
        return slices, frame.height, frame.columns
    if suffix not in (".parquet", ".pq"):
        msg = f"Data source {text!r} is a URL of a {suffix or 'suffix-less'} file; expected a Parquet file (.parquet, .pq), which is streamed in chunks. Convert it, or copy a CSV to local disk first."
        raise SourceError(msg)
    import fsspec
    import pyarrow.parquet as pq

    try:
        fs, path = fsspec.core.url_to_fs(text)
        handle = fs.open(path, "rb")
        reader = pq.ParquetFile(handle)
    except (OSError, ValueError) as exc:
        msg = f"Data file {text!r} is not a readable Parquet file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); check the path and the credentials."
        raise SourceError(msg) from exc

    def batches() -> Iterator[pl.DataFrame]:
        with handle:
            for batch in reader.iter_batches(batch_size=chunk_rows):
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                yield frame

    return batches(), reader.metadata.num_rows, list(reader.schema_arrow.names)


class _ChunkWriter:
    """Frames written one after another to one Parquet or CSV file, local or remote: a local
    file under a temporary name renamed at `close`; a remote one as one upload."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.rows = 0
        self._parquet = target.lower().endswith((".parquet", ".pq"))
        self._local = "://" not in target or target.startswith("file://")
        self._path = target.removeprefix("file://")
        self._handle: Any = None
        self._writer: Any = None
        self._schema: pl.Schema | None = None

    def write(self, frame: pl.DataFrame) -> None:
        if self._handle is None:
            self._open(frame)
        assert self._schema is not None
        frame = frame.select(list(self._schema)).cast(self._schema)
        if self._parquet:
            self._writer.write_table(frame.to_arrow())
        else:
            frame.write_csv(self._handle, include_header=False)
        self.rows += frame.height

    def _open(self, frame: pl.DataFrame) -> None:
        import fsspec
        import pyarrow.parquet as pq

        self._schema = frame.schema
        if self._local:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(f"{self._path}.tmp", "wb")  # noqa: SIM115 (closed in close)
        else:
            self._handle = fsspec.open(self.target, "wb").open()
        if self._parquet:
            self._writer = pq.ParquetWriter(self._handle, frame.to_arrow().schema)
        else:
            frame.head(0).write_csv(self._handle)

    def close(self) -> None:
        if self._handle is None:
            return
        if self._writer is not None:
            self._writer.close()
        self._handle.close()
        if self._local:
            os.replace(f"{self._path}.tmp", self._path)

    def abort(self) -> None:
        """Drop what was written (an error mid-way): no half output is left behind."""
        if self._handle is None:
            return
        if self._local:
            with contextlib.suppress(Exception):
                self._handle.close()
            with contextlib.suppress(OSError):
                os.unlink(f"{self._path}.tmp")
        else:
            with contextlib.suppress(Exception):
                self._handle.discard()  # an unfinished multipart upload is cancelled


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
