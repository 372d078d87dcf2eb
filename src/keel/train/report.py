"""The evaluation report: everything measured about a candidate, as one typed, frozen object.

Training builds it (`keel.train.trainer`), an imported ONNX graph gets one too
(`keel.train.onnx_import`); the gates read it, the card renders it, promotion re-checks it,
and it is stored with the model version. The registry keeps it as JSON in the version's
`evaluation` column: `to_json()` writes that column, `EvaluationReport.from_json()` (or
`report_of(version)`) reads it back, including reports stored by earlier keel versions (keys
this version does not know are kept in `extra` and written back unchanged).

The sections the report holds (metrics with intervals, segments, fairness, the reference
profile, explanations, the runtime profile) are read-only JSON objects (`keel._frozen`), as
`keel.train.metrics`, `keel.train.segments` and friends produce them: JSON encoders take them
as they are, and changing one raises TypeError.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn, Protocol

from keel._frozen import freeze, thaw
from keel.store import ConfigError
from keel.train.reference import ReferenceProfile

TASKS = ("classification", "regression")

Section = Mapping[str, Any]
"""A section of the report as JSON (read-only)."""


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict, with the value that decided it."""

    name: str
    value: float | None
    threshold: float
    op: str
    passed: bool
    note: str | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.passed, bool):
            msg = f"GateResult field 'passed' is {self.passed!r}; expected true or false."
            raise ConfigError(msg)
        for name in ("value", "threshold", "low", "high"):
            v = getattr(self, name)
            if (v is not None or name == "threshold") and (
                isinstance(v, bool) or not isinstance(v, numbers.Real)
            ):
                msg = f"GateResult field {name!r} is {v!r}; expected a number" + (
                    "." if name == "threshold" else " or None."
                )
                raise ConfigError(msg)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        got = "no value" if self.value is None else f"got {self.value:.4g}"
        if self.low is not None and self.high is not None:
            got += f" (95 % interval {self.low:.4g} .. {self.high:.4g})"
        return f"gate '{self.name}': {got}" + (f" ({self.note})" if self.note else "")


def _refuse(name: str, value: Any, expected: str) -> NoReturn:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    msg = f"EvaluationReport field {name!r} is {shown}; expected {expected}."
    raise ConfigError(msg)


