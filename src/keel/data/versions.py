"""Dataset versions: immutable, content-addressed data with its contract, lineage and quarantine.

The version id is the sha256 of the contract and the stored data, so the same rows under the
same contract always get the same id. Ingest writes the data and the quarantine as
content-addressed objects first and the database row last, in one transaction: a failure at any
step leaves no version behind, and the objects it wrote are invisible and harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa

from keel.data.anonymization import anonymize_frame, k_anonymity
from keel.data.contract import Contract, contract_from_yaml, load_contract
from keel.data.dataset_version import DatasetVersion, IngestResult, column_stats, version_from_row
from keel.data.findings import Failure, ValidationReport
from keel.data.quarantine import good_rows, id_failure, quarantine_frame, transforms
from keel.data.sources import TEXT_SUFFIXES, frame_to_parquet, read_source
from keel.data.validation import _validate
from keel.store import (
    ArtifactStore,
    Database,
    DatasetNotFoundError,
    SchemaError,
    Settings,
    ValidationFailedError,
    load_settings,
    tables as t,
)

StepCallback = Callable[[str], None]


class DatasetStore:
    """Dataset versions kept in a metadata database and an artifact store.

    Args:
        db: the metadata database.
        artifacts: where data and quarantine files go.
        secret_key: the key for pseudonymization.
    """

    def __init__(self, db: Database, artifacts: ArtifactStore, secret_key: bytes) -> None:
        self.db = db
        self.artifacts = artifacts
        self._key = secret_key

    @classmethod
    def open(cls, settings: Settings | None = None) -> DatasetStore:
        """The store named by settings (`keel.toml`, `KEEL_*`), made if it does not exist."""
        settings = settings or load_settings()
        return cls(
            Database.open(settings),
            ArtifactStore(settings.resolved_artifacts),
            settings.resolved_secret_key(),
        )

    # ---- writing -------------------------------------------------------------------------

    def check(
        self,
        source: Any,
        contract: Contract,
        *,
        encoding: str = "utf-8",
        header: bool | None = None,
        names: list[str] | None = None,
        name: str | None = None,
    ) -> ValidationReport:
        """Validate a source as ingest would, including k-anonymity after anonymization.

        Args:
            header, names: how to read a CSV source (default: as the contract says; a file
                without a header is read with the contract's column names, in order).
            name: the dataset the source would be ingested into; with it, ids already stored
                in its earlier versions are refused as ingest would (`unique_across_versions`).
        """
        frame = _read(source, contract, encoding, header, names).frame
        report = _validate(frame, contract)
        if name is not None:
            report = self._refuse_known_ids(report, contract, name)
        # k-anonymity needs only the quasi-identifiers, anonymized as ingest would store them
        qis = [q for q in contract.quasi_identifiers if q in report.cleaned.columns]
        if qis:
            anonymized = anonymize_frame(good_rows(report).select(qis), contract, self._key)
            report = report.with_k_anonymity(k_anonymity(anonymized, qis))
        return report

    def ingest(
        self,
        source: Any,
        contract: Contract,
        name: str,
        *,
        parents: list[str] | tuple[str, ...] = (),
        encoding: str = "utf-8",
        actor: str = "user",
        on_step: StepCallback | None = None,
        header: bool | None = None,
        names: list[str] | None = None,
    ) -> IngestResult:
        """Check, clean and anonymize a source; store good rows as a version, bad rows in quarantine.

        Rows in = rows versioned + rows quarantined, always.

        Raises:
            SourceError: the source cannot be read.
            SchemaError: columns are missing or unexpected, or of a type the contract cannot take.
            ValidationFailedError: the share of refused rows is over the contract's threshold.
        """
        step = on_step or (lambda _s: None)
        _check_name(name)
        for parent in parents:
            self.get(parent)
        step("read")
        src = _read(source, contract, encoding, header, names)
        raw = src.frame
        step("validate")
        report = _validate(raw, contract)
        report = self._refuse_known_ids(report, contract, name)
        _refuse_unfit(src.uri, report, contract)
        step("anonymize")
        good = anonymize_frame(good_rows(report), contract, self._key)
        report = report.with_k_anonymity(k_anonymity(good, contract.quasi_identifiers))
        first = report.first_rules()
        quarantine = quarantine_frame(raw, report, first)
        step("store")
        data_bytes = frame_to_parquet(good)
        data_sha = hashlib.sha256(data_bytes).hexdigest()
        version_id = hashlib.sha256(f"{contract.sha256}:{data_sha}".encode()).hexdigest()[:12]
        existing = self._find(name, version_id)
        if existing is not None:
            return IngestResult(existing, False, report)
        data_obj = self.artifacts.put_bytes(data_bytes)
        q_obj = (
            self.artifacts.put_bytes(frame_to_parquet(quarantine)) if quarantine.height else None
        )
        rows, rules, _cols = first
        version = DatasetVersion(
            name=name,
            version=version_id,
            created_at=self.db.clock.now(),
            contract_sha256=contract.sha256,
            data_sha256=data_obj.sha256,
            quarantine_sha256=q_obj.sha256 if q_obj else None,
            source_uri=src.uri,
            source_sha256=src.sha256,
            parents=list(parents),
            transforms=transforms(raw, contract),
            rows_in=report.rows,
            rows_versioned=good.height,
            rows_quarantined=len(rows),
            quarantine_by_rule={r: rules.count(r) for r in dict.fromkeys(rules)},
            columns={c: str(d) for c, d in good.schema.items()},
            stats=column_stats(good),
        )
        if version.rows_in != version.rows_versioned + version.rows_quarantined:  # pragma: no cover
            msg = f"internal: {version.rows_in} rows in, {version.rows_versioned} + {version.rows_quarantined} out"
            raise RuntimeError(msg)
        try:
            self._insert(version, contract, actor)
        except sa.exc.IntegrityError:
            # another process stored the same content at the same moment: same id, same data
            again = self._find(name, version_id)
            if again is None:
                raise
            return IngestResult(again, False, report)
        return IngestResult(version, True, report)

    def _insert(self, version: DatasetVersion, contract: Contract, actor: str) -> None:
        """The version's row, its contract and its audit event, in one transaction."""
        with self.db.begin() as conn:
            save_contract(conn, contract, version.created_at)
            row = version.to_dict()
            row.pop("ref")
            row["created_at"] = version.created_at
            conn.execute(t.dataset_versions.insert().values(**row))
            self.db.record_event(
                conn,
                actor=actor,
                action="dataset.ingest",
                subject=f"dataset:{version.ref}",
                details={
                    "rows_in": version.rows_in,
                    "rows_versioned": version.rows_versioned,
                    "rows_quarantined": version.rows_quarantined,
                    "source_sha256": version.source_sha256,
                },
            )

    def _refuse_known_ids(
        self, report: ValidationReport, contract: Contract, name: str
    ) -> ValidationReport:
        """The report with rows whose id is stored in an earlier version of `name` refused,
        under the rule `duplicate_id_across_versions`, one failure per earlier version that
        holds them."""
        cols = [
            c
            for c in contract.columns
            if c.unique_across_versions and c.name in report.cleaned.columns
        ]
        if not cols:
            return report
        try:
            earlier = self.versions(name)
        except DatasetNotFoundError:
            return report  # the first version: nothing to repeat
        found: list[Failure] = []
        for col in cols:
            ids = report.cleaned.select(col.name)
            if col.anonymize is not None and col.anonymize.method != "drop":
                # stored ids are anonymized: compare like with like
                ids = anonymize_frame(ids, contract, self._key)
            values = ids.get_column(col.name)
            taken = np.zeros(report.rows, dtype=bool)
            for v in earlier:  # newest first: a row is attributed to the newest that holds it
                stored = self.load(v.ref)
                if col.name not in stored.columns:
                    continue
                known = stored.get_column(col.name)
                if known.dtype != values.dtype:
                    known = known.cast(values.dtype, strict=False)
                hit = (
                    values.is_in(known.drop_nulls().implode()).fill_null(False).to_numpy() & ~taken
                )
                if hit.any():
                    taken |= hit
                    rows = np.flatnonzero(hit).astype(np.int64)
                    found.append(
                        id_failure(report, col.name, rows, f"an id not already in {v.ref}")
                    )
        return report.with_failures(found)

    # ---- reading -------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.dataset_versions.c.name).distinct().order_by(t.dataset_versions.c.name)
            )
            return [r[0] for r in rows]

    def versions(self, name: str) -> list[DatasetVersion]:
        """Every version of a dataset, newest first."""
        dv = t.dataset_versions
        with self.db.engine.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(dv).where(dv.c.name == name).order_by(dv.c.created_at.desc())
                )
                .mappings()
                .all()
            )
        if not rows:
            known = self.names()
            msg = f"No dataset named {name!r}; datasets now: {known or 'none'}. Ingest one with: keel data ingest SOURCE --contract C --name {name}"
            raise DatasetNotFoundError(msg)
        return [version_from_row(r) for r in rows]

    def get(self, ref: str) -> DatasetVersion:
        """A version by `NAME@ID` (an unambiguous id prefix of 4+ characters will do),
        `NAME@latest` or `NAME` (the newest)."""
        name, _, vid = ref.partition("@")
        versions = self.versions(name)
        if not vid or vid == "latest":
            return versions[0]
        hits = [v for v in versions if v.version.startswith(vid)] if len(vid) >= 4 else []
        if len(hits) == 1:
            return hits[0]
        shown = ", ".join(v.version for v in versions[:10])
        why = "matches several versions" if hits else "is not a version of it"
        msg = f"Dataset {name!r}: {vid!r} {why}; versions (newest first): {shown}."
        raise DatasetNotFoundError(msg)

    def load(self, ref: str) -> pl.DataFrame:
        """The rows of a version (checked against their hash)."""
        v = self.get(ref)
        return pl.read_parquet(io.BytesIO(self.artifacts.get_bytes(v.data_sha256)))

    def quarantine(self, ref: str) -> pl.DataFrame:
        """The refused rows of a version, as they arrived, with `source_row`, `rule`, `column`
        and `reason`."""
        v = self.get(ref)
        if v.quarantine_sha256 is None:
            return pl.DataFrame(
                schema={
                    "source_row": pl.Int64,
                    "rule": pl.String,
                    "column": pl.String,
                    "reason": pl.String,
                }
            )
        return pl.read_parquet(io.BytesIO(self.artifacts.get_bytes(v.quarantine_sha256)))

    def contract(self, ref: str) -> Contract:
        v = self.get(ref)
        with self.db.engine.connect() as conn:
            text = conn.execute(
                sa.select(t.contracts.c.yaml).where(t.contracts.c.sha256 == v.contract_sha256)
            ).scalar_one()
        return contract_from_yaml(text)

    def diff(self, a: str, b: str) -> dict[str, Any]:
        """Rows added and removed from A to B, contract changes, per-column statistics."""
        va, vb = self.get(a), self.get(b)
        fa, fb = self.load(a), self.load(b)
        shared = [c for c in fa.columns if c in fb.columns and fa.schema[c] == fb.schema[c]]
        ha = fa.select(shared).hash_rows(seed=0) if shared else pl.Series([], dtype=pl.UInt64)
        hb = fb.select(shared).hash_rows(seed=0) if shared else pl.Series([], dtype=pl.UInt64)
        added = int((~hb.is_in(ha.implode())).sum()) if len(hb) else 0
        removed = int((~ha.is_in(hb.implode())).sum()) if len(ha) else 0
        ca, cb = self.contract(a).to_dict()["columns"], self.contract(b).to_dict()["columns"]
        contract_changes = []
        for col in sorted(set(ca) | set(cb)):
            if ca.get(col) != cb.get(col):
                contract_changes.append({"column": col, "a": ca.get(col), "b": cb.get(col)})
        columns = sorted(set(va.stats) | set(vb.stats))
        return {
            "a": va.ref,
            "b": vb.ref,
            "rows": {"a": va.rows_versioned, "b": vb.rows_versioned},
            "rows_added": added,
            "rows_removed": removed,
            "compared_columns": shared,
            "contract_changes": contract_changes,
            "columns": {c: {"a": va.stats.get(c), "b": vb.stats.get(c)} for c in columns},
        }

    def _find(self, name: str, version: str) -> DatasetVersion | None:
        dv = t.dataset_versions
        with self.db.engine.connect() as conn:
            row = (
                conn.execute(sa.select(dv).where(dv.c.name == name, dv.c.version == version))
                .mappings()
                .first()
            )
        return version_from_row(row) if row else None


