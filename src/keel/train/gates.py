"""Gates: rules like `holdout.roc_auc >= 0.80` that a candidate must pass to be registered.

Paths: `holdout.M`, `train.M`, `overfit.M` (train minus holdout, signed so that larger means
more overfit), `segments.min.M` / `segments.max.M`, `fairness.COLUMN.STAT`, `runtime.FIELD`,
`vs_production.M` (improvement over the production version on the same holdout: positive is
better, whichever way the metric points). A `vs_production` gate passes when there is no
production version yet, and says so.

Segment gates are decided by judged groups only (at least `min_group_rows` holdout rows and,
for classification, both classes; see keel.train.segments), and by their 95 % bootstrap
intervals: `segments.min.roc_auc >= 0.70` passes only when every judged segment's interval
lies above 0.70 (its lower bound clears the threshold). A segment whose point value clears the
threshold but whose interval reaches below it fails, with a note saying the point value alone
would have passed. Why this way round: a gate is what a candidate must show before it is
registered, so the burden of proof is on the candidate. The other rule (fail only when the
upper bound is below) lets through a segment whose labels are pure noise: in
tests/integration/test_training.py a 73-row noise segment scores AUC 0.64 with interval
0.51 .. 0.77, which that rule would pass. Noise from groups too small to say anything is
handled by not judging them (`min_group_rows`), not by leniency. The holdout, which has all the
rows, is gated on its point value. `==` passes when the threshold is inside the interval.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from keel.store import ConfigError
from keel.train.report import EvaluationReport, GateResult

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_GATE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")


@dataclass(frozen=True)
class _Figure:
    """What a gate path resolves to: a value, maybe an interval, and a note."""

    value: float | None
    note: str | None = None
    low: float | None = None
    high: float | None = None


def parse_gate(text: str) -> tuple[str, str, float]:
    m = _GATE.match(text)
    if not m:
        msg = f"Gate {text!r} is not of the form 'PATH OP NUMBER'; expected e.g. 'holdout.roc_auc >= 0.80'."
        raise ConfigError(msg)
    return m.group(1), m.group(2), float(m.group(3))


def check_gates(gates: list[str] | tuple[str, ...], report: EvaluationReport) -> list[GateResult]:
    """Each gate's verdict on a candidate's report (see the module docstring for the rules)."""
    results = []
    for text in gates:
        path, op, threshold = parse_gate(text)
        fig = _figure(path, report)
        value, note = fig.value, fig.note
        if value is None and path.startswith("vs_production.") and note == "no production version":
            results.append(GateResult(text, None, threshold, op, True, note))
            continue
        point_passes = value is not None and bool(_OPS[op](value, threshold))
        passed = point_passes
        if value is not None and fig.low is not None and fig.high is not None:
            passed = interval_passes(op, threshold, fig.low, fig.high)
            if point_passes and not passed:
                unproven = f"the point value passes but the interval reaches past {threshold:g}: not shown to pass"
                note = f"{unproven}; {note}" if note else unproven
        results.append(GateResult(text, value, threshold, op, passed, note, fig.low, fig.high))
    return results


def interval_passes(op: str, threshold: float, low: float, high: float) -> bool:
    """Whether the whole interval [low, high] is on the passing side of `op threshold`."""
    if op == ">=":
        return low >= threshold
    if op == ">":
        return low > threshold
    if op == "<=":
        return high <= threshold
    if op == "<":
        return high < threshold
    return low <= threshold <= high  # ==: the threshold is a plausible value


def _figure(path: str, report: EvaluationReport) -> _Figure:
    if path.startswith("segments."):
        return _segment_figure(path.partition(".")[2], report.segments)
    value, note = _resolve(path, report)
    if path.startswith("fairness."):
        entry = report.fairness.get(path.split(".")[1], {})
        skipped = [f"{g['group']} ({g['reason']})" for g in entry.get("not_judged", [])]
        if skipped and value is not None:
            note = "groups not judged: " + ", ".join(skipped)
    return _Figure(value, note)


def _segment_figure(rest: str, seg: Mapping[str, Any]) -> _Figure:
    """The min (or max) of a metric over judged segments, with the min (max) of their bounds.

    The bounds of min over groups: [min of lows, min of highs]. So `segments.min.M >= t` passes
    exactly when every judged group's lower bound is at least t. A bound missing from a group (too
    few resamples with both classes) is replaced by its point value.
    """
    which, _, metric = rest.partition(".")
    if which not in ("min", "max"):
        msg = f"Gate path 'segments.{rest}' has {which!r} after 'segments.'; expected 'segments.min.METRIC' or 'segments.max.METRIC'."
        raise ConfigError(msg)
    groups = seg.get("groups", {})
    skipped = [f"{g} ({s.get('reason')})" for g, s in groups.items() if not s.get("judged", True)]
    minority = seg.get("min_group_minority", 1)
    few = "one class" if minority <= 1 else f"under {minority} of a class"
    skipped_note = (
        f"not judged, under {seg.get('min_group_rows')} rows or {few}: " + ", ".join(skipped)
        if skipped
        else None
    )
    points = []
    for g, s in groups.items():
        e = s["metrics"].get(metric, {})
        if s.get("judged", True) and e.get("value") is not None:
            v = e["value"]
            lo, hi = e.get("low"), e.get("high")
            points.append((v, v if lo is None else lo, v if hi is None else hi, g))
    if not points:
        why = (
            "no judged segment has a value for this metric"
            if groups
            else "no segment values (does the contract name a segment column?)"
        )
        return _Figure(None, why + (f"; {skipped_note}" if skipped_note else ""))
    pick = min if which == "min" else max
    value = pick(p[0] for p in points)
    low, high = pick(p[1] for p in points), pick(p[2] for p in points)
    at_value = next(p[3] for p in points if p[0] == value)
    note = f"{which} over {len(points)} judged segments of {seg.get('column')!r}: value at {at_value!r}"
    at_low = next(p[3] for p in points if p[1] == low)
    at_high = next(p[3] for p in points if p[2] == high)
    if (at_low, at_high) != (at_value, at_value):
        note += f", {which} lower bound at {at_low!r}, {which} upper bound at {at_high!r}"
    return _Figure(value, note + (f"; {skipped_note}" if skipped_note else ""), low, high)


def _resolve(path: str, report: EvaluationReport) -> tuple[float | None, str | None]:
    head, _, rest = path.partition(".")
    if head in ("holdout", "train"):
        entry = (report.metrics if head == "holdout" else report.train_metrics).get(rest)
        return (entry["value"] if entry else None), (
            None if entry else _unknown(rest, report.metrics)
        )
    if head == "overfit":
        return report.overfit.get(rest), None if rest in report.overfit else _unknown(
            rest, report.overfit
        )
    if head == "fairness":
        col, _, stat = rest.partition(".")
        entry = report.fairness.get(col, {})
        value = entry.get(stat)
        if value is None and entry.get("note"):
            return None, entry["note"]
        return (
            value,
            None
            if value is not None
            else f"no fairness figure {rest!r}; sensitive columns: {sorted(report.fairness)}",
        )
    if head == "runtime":
        value = report.runtime.get(rest)
        return value, None if value is not None else f"no runtime figure {rest!r}"
    if head == "vs_production":
        vs = report.vs_production
        if vs is None:
            return None, "no production version"
        return vs.get(rest), None if rest in vs else _unknown(rest, vs)
    msg = f"Gate path {path!r} starts with {head!r}; expected holdout, train, overfit, segments, fairness, runtime or vs_production."
    raise ConfigError(msg)


def _unknown(metric: str, known: Mapping[str, Any]) -> str:
    return f"no metric {metric!r}; known: {sorted(known)}"
