"""Alert rules: one small class per kind, each with `check(status) -> list[Alert]`.

A rule looks at a `ModelStatus` and returns the alerts its condition raises; it stores and
sends nothing (`AlertStore` does, with its de-duplication and cool-down). Rules are registered
by kind in `RULES`, the table the settings' `[[alert_rules]]` are built from:

    kind                    threshold means                                  class
    drift                   columns drifted, at least (for `windows` in a row) DriftRule
    performance             drop of the primary metric below training         PerformanceRule
    estimated_performance   drop of the estimated metric below the holdout's  EstimatedPerformanceRule
    error_rate              share of requests that failed, over               ErrorRateRule
    latency_p99             99th percentile latency in ms, over               LatencyP99Rule
    unseen_categories       share of categorical values never seen, over      UnseenCategoriesRule

Window rules judge complete windows with the rows to be judged only.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from keel.monitor.alerts import Alert
from keel.monitor.status import ModelStatus, WindowStatus
from keel.store import AlertRuleSection
from keel.train import LOWER_IS_BETTER


@dataclass(frozen=True, slots=True)
class AlertRule(abc.ABC):
    """What every rule has: a name, a threshold (its meaning depends on the kind), a severity,
    whether the loop retrains when it fires, and the quiet time after it fired."""

    kind: ClassVar[str]

    name: str
    threshold: float
    severity: str = "warning"
    trigger: bool = False
    """Whether the loop retrains when this fires."""
    cooldown_s: float = 24 * 3600
    """After it fired, the rule stays quiet this long (and never fires twice for a window)."""

    @abc.abstractmethod
    def check(self, status: ModelStatus) -> list[Alert]:
        """The alerts this rule raises on a status (none for a model without production)."""

    def _alert(
        self,
        status: ModelStatus,
        message: str,
        window: dt.datetime | None,
        evidence: dict[str, Any],
    ) -> Alert:
        return Alert(
            model=status.model,
            rule=self.name,
            severity=self.severity,
            message=message,
            window_start=window,
            evidence={"version": status.version, **evidence},
            trigger=self.trigger,
        )


@dataclass(frozen=True, slots=True)
class DriftRule(AlertRule):
    """At least `threshold` columns drifted in each of the last `windows` judged windows."""

    kind: ClassVar[str] = "drift"

    windows: int = 1
    """Consecutive windows the condition must hold in."""
    statistic: Literal["verdict", "psi"] = "verdict"
    """`verdict` (each column's own test) or `psi` (PSI over `psi_threshold`, the output too)."""
    psi_threshold: float = 0.2

    def __post_init__(self) -> None:
        if self.statistic not in ("verdict", "psi"):
            msg = f"drift rule {self.name!r} has statistic {self.statistic!r}; expected 'verdict' or 'psi'"
            raise ValueError(msg)
        if self.windows < 1:
            msg = f"drift rule {self.name!r} has windows {self.windows}; expected at least 1"
            raise ValueError(msg)

    def columns(self, window: WindowStatus) -> list[str]:
        """The columns of one window that count towards the threshold."""
        if self.statistic == "verdict":
            return list(window.drifted)
        output = [window.output_drift] if window.output_drift else []
        return [c.name for c in (*window.drift, *output) if c.psi > self.psi_threshold]

    def check(self, status: ModelStatus) -> list[Alert]:
        judged = status.judged_windows()
        run = 0
        for w in reversed(judged):
            if len(self.columns(w)) < self.threshold:
                break
            run += 1
        if not judged or run < self.windows:
            return []
        last = judged[-1]
        cols = self.columns(last)
        what = f"PSI > {self.psi_threshold:g}" if self.statistic == "psi" else "drift"
        evidence = {
            "columns": cols,
            "windows": [w.start.isoformat() for w in judged[len(judged) - run :]],
            "statistics": {
                c.name: {
                    "method": c.method,
                    "statistic": c.statistic,
                    "p_value": c.p_value,
                    "psi": c.psi,
                }
                for c in last.drift
                if c.name in cols
            },
        }
        message = f"{len(cols)} columns show {what} for {run} windows in a row: {', '.join(cols)}"
        return [self._alert(status, message, last.start, evidence)]


@dataclass(frozen=True, slots=True)
class PerformanceRule(AlertRule):
    """The primary metric pooled over the latest judged windows is at least `threshold` worse
    than at training, and its whole 95 % interval is on the worse side of training's figure."""

    kind: ClassVar[str] = "performance"

    def check(self, status: ModelStatus) -> list[Alert]:
        base = status.training.get(status.metric)
        r = status.recent
        if base is None or r is None or r.value is None or r.low is None or r.high is None:
            return []
        lower_better = status.metric in LOWER_IS_BETTER
        drop = (r.value - base) if lower_better else (base - r.value)
        beyond = (r.low > base) if lower_better else (r.high < base)
        if drop < self.threshold or not beyond:
            return []
        message = (
            f"{status.metric} {r.value:.4f} (95% {r.low:.4f} to {r.high:.4f}) over the last "
            f"{r.windows} judged windows is {drop:.4f} worse than at training ({base:.4f}); "
            f"{r.labels} labels"
        )
        evidence = {
            "metric": status.metric,
            "value": r.value,
            "low": r.low,
            "high": r.high,
            "training": base,
            "drop": drop,
            "labels": r.labels,
            "windows": r.windows,
        }
        return [self._alert(status, message, r.last_window, evidence)]


@dataclass(frozen=True, slots=True)
class EstimatedPerformanceRule(AlertRule):
    """The metric estimated from the newest judged window's scores (before labels) is at least
    `threshold` below the holdout's estimate (binary classifiers)."""

    kind: ClassVar[str] = "estimated_performance"

    def check(self, status: ModelStatus) -> list[Alert]:
        base = status.training.get("estimated_" + status.metric)
        judged = status.judged_windows()
        if base is None or not judged:
            return []
        w = judged[-1]
        value = w.estimated.get(status.metric)
        if value is None or base - value < self.threshold:
            return []
        message = (
            f"estimated {status.metric} {value:.4f} is {base - value:.4f} below the holdout's "
            f"estimate ({base:.4f}), before labels"
        )
        evidence = {"metric": status.metric, "estimated": float(value), "reference": base}
        return [self._alert(status, message, w.start, evidence)]


@dataclass(frozen=True, slots=True)
class WindowFigureRule(AlertRule):
    """One figure of the newest judged window is over `threshold`."""

    kind: ClassVar[str] = ""

    @abc.abstractmethod
    def value(self, window: WindowStatus) -> float | None:
        """The figure of a window this rule compares with its threshold."""

    def check(self, status: ModelStatus) -> list[Alert]:
        judged = status.judged_windows()
        if not judged:
            return []
        w = judged[-1]
        value = self.value(w)
        if value is None or not value > self.threshold:
            return []
        message = (
            f"{self.kind.replace('_', ' ')} {value:.4g} over {self.threshold:g} "
            f"in window {w.start:%Y-%m-%d %H:%M}"
        )
        evidence = {"value": value, "threshold": self.threshold, "rows": w.rows}
        return [self._alert(status, message, w.start, evidence)]


@dataclass(frozen=True, slots=True)
class ErrorRateRule(WindowFigureRule):
    """The share of the newest judged window's requests that failed is over `threshold`."""

    kind: ClassVar[str] = "error_rate"

    def value(self, window: WindowStatus) -> float | None:
        return window.error_rate


@dataclass(frozen=True, slots=True)
class LatencyP99Rule(WindowFigureRule):
    """The newest judged window's 99th percentile latency is over `threshold` milliseconds."""

    kind: ClassVar[str] = "latency_p99"

    def value(self, window: WindowStatus) -> float | None:
        return window.latency_p99_ms


@dataclass(frozen=True, slots=True)
class UnseenCategoriesRule(WindowFigureRule):
    """The share of the newest judged window's categorical values that the reference never
    saw is over `threshold`."""

    kind: ClassVar[str] = "unseen_categories"

    def value(self, window: WindowStatus) -> float | None:
        return window.unseen_share


RULES: dict[str, type[AlertRule]] = {
    cls.kind: cls
    for cls in (
        DriftRule,
        PerformanceRule,
        EstimatedPerformanceRule,
        ErrorRateRule,
        LatencyP99Rule,
        UnseenCategoriesRule,
    )
}
"""Every alert rule class by its kind (the `kind` of `[[alert_rules]]`; the settings accept
exactly these kinds, `keel.store.ALERT_RULE_KINDS`, a test holds the two equal)."""

DEFAULT_RULES: tuple[AlertRule, ...] = (
    DriftRule("feature_drift", 3, windows=2, trigger=True),
    DriftRule("output_psi", 1, statistic="psi", psi_threshold=0.2, windows=2),
    PerformanceRule("auc_drop", 0.03, severity="critical", trigger=True),
    EstimatedPerformanceRule("estimated_auc_drop", 0.03),
    ErrorRateRule("error_rate", 0.01, severity="critical"),
    LatencyP99Rule("latency_p99", 250.0),
    UnseenCategoriesRule("unseen_categories", 0.01),
)
"""The rules when the settings give none."""


def rule_from_section(section: AlertRuleSection) -> AlertRule:
    """The rule one `[[alert_rules]]` table describes (its kind checked when settings loaded)."""
    cls = RULES.get(section.kind)
    if cls is None:
        msg = f"unknown alert rule kind {section.kind!r}; expected one of {', '.join(RULES)}"
        raise ValueError(msg)
    return cls(**{k: v for k, v in section.given().items() if k != "kind"})


def rules_from_settings(sections: Sequence[AlertRuleSection]) -> tuple[AlertRule, ...]:
    """Rules from the `alert_rules` setting, or the defaults when it lists none."""
    if not sections:
        return DEFAULT_RULES
    return tuple(rule_from_section(s) for s in sections)
