"""The typed sections of the settings that monitoring reads: `drift`, `performance` and
`alert_rules`, validated when settings load.

Each section refuses a key it does not know and names the ones it does, so a typo in keel.toml
or a `KEEL_*` variable fails at start rather than being ignored. A key left out keeps the
default of the object monitoring builds from the section (`keel.monitor.DriftConfig`,
`PerformanceConfig`, the alert rule classes): a section holds only what was given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ALERT_RULE_KINDS = (
    "drift",
    "performance",
    "estimated_performance",
    "error_rate",
    "latency_p99",
    "unseen_categories",
)
"""The kinds of alert rule monitoring knows (`keel.monitor.rules.RULES` registers one class
per kind; a test holds the two lists equal)."""

_DRIFT_ONLY = ("windows", "statistic", "psi_threshold")


class Section(BaseModel):
    """A settings section: known keys only, frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = [str(k) for k in data if k not in cls.model_fields]
            if unknown:
                names = ", ".join(repr(k) for k in unknown)
                msg = (
                    f"unknown key {names} in {cls.section_name()}; "
                    f"expected one of {', '.join(cls.model_fields)}"
                )
                raise ValueError(msg)
        return data

    @classmethod
    def section_name(cls) -> str:
        return cls.__name__

    def given(self) -> dict[str, Any]:
        """The keys given (not None), as keyword arguments for the object they configure."""
        return self.model_dump(exclude_none=True)


class DriftSection(Section):
    """Drift thresholds overriding `keel.monitor.DriftConfig`."""

    alpha: float | None = Field(default=None, gt=0, lt=1)
    wasserstein: float | None = Field(default=None, gt=0)
    jensen_shannon: float | None = Field(default=None, gt=0)
    min_rows: int | None = Field(default=None, ge=1)

    @classmethod
    def section_name(cls) -> str:
        return "drift"


class PerformanceSection(Section):
    """Label-coverage rules overriding `keel.monitor.performance.PerformanceConfig`."""

    min_coverage: float | None = Field(default=None, ge=0, le=1)
    min_labels: int | None = Field(default=None, ge=1)
    pool_windows: int | None = Field(default=None, ge=1)

    @classmethod
    def section_name(cls) -> str:
        return "performance"


class AlertRuleSection(Section):
    """One `[[alert_rules]]` table: `name`, `kind` and `threshold`, and optionally the rest.
    `windows`, `statistic` and `psi_threshold` belong to drift rules only."""

    name: str = Field(min_length=1)
    kind: str
    threshold: int | float
    """A whole number stays one (the evidence of an alert repeats it as given)."""
    windows: int | None = Field(default=None, ge=1)
    statistic: Literal["verdict", "psi"] | None = None
    psi_threshold: float | None = Field(default=None, gt=0)
    severity: str | None = None
    trigger: bool | None = None
    cooldown_s: float | None = Field(default=None, ge=0)

    @classmethod
    def section_name(cls) -> str:
        return "an alert rule"

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in ALERT_RULE_KINDS:
            msg = (
                f"unknown alert rule kind {value!r}; expected one of {', '.join(ALERT_RULE_KINDS)}"
            )
            raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _drift_keys_on_drift_rules(self) -> AlertRuleSection:
        if self.kind != "drift":
            given = [k for k in _DRIFT_ONLY if getattr(self, k) is not None]
            if given:
                msg = (
                    f"alert rule {self.name!r} of kind {self.kind!r} takes no "
                    f"{', '.join(repr(k) for k in given)}: only drift rules do"
                )
                raise ValueError(msg)
        return self
