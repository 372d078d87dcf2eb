"""Gates: rules like `holdout.roc_auc >= 0.80` that a candidate must pass to be registered.

Paths: `holdout.M`, `train.M`, `overfit.M` (train minus holdout, signed so that larger means
more overfit), `segments.min.M` / `segments.max.M`, `fairness.COLUMN.STAT`, `runtime.FIELD`,
`vs_production.M` (improvement over the production version on the same holdout: positive is
better, whichever way the metric points). A `vs_production` gate passes when there is no
production version yet, and says so.
"""

from __future__ import annotations

import operator
import re
from dataclasses import asdict, dataclass
from typing import Any

from keel.store import ConfigError

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_GATE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict, with the value that decided it."""

    name: str
    value: float | None
    threshold: float
    op: str
    passed: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        got = "no value" if self.value is None else f"got {self.value:.4g}"
        return f"gate '{self.name}': {got}" + (f" ({self.note})" if self.note else "")


def parse_gate(text: str) -> tuple[str, str, float]:
    m = _GATE.match(text)
    if not m:
        msg = f"Gate {text!r} is not of the form 'PATH OP NUMBER'; expected e.g. 'holdout.roc_auc >= 0.80'."
        raise ConfigError(msg)
    return m.group(1), m.group(2), float(m.group(3))


def check_gates(gates: list[str] | tuple[str, ...], report: dict[str, Any]) -> list[GateResult]:
    results = []
    for text in gates:
        path, op, threshold = parse_gate(text)
        value, note = _resolve(path, report)
        if value is None and path.startswith("vs_production.") and note == "no production version":
            results.append(GateResult(text, None, threshold, op, True, note))
            continue
        passed = value is not None and bool(_OPS[op](value, threshold))
        results.append(GateResult(text, value, threshold, op, passed, note))
    return results


def _resolve(path: str, report: dict[str, Any]) -> tuple[float | None, str | None]:
    head, _, rest = path.partition(".")
    if head in ("holdout", "train"):
        entry = report["metrics" if head == "holdout" else "train_metrics"].get(rest)
        return (entry["value"] if entry else None), (
            None if entry else _unknown(rest, report["metrics"])
        )
    if head == "overfit":
        return report["overfit"].get(rest), None if rest in report["overfit"] else _unknown(
            rest, report["overfit"]
        )
    if head == "segments":
        which, _, metric = rest.partition(".")
        values = [
            s["metrics"].get(metric, {}).get("value")
            for s in report.get("segments", {}).get("groups", {}).values()
        ]
        values = [v for v in values if v is not None]
        if which not in ("min", "max") or not values:
            return None, "no segment values (does the contract name a segment column?)"
        return (min(values) if which == "min" else max(values)), None
    if head == "fairness":
        col, _, stat = rest.partition(".")
        value = report.get("fairness", {}).get(col, {}).get(stat)
        return (
            value,
            None
            if value is not None
            else f"no fairness figure {rest!r}; sensitive columns: {sorted(report.get('fairness', {}))}",
        )
    if head == "runtime":
        value = report.get("runtime", {}).get(rest)
        return value, None if value is not None else f"no runtime figure {rest!r}"
    if head == "vs_production":
        vs = report.get("vs_production")
        if vs is None:
            return None, "no production version"
        return vs.get(rest), None if rest in vs else _unknown(rest, vs)
    msg = f"Gate path {path!r} starts with {head!r}; expected holdout, train, overfit, segments, fairness, runtime or vs_production."
    raise ConfigError(msg)


def _unknown(metric: str, known: dict[str, Any]) -> str:
    return f"no metric {metric!r}; known: {sorted(known)}"
