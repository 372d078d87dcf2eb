"""The `loop` section of the settings: the controller's policy, validated when settings load.

It lives in `store` (settings cannot import the loop); `keel.loop.LoopPolicy` is this class.
A mistyped key is refused with the valid keys named:

>>> LoopPolicy.model_validate({"shadow_max_wiat_s": 3})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for LoopPolicy
  Value error, unknown loop setting 'shadow_max_wiat_s'; valid keys: ...
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class LoopPolicy(BaseModel):
    """What the loop may do and when (setting `loop` overrides any field)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    judge: Literal["backtest", "shadow"] = "backtest"
    """How a challenger is judged. `backtest`: on the newest labelled rows it was not trained
    on, scored offline beside production (a paired bootstrap of the metric difference), with
    the shadow period for serving health and agreement; a confident backtest promotes at once.
    `shadow`: only on the labelled requests it shadowed (the earlier design: slow, since
    labels come late)."""
    recent_days: float = Field(default=30.0, gt=0)
    """Logged rows of this many days (with labels) make the fresh dataset."""
    older_share: float = Field(default=0.3, ge=0, lt=1)
    """Share of the fresh dataset taken from the production version's training data."""
    missing_label: str | None = None
    """Labels come late: a retrain (and a backtest) counts a logged row without a label yet as
    this label (for fraud, "0": no chargeback yet) rather than leaving the row out. Leaving
    unlabelled rows out keeps the recent days' early labels (the frauds) without their
    negatives, a bias the model learns; counting them as negatives only thins the recent
    positives, evenly. None: labelled rows only."""
    refit: bool = True
    """A retrain fits its model again on every row of the fresh dataset once the holdout gates
    passed (`split.refit`): with the time split the model would otherwise never learn from the
    newest fifth of its window. The backtest still judges it on rows it never saw."""
    recency_half_life_days: float | None = Field(default=None, gt=0)
    """A retrain weighs its rows by age: a row this many days older than the newest counts
    half as much at fit (the spec's `recency_half_life_days`), so a long window keeps its
    many labels and still follows the newest days. None: the production spec's own."""
    min_new_labels: int = Field(default=300, ge=0)
    """Fewest labelled logged rows before a retrain."""
    retrain_every_s: float | None = Field(default=None, gt=0)
    """Retrain on a schedule too (seconds between retrains); None: only on triggers."""
    retrain_timeout_s: float = Field(default=1800.0, gt=0)
    """A retrain running longer is stopped and alerted."""
    retrain_cooldown_s: float = Field(default=7 * 86400, ge=0)
    """No retrain (but by hand) sooner than this after the last one, failed or not."""
    shadow_min_requests: int = Field(default=300, ge=0)
    """Requests both versions answered before the shadow is judged on them."""
    shadow_min_labels: int = Field(default=150, ge=0)
    """Labels on those requests before the shadow is judged on them."""
    shadow_max_wait_s: float = Field(default=14 * 86400, gt=0)
    """A challenger not judged within this is dropped."""
    backtest_holdout_days: float = Field(default=0.0, ge=0)
    """A retrain leaves out the newest this many days of logged rows, so its backtest can
    start at once on rows it was not trained on (labels that have already come) instead of
    waiting for rows logged after it; the price is a challenger this much older. 0: trained
    on every row up to the retrain, judged on rows logged (or labelled) after it."""
    backtest_min_labels: int = Field(default=300, ge=2)
    """Labelled rows the challenger was not trained on before a backtest verdict."""
    backtest_min_minority: int = Field(default=30, ge=1)
    """... of which at least this many of the rarer class (classifiers): an AUC on five
    frauds says little."""
    health_min_requests: int = Field(default=100, ge=0)
    """Requests the challenger must have answered as a shadow (serving health) before a
    backtest promotes it."""
    min_agreement: float = Field(default=0.5, ge=0, le=1)
    """A challenger agreeing with production on fewer shadowed requests than this is not
    promoted on a backtest alone (it waits for the shadow's own labels)."""
    refresh_margin: float | None = Field(default=None, ge=0)
    """Refresh a drifted production: while production's inputs drift from its training data
    (its newest judged window drifted, and the windows since the drift began) and the
    challenger learnt from rows of that drifted period, a backtest showing it no worse than
    production (not below it on the rows, and the 95 % interval's lower bound above
    `-refresh_margin`) promotes it, though it
    does not beat production: it knows today's inputs (an unseen category, a new mix) and its
    reference ends the drift alerts. None: a challenger must beat production (`margin`)."""
    margin: float = 0.0
    """The challenger must beat production by this much of the primary metric..."""
    confidence: float = 0.95
    """...with the lower bound of this two-sided paired-bootstrap interval (only 0.95 now)."""
    canary_weights: tuple[float, ...] = ()
    """Ramp through these canary weights before promoting (empty: promote at once)."""
    watch_s: float = Field(default=7 * 86400, ge=0)
    """After a production move, watch the new version this long."""
    retrain_while_watching: bool = False
    """A retrain due during the watch (a trigger, the schedule) goes ahead; its challenger
    shadows, and is judged once the watch is over. False: nothing but the watch meanwhile."""
    rollback_drop: float = Field(default=0.03, ge=0)
    """Roll back when, on the same labelled rows, the new version's primary metric is this far
    below the previous version's (and the 95 % interval excludes no difference)."""
    rollback_estimated_drop: float = Field(default=0.05, ge=0)
    """... or its estimated metric (before labels) is this far below the previous one's."""
    rollback_error_rate: float = Field(default=0.02, ge=0, le=1)
    """... or the error rate of a window goes over this."""
    min_watch_rows: int = Field(default=200, ge=0)
    """Rows the new version must have answered before a verdict on it."""
    lease_ttl_s: float = Field(default=3600.0, gt=0)
    """How long one loop step may hold the model's lease."""

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in cls.model_fields)
            if unknown:
                msg = (
                    f"unknown loop setting {unknown[0]!r}"
                    + (f" (and {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else "")
                    + f"; valid keys: {', '.join(sorted(cls.model_fields))}"
                )
                raise ValueError(msg)
        return data

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> LoopPolicy:
        if self.backtest_holdout_days >= self.recent_days:
            msg = (
                f"backtest_holdout_days {self.backtest_holdout_days:g} leaves nothing to train on: "
                f"expected fewer than recent_days ({self.recent_days:g})"
            )
            raise ValueError(msg)
        return self

    @field_validator("confidence")
    @classmethod
    def _only_95(cls, value: float) -> float:
        if value != 0.95:
            msg = (
                f"confidence {value!r} is not supported; expected 0.95 (the only interval computed)"
            )
            raise ValueError(msg)
        return value

    @field_validator("canary_weights")
    @classmethod
    def _ramp(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < w <= 1 for w in value) or list(value) != sorted(set(value)):
            msg = f"canary_weights {list(value)!r}: expected increasing weights in (0, 1], e.g. [0.1, 0.5]"
            raise ValueError(msg)
        return value