def _texts(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        _refuse(name, value, "a list of names")
    if not all(isinstance(v, str) for v in value):
        _refuse(name, value, "a list of names (text)")
    return tuple(value)


def _frozen(name: str, value: Any, *, optional: bool = False) -> Mapping[str, Any] | None:
    if value is None and optional:
        return None
    if not isinstance(value, Mapping):
        _refuse(name, value, "a mapping" + (" or None" if optional else ""))
    return freeze(value)  # type: ignore[no-any-return]


def _check_metrics(name: str, metrics: Mapping[str, Any]) -> None:
    for metric, entry in metrics.items():
        value = entry.get("value", 0.0) if isinstance(entry, Mapping) else entry
        if not isinstance(entry, Mapping) or not (
            value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool))
        ):
            _refuse(f"{name}.{metric}", entry, "{'value': number or None, 'low': ..., 'high': ...}")


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """What was measured about one model version (or candidate) on its dataset version.

    Attributes:
        task: "classification" or "regression".
        features: the input columns, in the model's order.
        target: the label column (None for an imported graph whose contract names none).
        estimator: the estimator as the spec names it
            ("sklearn.linear_model.LogisticRegression", "onnx", ...).
        params: the estimator's parameters as the spec gave them.
        categorical: the features encoded as categories.
        classes: the class labels as text, the positive class last (empty for regression).
        split: how the rows were split ({"method", "train_rows", "holdout_rows"}).
        metrics: holdout metrics, {metric: {"value", "low", "high"}} (95 % bootstrap interval).
        train_metrics: the same metrics on the training rows.
        overfit: train minus holdout per metric, signed so that larger is more overfit.
        calibration: the calibration table of a binary classifier (None otherwise).
        segments: per segment value, the metric with its interval (see keel.train.segments).
        fairness: per sensitive column, the group figures and gaps.
        reference: the reference profile drift is measured against (None: not evaluated).
        fit_warnings: the distinct warnings the fit raised.
        artifact_format: how the artifact is stored ("skops", "xgboost", "onnx", ...).
        explanations: global feature importance.
        runtime: latency, size and cost profile.
        vs_production: improvement over the production version on the same holdout (None:
            there was no production version to compare with).
        gates: each gate's verdict.
        evaluated: False for an ONNX graph imported without data (no metrics, no gates),
            True for one imported with data, None for a model keel trained.
        note: why a report is partial, in words (None when it is not).
        extra: keys of a stored report this version does not know, kept as they were.
    """

    task: str
    features: tuple[str, ...]
    target: str | None = None
    estimator: str | None = None
    params: Section = field(default_factory=dict)
    categorical: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    split: Section = field(default_factory=dict)
    metrics: Section = field(default_factory=dict)
    train_metrics: Section = field(default_factory=dict)
    overfit: Section = field(default_factory=dict)
    calibration: Any = None
    segments: Section = field(default_factory=dict)
    fairness: Section = field(default_factory=dict)
    reference: ReferenceProfile | None = None
    fit_warnings: tuple[str, ...] = ()
    artifact_format: str | None = None
    explanations: Section = field(default_factory=dict)
    runtime: Section = field(default_factory=dict)
    vs_production: Section | None = None
    gates: tuple[GateResult, ...] = ()
    evaluated: bool | None = None
    note: str | None = None
    extra: Section = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            _refuse("task", self.task, f"one of {list(TASKS)}")
        for name in ("features", "categorical", "classes", "fit_warnings"):
            object.__setattr__(self, name, _texts(name, getattr(self, name)))
        for name in ("target", "estimator", "artifact_format", "note"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                _refuse(name, value, "text or None")
        for name in _SECTIONS:
            object.__setattr__(self, name, _frozen(name, getattr(self, name)))
        object.__setattr__(
            self, "vs_production", _frozen("vs_production", self.vs_production, optional=True)
        )
        if self.reference is not None:
            object.__setattr__(self, "reference", ReferenceProfile.from_json(self.reference))
        object.__setattr__(self, "extra", _frozen("extra", self.extra))
        object.__setattr__(self, "calibration", freeze(self.calibration))
        _check_metrics("metrics", self.metrics)
        _check_metrics("train_metrics", self.train_metrics)
        if self.evaluated is not None and not isinstance(self.evaluated, bool):
            _refuse("evaluated", self.evaluated, "true, false or None")
        gates = self.gates
        if not isinstance(gates, list | tuple) or not all(isinstance(g, GateResult) for g in gates):
            _refuse("gates", gates, "a list of GateResult")
        object.__setattr__(self, "gates", tuple(gates))

    def metric(self, name: str) -> float | None:
        """The holdout value of one metric (None when it was not or could not be measured)."""
        entry = self.metrics.get(name)
        return None if entry is None else entry.get("value")

    @property
    def passed(self) -> bool:
        """Whether every gate passed (True when there were none)."""
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        """The JSON of the version's stored `evaluation` column (and of the HTTP and CLI
        edges that show it): the keys keel has always written, in the same order; optional
        sections left out when absent, as the trainer always did."""
        out: dict[str, Any] = {}
        for name in _ORDER:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            out[name] = value.to_json() if isinstance(value, ReferenceProfile) else thaw(value)
        if self.evaluated is not None:
            out["evaluated"] = self.evaluated
        if self.note is not None:
            out["note"] = self.note
        out["gates"] = [g.to_dict() for g in self.gates]
        out.update(thaw(self.extra))
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """The report a stored `evaluation` column (or `to_json()`) holds.

        Raises:
            ConfigError: a field has a wrong value (naming the field, the value and what
                was expected), or the column is not a JSON object.
        """
        if not isinstance(data, Mapping):
            _refuse("(the report)", data, "a JSON object")
        known = {k: data[k] for k in _FIELDS if k in data and data[k] is not None}
        # every reader of the stored column took a missing task as classification
        known.setdefault("task", "classification")
        if "features" not in known:
            _refuse("features", data.get("features"), "present in every report keel stores")
        known["gates"] = tuple(_gate(g) for g in data.get("gates") or [])
        extra = {k: v for k, v in data.items() if k not in _FIELDS and k != "extra"}
        return cls(**known, extra=extra)


def _gate(entry: Any) -> GateResult:
    if not isinstance(entry, Mapping):
        _refuse("gates", entry, "a gate verdict like {'name': ..., 'passed': ...}")
    return GateResult(
        name=str(entry.get("name")),
        value=entry.get("value"),
        threshold=float(entry.get("threshold", 0.0)),
        op=str(entry.get("op", "")),
        passed=bool(entry.get("passed", True)),
        note=entry.get("note"),
        low=entry.get("low"),
        high=entry.get("high"),
    )


class StoredEvaluation(Protocol):
    """What holds a stored report: a model version (`keel.registry.ModelVersion`)."""

    @property
    def evaluation(self) -> Mapping[str, Any]: ...


def report_of(version: StoredEvaluation) -> EvaluationReport:
    """The evaluation report stored with a model version (`keel.registry.ModelVersion`)."""
    return EvaluationReport.from_json(version.evaluation)


_SECTIONS = (
    "params",
    "split",
    "metrics",
    "train_metrics",
    "overfit",
    "segments",
    "fairness",
    "explanations",
    "runtime",
)
_ORDER = (
    "task",
    "estimator",
    "params",
    "target",
    "features",
    "categorical",
    "classes",
    "split",
    "metrics",
    "train_metrics",
    "overfit",
    "calibration",
    "segments",
    "fairness",
    "reference",
    "fit_warnings",
    "artifact_format",
    "explanations",
    "runtime",
    "vs_production",
)
_OPTIONAL = frozenset(("calibration", "reference", "vs_production", "target", "estimator"))
_FIELDS = frozenset((*_ORDER, "gates", "evaluated", "note"))
