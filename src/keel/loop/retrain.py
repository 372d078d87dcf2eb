"""Retraining: a fresh dataset version from logged rows and their feedback, then training with
the production version's spec and gates. Runs in a child process so that a crash or a hang
cannot touch the loop (nor production): the parent waits with a timeout and kills it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing as mp
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from keel.data import Contract, DatasetStore
from keel.monitor import labelled, read_log
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database, FakeClock, Settings
from keel.train import spec_from_dict, train

_POLARS_TYPES = {"int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}


@dataclass(frozen=True, slots=True)
class RetrainResult:
    """What a retrain did: a registered version (passed its gates or not), or why it failed."""

    ok: bool
    error: str | None = None
    dataset_version: str | None = None
    rows: Mapping[str, int] = field(default_factory=dict)
    """Rows of the fresh dataset: `logged` (with labels) and `older` (from production's data);
    without a labelled row, `logged` and `labelled`."""
    quarantined: int = 0
    passed: bool = False
    version: int | None = None
    failed_gates: tuple[str, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    vs_production: Mapping[str, Any] | None = None
    trace: str | None = None
    """The child's traceback when it raised (not audited: for the log)."""

    def __post_init__(self) -> None:
        if self.ok == (self.error is not None):
            msg = f"RetrainResult ok={self.ok} with error={self.error!r}: expected an error exactly when not ok"
            raise ValueError(msg)
        if self.passed and self.version is None:
            msg = "RetrainResult passed=True without a version: expected the registered version"
            raise ValueError(msg)

    def to_json(self) -> dict[str, Any]:
        """The audited figures (no traceback)."""
        out: dict[str, Any] = {"ok": self.ok, "rows": dict(self.rows)}
        if self.error is not None:
            out["error"] = self.error
        if self.ok:
            out.update(
                dataset_version=self.dataset_version, quarantined=self.quarantined,
                passed=self.passed, version=self.version, failed_gates=list(self.failed_gates),
                metrics=dict(self.metrics), vs_production=self.vs_production,
            )  # fmt: skip
        return out


def fresh_frame(
    settings: Settings,
    name: str,
    contract: Contract,
    older: pl.DataFrame | None,
    *,
    since: dt.datetime,
    older_share: float,
    missing_label: str | None = None,
    until: dt.datetime | None = None,
) -> tuple[pl.DataFrame, Contract, dict[str, int]]:
    """Logged rows from `since` (to before `until`, when given: the backtest's holdout) with
    their labels (or `missing_label` where none came yet), plus a share of older rows; and the
    contract restricted to the columns both carry (the log holds no PII)."""
    root = settings.resolved_artifacts
    preds = read_log(root, "predictions", name, since.date())
    preds = preds.filter(_logged_between(since, until))
    rows = labelled(preds, read_log(root, "feedback", name))
    if missing_label is not None:
        rows = rows.with_columns(pl.col("label").fill_null(missing_label))
    rows = rows.filter(pl.col("label").is_not_null())
    rows = rows.unique("prediction_id", keep="last", maintain_order=True)
    target = contract.with_role("target")[0]
    id_cols, ts_cols = contract.with_role("id"), contract.with_role("timestamp")
    if rows.height:
        features = rows.get_column("features").str.json_decode(infer_schema_length=None)
        new = features.struct.unnest()
    else:
        new = pl.DataFrame()
    extra: list[pl.Series] = [
        rows.get_column("label")
        .cast(_POLARS_TYPES.get(target.type, pl.String), strict=False)
        .alias(target.name)
    ]
    if id_cols:
        extra.append(rows.get_column("prediction_id").alias(id_cols[0].name))
    if ts_cols:
        extra.append(rows.get_column("time").alias(ts_cols[0].name))
    new = new.with_columns(extra) if new.width else pl.DataFrame(extra)
    keep = [c.name for c in contract.columns if c.name in new.columns]
    if older is not None and older.height and older_share > 0:
        n_old = round(new.height * older_share / max(1e-9, 1 - older_share))
        if id_cols and id_cols[0].name in older.columns and id_cols[0].name in new.columns:
            # the production data may hold logged rows already (an earlier retrain's)
            older = older.join(new.select(id_cols[0].name), on=id_cols[0].name, how="anti")
        old = older.tail(n_old).select([c for c in keep if c in older.columns])
        keep = [c for c in keep if c in old.columns]
        new = pl.concat(
            [old.select(keep), new.select(keep).cast(old.select(keep).schema)], how="vertical"
        )
    else:
        n_old = 0
    subset = dataclasses.replace(
        contract,
        columns=tuple(contract.column(c) for c in keep),
        quasi_identifiers=tuple(q for q in contract.quasi_identifiers if q in keep),
    )
    return new.select(keep), subset, {"logged": rows.height, "older": n_old}


def _logged_between(since: dt.datetime, until: dt.datetime | None) -> pl.Expr:
    """Production and canary rows (a shadow's answers are not the model's traffic) logged
    from `since` to before `until`."""
    keep = (pl.col("role") != "shadow") & (pl.col("time") >= since)
    return keep if until is None else keep & (pl.col("time") < until)


def logged_rows(
    settings: Settings, name: str, *, since: dt.datetime, until: dt.datetime | None = None
) -> tuple[int, int]:
    """(logged rows, labelled rows) of a model from `since` to before `until`: what a retrain
    would learn from."""
    root = settings.resolved_artifacts
    preds = read_log(
        root, "predictions", name, since.date(), columns=["prediction_id", "role", "time"]
    )
    preds = preds.filter(_logged_between(since, until))
    if preds.height == 0:
        return 0, 0
    feedback = read_log(root, "feedback", name, columns=["prediction_id", "label"])
    have = feedback.filter(pl.col("label").is_not_null()).get_column("prediction_id").unique()
    ids = preds.get_column("prediction_id").unique()
    return ids.len(), int(ids.is_in(have.implode()).sum())


def retrain_child(
    settings: Settings,
    name: str,
    production: int,
    now: dt.datetime,
    since: dt.datetime,
    older_share: float,
    missing_label: str | None,
    until: dt.datetime | None,
    refit: bool,
    half_life: float | None,
    conn: Any,
) -> None:
    """The child: build the dataset version, train, register; send back what happened."""
    try:
        db = Database.open(settings, clock=FakeClock(now))
        art = ArtifactStore.open(settings)
        models = ModelStore(db, art, trusted_types=settings.trusted_types)
        datasets = DatasetStore(db, art, settings.resolved_secret_key())
        prod = models.get(f"{name}@{production}")
        contract = models.contract(prod.ref)
        older = datasets.load(prod.dataset_version) if prod.dataset_version else None
        frame, subset, counts = fresh_frame(
            settings, name, contract, older, since=since, older_share=older_share,
            missing_label=missing_label, until=until,
        )  # fmt: skip
        dataset_name = (prod.dataset_version or name).partition("@")[0]
        result = datasets.ingest(
            frame,
            subset,
            dataset_name,
            parents=[prod.dataset_version] if prod.dataset_version else [],
            actor="loop",
        )
        spec = spec_from_dict(prod.spec)
        spec = dataclasses.replace(
            spec,
            split=dataclasses.replace(spec.split, refit=refit),
            recency_half_life_days=half_life or spec.recency_half_life_days,
        )
        trained = train(
            [spec],
            result.version.ref,
            datasets=datasets,
            models=models,
            register=name,
            actor="loop",
        )
        if not trained.candidates or trained.failed:
            f = trained.failed[0]
            conn.send(RetrainResult(ok=False, error=f"{f.name} failed at {f.stage}: {f.error}"))
            return
        cand = trained.candidates[0]
        conn.send(
            RetrainResult(
                ok=True,
                dataset_version=result.version.ref,
                rows=counts,
                quarantined=result.version.rows_quarantined,
                passed=cand.passed,
                version=cand.version,
                failed_gates=tuple(g.name for g in cand.failed_gates),
                metrics={
                    k: v["value"] for k, v in cand.report.metrics.items() if v["value"] is not None
                },
                vs_production=cand.report.to_json().get("vs_production"),
            )
        )
    except BaseException as exc:  # the parent must hear why, whatever it was
        conn.send(
            RetrainResult(
                ok=False, error=f"{type(exc).__name__}: {exc}", trace=traceback.format_exc()
            )
        )
        raise


def run_retrain(
    settings: Settings,
    name: str,
    production: int,
    *,
    now: dt.datetime,
    since: dt.datetime,
    older_share: float,
    timeout_s: float,
    missing_label: str | None = None,
    until: dt.datetime | None = None,
    refit: bool = False,
    half_life: float | None = None,
) -> RetrainResult:
    """Retrain in a child process; a crash, an error or a hang comes back as ok=False.

    Without a labelled logged row since `since`, no child is started: the answer says what
    is missing (the child would fail with a puzzling `No features to train on`)."""
    logged, labels = logged_rows(settings, name, since=since, until=until)
    if labels == 0 and not (missing_label is not None and logged):
        return RetrainResult(
            ok=False,
            error=(
                f"no labelled rows since {since:%Y-%m-%d %H:%M} UTC to retrain {name!r} on: "
                f"{logged} logged rows, 0 labels. Send labels to /v1/models/{name}/feedback "
                "(or lengthen the loop's recent_days) before retraining"
            ),
            rows={"logged": logged, "labelled": 0},
        )
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    args: tuple[Any, ...] = (settings, name, production, now, since, older_share)
    args += (missing_label, until, refit, half_life)
    proc = ctx.Process(
        target=retrain_child,
        args=(*args, child),
        name=f"keel-retrain-{name}",
    )
    proc.start()
    child.close()
    result: RetrainResult | None = None
    if parent.poll(timeout_s):
        try:
            result = parent.recv()
        except EOFError:
            result = None
    proc.join(timeout=5 if result is not None else 0.1)
    if proc.is_alive():
        proc.kill()
        proc.join(timeout=5)
        if result is None:
            return RetrainResult(
                ok=False, error=f"the retrain did not finish in {timeout_s:g} s and was stopped"
            )
    if result is None:
        return RetrainResult(
            ok=False, error=f"the retrain process died (exit code {proc.exitcode})"
        )
    return result