def save_contract(conn: sa.Connection, contract: Contract, now: dt.datetime) -> None:
    """Store a contract by its hash inside the caller's transaction, unless it is there."""
    found = conn.execute(
        sa.select(t.contracts.c.sha256).where(t.contracts.c.sha256 == contract.sha256)
    ).first()
    if found is None:
        conn.execute(
            t.contracts.insert().values(
                sha256=contract.sha256, name=contract.name, yaml=contract.to_yaml(), created_at=now
            )
        )


def _read(
    source: Any, contract: Contract, encoding: str, header: bool | None, names: list[str] | None
) -> Any:
    header = contract.header if header is None else header
    is_text = isinstance(source, str | Path) and Path(source).suffix.lower() in TEXT_SUFFIXES
    if not header and names is None and is_text:
        names = contract.names
    return read_source(source, encoding=encoding, header=header, names=names)


def _refuse_unfit(uri: str, report: ValidationReport, contract: Contract) -> None:
    """SchemaError when the frame as a whole does not fit; ValidationFailedError when more
    rows were refused than the contract allows. Nothing is stored in either case."""
    if report.schema_issues:
        lines = "; ".join(i.message for i in report.schema_issues[:5])
        msg = f"{uri} does not fit contract {contract.name!r}: {lines} Nothing was stored."
        raise SchemaError(msg)
    if report.bad_share > contract.max_bad_share:
        msg = (
            f"{uri}: {len(report.bad_rows)} of {report.rows} rows "
            f"({report.bad_share:.1%}) break contract {contract.name!r}, over its "
            f"max_bad_share of {contract.max_bad_share:.1%} (by rule: {report.counts_by_rule}). "
            "Nothing was stored; see them with: keel data check SOURCE --contract C"
        )
        raise ValidationFailedError(msg)


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}", name or ""):
        msg = f"Dataset name {name!r} is not allowed; expected letters, digits, '_', '.', '-' (no '@'), e.g. 'transactions'."
        raise SchemaError(msg)


def ingest(
    source: Any,
    contract: Contract | str,
    name: str,
    *,
    store: DatasetStore | None = None,
    **kwargs: Any,
) -> IngestResult:
    """Check, clean, anonymize and version a source; see `DatasetStore.ingest`.

    Args:
        source: a CSV or Parquet path, or a pandas or Polars frame.
        contract: a contract, or the path of its YAML file.
        name: the dataset's name.
        store: where to keep it (default: the store named by settings).
    """
    if not isinstance(contract, Contract):
        contract = load_contract(contract)
    return (store or DatasetStore.open()).ingest(source, contract, name, **kwargs)


def load_version(ref: str, *, store: DatasetStore | None = None) -> pl.DataFrame:
    """The rows of a dataset version, by `NAME@ID`, `NAME@latest` or `NAME`."""
    return (store or DatasetStore.open()).load(ref)
