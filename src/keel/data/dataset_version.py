"""What a dataset version is, as the store hands it out: its record and lineage, the result of
an ingest, and the per-column statistics kept with it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from keel.data.findings import ValidationReport
from keel.store import as_utc


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable dataset version and its lineage."""

    name: str
    version: str
    created_at: dt.datetime
    contract_sha256: str
    data_sha256: str
    quarantine_sha256: str | None
    source_uri: str
    source_sha256: str
    parents: list[str]
    transforms: list[dict[str, Any]]
    rows_in: int
    rows_versioned: int
    rows_quarantined: int
    quarantine_by_rule: dict[str, int]
    columns: dict[str, str]
    stats: dict[str, dict[str, Any]]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["ref"] = self.ref
        return out


@dataclass(frozen=True)
class IngestResult:
    """What an ingest stored, and whether the version was new."""

    version: DatasetVersion
    created: bool
    report: ValidationReport

    def to_dict(self) -> dict[str, Any]:
        v = self.version
        return {
            "name": v.name,
            "version": v.version,
            "ref": v.ref,
            "created": self.created,
            "rows_in": v.rows_in,
            "rows_versioned": v.rows_versioned,
            "rows_quarantined": v.rows_quarantined,
            "quarantine_by_rule": v.quarantine_by_rule,
            "k_anonymity": self.report.k_anonymity,
            "unseen_categories": self.report.unseen_categories,
            "contract_sha256": v.contract_sha256,
            "data_sha256": v.data_sha256,
            "source_sha256": v.source_sha256,
        }


def column_stats(frame: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per-column statistics stored with a version and shown side by side by `diff`."""
    out: dict[str, dict[str, Any]] = {}
    for name, dtype in frame.schema.items():
        s = frame.get_column(name)
        stats: dict[str, Any] = {"dtype": str(dtype), "count": s.len(), "nulls": s.null_count()}
        if dtype.is_numeric() and s.len() - s.null_count() > 0:
            stats.update(
                mean=_num(s.mean()),
                std=_num(s.std()),
                min=_num(s.min()),
                p50=_num(s.median()),
                max=_num(s.max()),
            )
        elif isinstance(dtype, pl.Datetime) and s.len() - s.null_count() > 0:
            stats.update(min=str(s.min()), max=str(s.max()))
        elif dtype == pl.String or dtype == pl.Boolean:
            counts = s.drop_nulls().value_counts(sort=True).head(5)
            stats["distinct"] = s.n_unique()
            stats["top"] = {str(r[0]): int(r[1]) for r in counts.iter_rows()}
        out[name] = stats
    return out


def _num(value: Any) -> float | None:
    return None if value is None else round(float(value), 6)


def version_from_row(row: Any) -> DatasetVersion:
    data = dict(row)
    data["created_at"] = as_utc(data["created_at"])
    return DatasetVersion(**data)
