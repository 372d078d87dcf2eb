"""Training candidates on a dataset version: fit, evaluate, gate, compare, register."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
from sklearn.pipeline import Pipeline

from keel.data import Contract, DatasetStore
from keel.registry import ModelStore, check_storable, dump_model
from keel.store import ConfigError, ModelNotFoundError
from keel.train.card import render_card_markdown
from keel.train.explain import global_importance
from keel.train.features import build_pipeline, check_features, default_features, to_pandas
from keel.train.gates import GateResult, check_gates
from keel.train.metrics import LOWER_IS_BETTER, calibration_table, score
from keel.train.reference import reference_profile
from keel.train.runtime import runtime_profile
from keel.train.segments import fairness_section, segment_report
from keel.train.spec import TrainSpec
from keel.train.split import split_rows

StepCallback = Callable[[str], None]
_N_BOOT = 200


@dataclass
class Candidate:
    """A trained candidate: its spec, its fitted pipeline and everything measured about it."""

    spec: TrainSpec
    pipeline: Pipeline
    report: dict[str, Any]
    gates: list[GateResult] = field(default_factory=list)
    version: int | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "name": self.spec.label,
            "estimator": self.spec.estimator,
            "task": r["task"],
            "metrics": r["metrics"],
            "overfit": r["overfit"],
            "segments": r["segments"],
            "fairness": r["fairness"],
            "runtime": r["runtime"],
            "gates": [g.to_dict() for g in self.gates],
            "passed": self.passed,
            "version": self.version,
        }


@dataclass(frozen=True)
class FailedCandidate:
    """A spec that could not become a candidate (or could not be registered), and why.

    One candidate's failure never stops the others: bad params, a fit error, a model that
    cannot be stored safely, a registration error are all reported here by stage.
    """

    name: str
    estimator: str
    stage: str  # "prepare", "check" (before the fit), "fit", "evaluate", "explain", "profile"
    # or "register"
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "estimator": self.estimator,
            "stage": self.stage,
            "error": self.error,
        }


@dataclass
class TrainResult:
    dataset_version: str
    candidates: list[Candidate]
    recommended: str | None
    pareto: list[str]
    primary_metric: str
    failed: list[FailedCandidate] = field(default_factory=list)

    @property
    def registered(self) -> list[Candidate]:
        return [c for c in self.candidates if c.version is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset_version": self.dataset_version,
            "primary_metric": self.primary_metric,
            "candidates": [c.to_dict() for c in self.candidates],
            "failed": [f.to_dict() for f in self.failed],
            "pareto": self.pareto,
            "recommended": self.recommended,
        }


def primary_metric(task: str) -> str:
    return "rmse" if task == "regression" else "roc_auc"


def better(metric: str, a: float, b: float) -> float:
    """How much better a is than b (positive = better), whichever way the metric points."""
    return b - a if metric in LOWER_IS_BETTER else a - b


@dataclass
class Prepared:
    """A dataset version ready for one spec: features, encoded target, split."""

    frame: pl.DataFrame
    contract: Contract
    features: list[str]
    categorical: list[str]
    target: str
    task: str
    classes: list[Any]
    y: np.ndarray
    train_idx: np.ndarray
    test_idx: np.ndarray
    split_method: str
    x: pd.DataFrame


def prepare(frame: pl.DataFrame, contract: Contract, spec: TrainSpec) -> Prepared:
    targets = contract.with_role("target")
    target = spec.target or (targets[0].name if targets else None)
    if target is None or target not in frame.columns:
        msg = f"No target: the spec names {spec.target!r} and contract {contract.name!r} has no column with role 'target'. Set 'target:' in the spec."
        raise ConfigError(msg)
    frame = frame.filter(pl.col(target).is_not_null())
    features = (
        list(spec.features) if spec.features is not None else default_features(contract, target)
    )
    check_features(contract, features, target)
    missing = [f for f in features if f not in frame.columns]
    if missing:
        msg = f"Features {missing} are not in the dataset version (dropped by anonymization?); remove them from 'features'."
        raise ConfigError(msg)
    raw_y = frame.get_column(target).to_numpy()
    task = spec.task or _infer_task(contract, target, raw_y)
    classes: list[Any] = []
    if task == "classification":
        classes = sorted(np.unique(raw_y).tolist(), key=str)
        if spec.positive_label is not None:
            if spec.positive_label not in classes:
                msg = f"positive_label {spec.positive_label!r} is not a value of {target!r}; its values are {classes}."
                raise ConfigError(msg)
            classes = [c for c in classes if c != spec.positive_label] + [spec.positive_label]
        if len(classes) < 2:
            msg = f"Target {target!r} has a single value ({classes}); a classifier needs at least two."
            raise ConfigError(msg)
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[v] for v in raw_y.tolist()], dtype=np.int64)
    else:
        y = raw_y.astype(float)
    train_idx, test_idx, method = split_rows(
        frame, contract, spec.split, y, seed=spec.seed, stratify=task == "classification"
    )
    categorical = [f for f in features if contract.column(f).type in ("category", "string")]
    return Prepared(
        frame,
        contract,
        features,
        categorical,
        target,
        task,
        classes,
        y,
        train_idx,
        test_idx,
        method,
        to_pandas(frame, features, contract),
    )


def _infer_task(contract: Contract, target: str, y: np.ndarray) -> str:
    ctype = contract.column(target).type
    if ctype == "float":
        return "regression"
    return (
        "classification"
        if ctype in ("bool", "category", "string") or len(np.unique(y)) <= 20
        else "regression"
    )


def _outputs(pipeline: Pipeline, x: pd.DataFrame, task: str) -> np.ndarray:
    return (
        np.asarray(pipeline.predict(x), dtype=float)
        if task == "regression"
        else np.asarray(pipeline.predict_proba(x))
    )


def fit_and_evaluate(
    spec: TrainSpec,
    prep: Prepared,
    *,
    production: tuple[Pipeline, dict[str, Any]] | None,
    step: StepCallback,
    trusted_types: tuple[str, ...] = (),
) -> Candidate:
    """Fit one spec and measure everything the card and the gates need.

    Before the fit, the unfitted pipeline is checked to be storable (a native booster format,
    or skops with only trusted types), so a model the registry would refuse costs no training.
    """
    step(f"{spec.label}: fit")
    pipeline = build_pipeline(prep.contract, prep.features, spec.make_estimator())
    storage = check_storable(pipeline, trusted_types=trusted_types)
    xtr, xte = prep.x.iloc[prep.train_idx], prep.x.iloc[prep.test_idx]
    ytr = prep.y[prep.train_idx]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(xtr, ytr)
    # stored once now: a type that appears only once fitted is refused before the evaluation
    size = len(dump_model(pipeline, trusted_types=trusted_types)[0])
    fit_warnings = sorted(
        {f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught}
    )
    step(f"{spec.label}: evaluate")
    out_te, out_tr = _outputs(pipeline, xte, prep.task), _outputs(pipeline, xtr, prep.task)
    report: dict[str, Any] = {
        "task": prep.task,
        "estimator": spec.estimator,
        "params": spec.params,
        "target": prep.target,
        "features": prep.features,
        "categorical": prep.categorical,
        **evaluate_outputs(prep, spec, out_tr, out_te),
        "fit_warnings": fit_warnings,
        "artifact_format": storage,
    }
    step(f"{spec.label}: explain")
    report["explanations"] = global_importance(
        pipeline, xte.reset_index(drop=True), prep.features, seed=spec.seed
    )
    step(f"{spec.label}: profile")
    report["runtime"] = runtime_profile(
        pipeline,
        xte.reset_index(drop=True),
        size_bytes=size,
        cpu_hour_usd=float(spec.cost.get("cpu_hour_usd", 0.05)),
    )
    if production is not None:
        report["vs_production"] = _vs_production(prep, production, report["metrics"])
    candidate = Candidate(spec, pipeline, report)
    candidate.gates = check_gates(spec.gates, report)
    return candidate


def evaluate_outputs(
    prep: Prepared, spec: TrainSpec, out_tr: np.ndarray, out_te: np.ndarray, *, overfit: bool = True
) -> dict[str, Any]:
    """What a model's outputs on the training and holdout rows say: holdout metrics with
    intervals, training metrics and the overfit gap, calibration, segments, fairness and the
    reference profile for drift. The same for a model keel fitted and one trained elsewhere
    (an imported ONNX graph passes `overfit=False`: its training rows are not these)."""
    xtr = prep.x.iloc[prep.train_idx]
    ytr, yte = prep.y[prep.train_idx], prep.y[prep.test_idx]
    holdout = score(prep.task, yte, out_te, n_boot=_N_BOOT, seed=spec.seed)
    train_m = score(prep.task, ytr, out_tr)
    gap = {}
    if overfit:
        for m, entry in holdout.items():
            tv, hv = train_m[m]["value"], entry["value"]
            if tv is not None and hv is not None:
                gap[m] = round(-better(m, hv, tv), 6)  # train better than holdout -> positive gap
    report: dict[str, Any] = {
        "classes": [str(c) for c in prep.classes],
        "split": {
            "method": prep.split_method,
            "train_rows": len(prep.train_idx),
            "holdout_rows": len(prep.test_idx),
        },
        "metrics": holdout,
        "train_metrics": train_m,
        "overfit": gap,
    }
    if prep.task == "classification" and out_te.shape[1] == 2:
        report["calibration"] = calibration_table(yte.astype(float), out_te[:, 1])
    common = (prep.frame, prep.contract, prep.test_idx, prep.task, yte, out_te)
    report["segments"] = segment_report(*common, min_group_rows=spec.min_group_rows, seed=spec.seed)
    report["fairness"] = fairness_section(
        *common, bands=spec.fairness, min_group_rows=spec.min_group_rows
    )
    report["reference"] = reference_profile(
        xtr, prep.features, prep.categorical, out_tr, np.asarray(out_te)
    )
    return report


def _vs_production(
    prep: Prepared, production: tuple[Pipeline, dict[str, Any]], holdout: dict[str, Any]
) -> dict[str, Any]:
    pipe, evaluation = production
    prod_features = evaluation.get("features", [])
    missing = [f for f in prod_features if f not in prep.frame.columns]
    if missing or evaluation.get("task") != prep.task:
        return {
            "note": f"production cannot be scored on this holdout (missing {missing}, task {evaluation.get('task')})"
        }
    if prep.task == "classification" and evaluation.get("classes") != [
        str(c) for c in prep.classes
    ]:
        return {"note": "production was trained on other classes"}
    x = to_pandas(prep.frame, prod_features, prep.contract).iloc[prep.test_idx]
    prod = score(prep.task, prep.y[prep.test_idx], _outputs(pipe, x, prep.task))
    out: dict[str, Any] = {}
    for m, entry in holdout.items():
        pv = prod.get(m, {}).get("value")
        if pv is not None and entry["value"] is not None:
            out[m] = round(better(m, entry["value"], pv), 6)
    out["production"] = {m: e["value"] for m, e in prod.items()}
    return out


def pareto_front(candidates: list[Candidate], metric: str) -> list[str]:
    """Names of candidates no other beats on both the metric and the cost per million."""
    front = []
    for c in candidates:
        mc, cc = c.report["metrics"][metric]["value"], c.report["runtime"]["cost_per_million_usd"]
        dominated = any(
            o is not c
            and better(metric, o.report["metrics"][metric]["value"], mc) >= 0
            and o.report["runtime"]["cost_per_million_usd"] <= cc
            and (
                better(metric, o.report["metrics"][metric]["value"], mc) > 0
                or o.report["runtime"]["cost_per_million_usd"] < cc
            )
            for o in candidates
            if o.report["metrics"][metric]["value"] is not None
        )
        if mc is not None and not dominated:
            front.append(c.spec.label)
    return front


def recommend(candidates: list[Candidate], metric: str, tolerance: float) -> str | None:
    """The cheapest passing candidate within `tolerance` of the best passing one."""
    passing = [
        c for c in candidates if c.passed and c.report["metrics"][metric]["value"] is not None
    ]
    if not passing:
        return None
    best = max(passing, key=lambda c: better(metric, c.report["metrics"][metric]["value"], 0.0))
    best_value = best.report["metrics"][metric]["value"]
    close = [
        c
        for c in passing
        if better(metric, best_value, c.report["metrics"][metric]["value"]) <= tolerance
    ]
    return min(close, key=lambda c: c.report["runtime"]["cost_per_million_usd"]).spec.label


def train(
    specs: list[TrainSpec],
    data: str,
    *,
    datasets: DatasetStore,
    models: ModelStore | None = None,
    register: str | None = None,
    tolerance: float = 0.005,
    actor: str = "user",
    on_step: StepCallback | None = None,
    trusted_types: tuple[str, ...] | None = None,
) -> TrainResult:
    """Train every spec on a dataset version; register the passing ones under `register`.

    A spec that fails (bad params, a fit error, a model that cannot be stored safely) is
    reported in `TrainResult.failed` with its stage and error; the others go on.

    Args:
        trusted_types: types trusted beyond keel's reviewed list; default the model store's
            (the `trusted_types` setting).
    """
    step = on_step or (lambda _s: None)
    if not specs:
        msg = "No spec given; pass at least one --spec FILE."
        raise ConfigError(msg)
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        msg = f"Spec names repeat ({labels}); give each spec its own 'name'."
        raise ConfigError(msg)
    version = datasets.get(data)
    frame = datasets.load(version.ref)
    contract = datasets.contract(version.ref)
    production = None
    if models is not None and register is not None:
        try:
            prod_version, prod_pipe = models.load(f"{register}@production")
            production = (prod_pipe, prod_version.evaluation)
        except ModelNotFoundError:
            production = None
    trusted = tuple(
        models.trusted_types if trusted_types is None and models else trusted_types or ()
    )
    candidates: list[Candidate] = []
    failed: list[FailedCandidate] = []
    for spec in specs:
        stage = ["prepare"]

        def track(message: str, stage: list[str] = stage) -> None:
            stage[0] = message.rpartition(": ")[2]
            step(message)

        try:
            prep = prepare(frame, contract, spec)
            stage[0] = "check"  # bad params, or a model the registry could not store
            estimator = spec.make_estimator()
            check_storable(
                build_pipeline(prep.contract, prep.features, estimator), trusted_types=trusted
            )
            candidates.append(
                fit_and_evaluate(
                    spec, prep, production=production, step=track, trusted_types=trusted
                )
            )
        except Exception as exc:  # one candidate's failure, of any kind, never loses the others
            failed.append(FailedCandidate(spec.label, spec.estimator, stage[0], _describe(exc)))
            step(f"{spec.label}: failed")
    metric = primary_metric(candidates[0].report["task"] if candidates else "classification")
    if models is not None and register is not None:
        step("register")
        for c in candidates:
            if c.passed:
                try:
                    c.version = _register(models, register, c, version, contract, actor)
                except Exception as exc:  # the others are still registered
                    failed.append(
                        FailedCandidate(c.spec.label, c.spec.estimator, "register", _describe(exc))
                    )
    return TrainResult(
        version.ref,
        candidates,
        recommend(candidates, metric, tolerance),
        pareto_front(candidates, metric),
        metric,
        failed,
    )


def _describe(exc: Exception) -> str:
    from keel.store import KeelError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, KeelError) else f"{type(exc).__name__}: {text}"


def _register(
    models: ModelStore,
    register: str,
    c: Candidate,
    version: Any,
    contract: Contract,
    actor: str,
) -> int:
    card = render_card_markdown(
        register,
        None,
        c.spec.to_dict(),
        c.report,
        [g.to_dict() for g in c.gates],
        version.to_dict(),
    )
    mv = models.register(
        register,
        c.pipeline,
        contract=contract,
        spec=c.spec.to_dict(),
        evaluation={**c.report, "gates": [g.to_dict() for g in c.gates]},
        dataset_version=version.ref,
        lineage={
            "dataset_version": version.ref,
            "source_uri": version.source_uri,
            "source_sha256": version.source_sha256,
            "contract_sha256": version.contract_sha256,
            "code_revision": code_revision(),
        },
        card_markdown=card,
        actor=actor,
    )
    return mv.version


def code_revision() -> str | None:
    """The git commit of the code that trained, when it runs from a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
