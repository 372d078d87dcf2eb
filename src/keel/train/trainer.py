"""Training candidates on a dataset version: fit, evaluate, gate, compare, register."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import has_fit_parameter

from keel.data import Contract, DatasetStore, DatasetVersion
from keel.registry import ModelStore, check_storable, dump_model
from keel.store import ConfigError, KeelError, ModelNotFoundError
from keel.train.card import render_card_markdown
from keel.train.evaluation import better, evaluate_outputs, primary_metric, vs_production
from keel.train.explain import global_importance
from keel.train.features import build_pipeline
from keel.train.gates import check_gates
from keel.train.prepare import Prepared, outputs, prepare
from keel.train.reference import reference_profile
from keel.train.report import EvaluationReport, GateResult, report_of
from keel.train.runtime import runtime_profile
from keel.train.spec import TrainSpec

StepCallback = Callable[[str], None]


@dataclass
class Candidate:
    """A trained candidate: its spec, its fitted pipeline and everything measured about it
    (its gates' verdicts are in `report.gates`); `version` is set once it is registered."""

    spec: TrainSpec
    pipeline: Pipeline
    report: EvaluationReport
    version: int | None = None

    @property
    def gates(self) -> tuple[GateResult, ...]:
        return self.report.gates

    @property
    def passed(self) -> bool:
        return self.report.passed

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def metric(self, name: str) -> float | None:
        """The holdout value of a metric (None when it could not be measured)."""
        return self.report.metric(name)

    @property
    def cost(self) -> float:
        """The runtime profile's cost per million predictions, in USD."""
        return float(self.report.runtime["cost_per_million_usd"])

    def to_dict(self) -> dict[str, Any]:
        """The JSON of `keel train --json`."""
        r = self.report.to_json()
        return {
            "name": self.spec.label,
            "estimator": self.spec.estimator,
            **{k: r[k] for k in ("task", "metrics", "overfit", "segments", "fairness", "runtime")},
            "gates": r["gates"],
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


def fit_and_evaluate(
    spec: TrainSpec,
    prep: Prepared,
    *,
    production: tuple[Pipeline, EvaluationReport] | None,
    step: StepCallback,
    trusted_types: tuple[str, ...] = (),
) -> Candidate:
    """Fit one spec and measure everything the card and the gates need.

    Before the fit, the unfitted pipeline is checked to be storable (a native booster format,
    or skops with only trusted types), so a model the registry would refuse costs no training.
    """
    step(f"{spec.label}: fit")
    storage = check_storable(
        build_pipeline(prep.contract, prep.features, spec.make_estimator()),
        trusted_types=trusted_types,
    )
    xtr, xte = prep.x.iloc[prep.train_idx], prep.x.iloc[prep.test_idx]
    pipeline, caught = _fit(spec, prep, prep.train_idx)
    # stored once now: a type that appears only once fitted is refused before the evaluation
    size = len(dump_model(pipeline, trusted_types=trusted_types)[0])
    step(f"{spec.label}: evaluate")
    out_te, out_tr = outputs(pipeline, xte, prep.task), outputs(pipeline, xtr, prep.task)
    measured = evaluate_outputs(prep, spec, out_tr, out_te)
    if spec.split.refit:  # judged above on the first fit; registered: a fit on every row
        step(f"{spec.label}: refit")
        pipeline, more = _fit(spec, prep, None)
        caught += more
        size = len(dump_model(pipeline, trusted_types=trusted_types)[0])
        measured["split"] = {**measured["split"], "refit_rows": len(prep.y)}
        measured["reference"] = reference_profile(
            prep.x, prep.features, prep.categorical, outputs(pipeline, prep.x, prep.task), out_te
        )
    step(f"{spec.label}: explain")
    explanations = global_importance(
        pipeline, xte.reset_index(drop=True), prep.features, seed=spec.seed
    )
    step(f"{spec.label}: profile")
    runtime = runtime_profile(
        pipeline,
        xte.reset_index(drop=True),
        size_bytes=size,
        cpu_hour_usd=float(spec.cost.get("cpu_hour_usd", 0.05)),
    )
    report = EvaluationReport(
        task=prep.task,
        estimator=spec.estimator,
        params=spec.params,
        target=prep.target,
        features=tuple(prep.features),
        categorical=tuple(prep.categorical),
        **measured,
        fit_warnings=tuple(
            sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
        ),
        artifact_format=storage,
        explanations=explanations,
        runtime=runtime,
        vs_production=None
        if production is None
        else vs_production(prep, production, measured["metrics"]),
    )
    return Candidate(spec, pipeline, replace(report, gates=tuple(check_gates(spec.gates, report))))


def _fit(
    spec: TrainSpec, prep: Prepared, rows: np.ndarray | None
) -> tuple[Pipeline, list[warnings.WarningMessage]]:
    """The spec's pipeline fitted on `rows` (positions; None: every row), with their recency
    weights, and the warnings the fit raised."""
    pipeline = build_pipeline(prep.contract, prep.features, spec.make_estimator())
    x, y = (prep.x, prep.y) if rows is None else (prep.x.iloc[rows], prep.y[rows])
    weights: dict[str, np.ndarray] = {}
    if prep.weights is not None:
        weights["model__sample_weight"] = prep.weights if rows is None else prep.weights[rows]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.fit(x, y, **weights)
    return pipeline, caught


def pareto_front(candidates: list[Candidate], metric: str) -> list[str]:
    """Names of candidates no other beats on both the metric and the cost per million."""
    front = []
    for c in candidates:
        mc, cc = c.metric(metric), c.cost
        if mc is None:
            continue
        dominated = any(
            o is not c
            and (om := o.metric(metric)) is not None
            and better(metric, om, mc) >= 0
            and o.cost <= cc
            and (better(metric, om, mc) > 0 or o.cost < cc)
            for o in candidates
        )
        if not dominated:
            front.append(c.spec.label)
    return front


def recommend(candidates: list[Candidate], metric: str, tolerance: float) -> str | None:
    """The cheapest passing candidate within `tolerance` of the best passing one."""
    scored = [(c, v) for c in candidates if c.passed and (v := c.metric(metric)) is not None]
    if not scored:
        return None
    best_value = max((v for _c, v in scored), key=lambda v: better(metric, v, 0.0))
    close = [c for c, v in scored if better(metric, best_value, v) <= tolerance]
    return min(close, key=lambda c: c.cost).spec.label


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
    _check_specs(specs)
    version = datasets.get(data)
    frame = datasets.load(version.ref)
    contract = datasets.contract(version.ref)
    production = _production(models, register)
    trusted = tuple(
        models.trusted_types if trusted_types is None and models else trusted_types or ()
    )
    candidates: list[Candidate] = []
    failed: list[FailedCandidate] = []
    for spec in specs:
        done = _train_one(spec, frame, contract, production, step, trusted)
        if isinstance(done, Candidate):
            candidates.append(done)
        else:
            failed.append(done)
    metric = primary_metric(candidates[0].report.task if candidates else "classification")
    if models is not None and register is not None:
        step("register")
        for c in (c for c in candidates if c.passed):
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


def _check_specs(specs: list[TrainSpec]) -> None:
    if not specs:
        msg = "No spec given; pass at least one --spec FILE."
        raise ConfigError(msg)
    labels = [s.label for s in specs]
    if len(set(labels)) != len(labels):
        msg = f"Spec names repeat ({labels}); give each spec its own 'name'."
        raise ConfigError(msg)


def _production(
    models: ModelStore | None, register: str | None
) -> tuple[Pipeline, EvaluationReport] | None:
    """The current production version of the model a run registers under, to compare with."""
    if models is None or register is None:
        return None
    try:
        prod_version, prod_pipe = models.load(f"{register}@production")
    except ModelNotFoundError:
        return None
    return prod_pipe, report_of(prod_version)


def _train_one(
    spec: TrainSpec,
    frame: pl.DataFrame,
    contract: Contract,
    production: tuple[Pipeline, EvaluationReport] | None,
    step: StepCallback,
    trusted: tuple[str, ...],
) -> Candidate | FailedCandidate:
    """One spec's candidate, or its failure at the stage it reached."""
    stage = ["prepare"]

    def track(message: str) -> None:
        stage[0] = message.rpartition(": ")[2]
        step(message)

    try:
        prep = prepare(frame, contract, spec)
        stage[0] = "check"  # bad params, or a model the registry could not store
        estimator = spec.make_estimator()
        if prep.weights is not None and not has_fit_parameter(estimator, "sample_weight"):
            msg = f"{spec.estimator} takes no sample_weight at fit, so recency_half_life_days cannot weigh its rows; remove it from the spec or choose an estimator that takes weights."
            raise ConfigError(msg)
        check_storable(
            build_pipeline(prep.contract, prep.features, estimator), trusted_types=trusted
        )
        return fit_and_evaluate(
            spec, prep, production=production, step=track, trusted_types=trusted
        )
    except Exception as exc:  # one candidate's failure, of any kind, never loses the others
        step(f"{spec.label}: failed")
        return FailedCandidate(spec.label, spec.estimator, stage[0], _describe(exc))


def _describe(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return text if isinstance(exc, KeelError) else f"{type(exc).__name__}: {text}"


def _register(
    models: ModelStore,
    register: str,
    c: Candidate,
    version: DatasetVersion,
    contract: Contract,
    actor: str,
) -> int:
    card = render_card_markdown(register, None, c.spec.to_dict(), c.report, version.to_dict())
    mv = models.register(
        register,
        c.pipeline,
        contract=contract,
        spec=c.spec.to_dict(),
        evaluation=c.report.to_json(),
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
