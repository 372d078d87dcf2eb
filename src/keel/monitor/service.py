"""The monitor of a served model: drift and estimated performance per window from window
profiles, live performance from the log and its feedback, shadow comparison, and alerts.

What it concludes is a `ModelStatus` (`keel.monitor.status`); the alert rules that read it are
`keel.monitor.rules`; judging windows is `keel.monitor.windows`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

import polars as pl

from keel.monitor import compare, summaries
from keel.monitor.alerts import Alert, AlertStore
from keel.monitor.drift import DriftConfig
from keel.monitor.logfiles import MONITORED, read_log
from keel.monitor.performance import (
    PerformanceConfig,
    estimate_binary,
    live_performance,
    pooled_performance,
    shadow_comparison,
    training_metrics,
)
from keel.monitor.profiles import latest_window, read_windows
from keel.monitor.rules import AlertRule, rules_from_settings
from keel.monitor.status import (
    LiveWindow,
    ModelStatus,
    RecentPerformance,
    SegmentStatus,
    ShadowComparison,
    WindowStatus,
)
from keel.monitor.windowprofile import WindowProfile
from keel.monitor.windows import WindowQuery, judged_windows, latency_quantile
from keel.registry import ModelStore
from keel.store import Clock, Settings, SystemClock
from keel.train import EMPTY_REFERENCE, EvaluationReport, report_of

__all__ = ["ModelStatus", "Monitor", "WindowStatus", "latency_quantile", "primary_metric"]


def primary_metric(task: str) -> str:
    return "rmse" if task == "regression" else "roc_auc"


@dataclass(frozen=True, slots=True)
class _Live:
    """What the log and its feedback say about the production version over the lookback."""

    live: tuple[LiveWindow, ...] = ()
    recent: RecentPerformance | None = None
    shadow: ShadowComparison | None = None
    segments: tuple[SegmentStatus, ...] = ()
    segment_live: tuple[LiveWindow, ...] = ()


class Monitor:
    """Reads profiles, the log and the registry; fires alerts. Computes, never acts."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        *,
        clock: Clock | None = None,
        rules: tuple[AlertRule, ...] | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.clock = clock or SystemClock()
        self.rules = rules or rules_from_settings(settings.alert_rules)
        self.drift_config = DriftConfig(**settings.drift.given())
        self.performance_config = PerformanceConfig(**settings.performance.given())
        self.alerts = AlertStore(
            models.db, jsonl=settings.alert_file, webhook=settings.alert_webhook
        )

    def drift_config_for(self, name: str) -> DriftConfig:
        """The drift thresholds of one model: the settings' `drift`, with its own `min_rows`
        where `drift_min_rows` names it."""
        rows = self.settings.drift_min_rows.get(name)
        if rows is None:
            return self.drift_config
        return dataclasses.replace(self.drift_config, min_rows=rows)

    def status(
        self,
        name: str,
        *,
        now: dt.datetime | None = None,
        performance: bool = True,
        segments: bool = True,
        windows: list[WindowStatus] | None = None,
    ) -> ModelStatus:
        """What monitoring concludes about a model's production version over the lookback.
        `windows`: the lookback's windows of every version (`history`), when the caller has
        them already. `segments=False` leaves the per-segment figures (with their bootstrap
        intervals: most of a status's cost) empty, for callers that do not show them (the
        loop; no alert rule reads them)."""
        now = now or self.clock.now()
        aliases = self.models.aliases(name)
        if not aliases and name not in self.models.names():
            self.models.versions(name)  # raises ModelNotFoundError naming the known models
        prod = aliases.get("production")
        if prod is None:
            return ModelStatus(name, None, "", "", {})
        ev = report_of(self.models.get(f"{name}@{prod.version}"))
        task = ev.task
        metric = primary_metric(task)
        reference = ev.reference or EMPTY_REFERENCE
        since = self._since(name, now)
        training = training_metrics(ev)
        est_ref = reference.output.scores if reference.output is not None else None
        if est_ref:
            training["estimated_" + metric] = estimate_binary(est_ref).get(metric) or 0.0
        shadow = aliases.get("shadow")
        live = (
            self._live(
                name,
                prod.version,
                None if shadow is None else shadow.version,
                ev,
                since,
                segments=segments,
            )
            if performance
            else _Live()
        )
        return ModelStatus(
            name,
            prod.version,
            task,
            metric,
            training,
            windows=tuple(w for w in windows if w.version == prod.version)
            if windows is not None
            else tuple(self.windows(name, version=prod.version, since=since, now=now)),
            live=live.live,
            shadow=live.shadow,
            recent=live.recent,
            alerts=tuple(self.alerts.list(name, open_only=True)),
            segments=live.segments,
            segment_live=live.segment_live,
        )

    def _live(
        self,
        name: str,
        version: int,
        shadow: int | None,
        evaluation: EvaluationReport,
        since: dt.datetime,
        *,
        segments: bool = True,
    ) -> _Live:
        """Live performance of the production version from the log and its feedback: per
        window, pooled over the latest judged windows, per segment, and against the shadow."""
        task = evaluation.task
        metric = primary_metric(task)
        root = self.settings.resolved_artifacts
        preds = read_log(root, "predictions", name, since.date(), columns=MONITORED)
        feedback = read_log(root, "feedback", name, since.date())
        classes = [str(c) for c in evaluation.classes]
        live = live_performance(
            preds.filter(preds["role"] != "shadow"),
            feedback,
            task=task,
            classes=classes,
            window_s=self.settings.window_s,
            config=self.performance_config,
        )
        judged = [
            x.window_start
            for x in live
            if x.judged and x.role == "production" and x.version == version
        ][-self.performance_config.pool_windows :]
        recent = None
        if judged:
            window = dt.timedelta(seconds=self.settings.window_s)
            rows = preds.filter(
                (preds["version"] == version)
                & (preds["role"] == "production")
                & (preds["time"] >= judged[0])
                & (preds["time"] < judged[-1] + window)
            )
            recent = RecentPerformance.pooled(
                pooled_performance(rows, feedback, task=task, classes=classes, metric=metric),
                windows=len(judged),
                first_window=judged[0],
                last_window=judged[-1],
            )
        answered = preds.filter((preds["version"] == version) & (preds["role"] == "production"))
        by_segment: tuple[tuple[SegmentStatus, ...], tuple[LiveWindow, ...]] = ((), ())
        if segments and answered.height and answered["segment"].null_count() < answered.height:
            by_segment = self._segments(name, version, answered, feedback, evaluation, since)
        comparison = None
        if shadow is not None:
            recent_rows = preds.filter(preds["version"].is_in([version, shadow]))
            comparison = shadow_comparison(
                recent_rows, feedback, task=task, classes=classes, metric=metric
            )
        return _Live(tuple(live), recent, comparison, *by_segment)

    def _segments(
        self,
        name: str,
        version: int,
        answered: pl.DataFrame,
        feedback: pl.DataFrame,
        evaluation: EvaluationReport,
        since: dt.datetime,
    ) -> tuple[tuple[SegmentStatus, ...], tuple[LiveWindow, ...]]:
        """Live and estimated performance per segment of the production version, and the live
        metric per window and segment."""
        task = evaluation.task
        metric = primary_metric(task)
        classes = [str(c) for c in evaluation.classes]
        segment_live = tuple(
            x
            for x in live_performance(
                answered,
                feedback,
                task=task,
                classes=classes,
                window_s=self.settings.window_s,
                by_segment=True,
                config=self.performance_config,
            )
            if x.segment is not None
        )
        estimated: dict[str, WindowProfile] = {}
        for w in read_windows(
            self.models.db, name, version=version, role="production", since=since, by_segment=True
        ):
            if w.segment:
                acc = estimated.get(w.segment)
                estimated[w.segment] = w.profile if acc is None else acc.merge(w.profile)
        trained = evaluation.segments.get("groups") or {}
        out = []
        for segment, part in answered.filter(answered["segment"].is_not_null()).group_by(
            "segment", maintain_order=True
        ):
            seg = str(segment[0])
            pooled = pooled_performance(part, feedback, task=task, classes=classes, metric=metric)
            profile = estimated.get(seg)
            scores = profile.output.scores if profile is not None else None
            at_training = ((trained.get(seg) or {}).get("metrics") or {}).get(metric) or {}
            out.append(
                SegmentStatus(
                    segment=seg,
                    rows=part.height,
                    labels=pooled.labels,
                    coverage=pooled.labels / part.height,
                    live=pooled.value,
                    low=pooled.low,
                    high=pooled.high,
                    estimated=estimate_binary(scores).get(metric) if scores else None,
                    training=at_training.get("value"),
                )
            )
        return tuple(sorted(out, key=lambda s: s.segment)), segment_live

    def _since(
        self, name: str, now: dt.datetime, lookback_windows: int | None = None
    ) -> dt.datetime:
        """Where the lookback starts: counted back from the newest window when that is older
        than now (an idle model, a replay), else from now."""
        window = dt.timedelta(seconds=self.settings.window_s)
        newest = latest_window(self.models.db, name)
        anchor = min(now, newest + window) if newest else now
        return anchor - window * (lookback_windows or self.settings.lookback_windows)

    def windows(
        self,
        name: str,
        *,
        version: int | None = None,
        since: dt.datetime | None = None,
        now: dt.datetime | None = None,
        resolution_s: int | None = None,
    ) -> list[WindowStatus]:
        """Production windows (of one version, or of every one), each judged against its own
        version's reference profile; with `resolution_s` longer than the window (a day), the
        windows of each such period merged and judged as one.

        Complete windows are judged once and kept (`keel.monitor.summaries`); only windows
        that are new, still open or changed since are read and judged here."""
        res = resolution_s or self.settings.window_s
        if since is not None and res > self.settings.window_s:
            since = summaries.bucket_of(since, res)
        query = WindowQuery(
            name=name,
            version=version,
            since=since,
            now=now or self.clock.now(),
            resolution_s=res,
            config=self.drift_config_for(name),
            keep=self.settings.summaries,
        )
        return judged_windows(self.models, query)

    def history(
        self,
        name: str,
        *,
        now: dt.datetime | None = None,
        days: int | None = None,
    ) -> list[WindowStatus]:
        """Production windows of every version over time (a chart of the model): the lookback's
        windows, or with `days`, one merged window per day (or per window, when windows are a
        day or longer) over that many days."""
        now = now or self.clock.now()
        if days is None:
            return self.windows(name, since=self._since(name, now), now=now)
        day = dt.timedelta(days=1)
        since = (
            self._since(name, now, 1) + dt.timedelta(seconds=self.settings.window_s) - day * days
        )
        return self.windows(
            name, since=since, now=now, resolution_s=max(86400, self.settings.window_s)
        )

    def overview(self, name: str, *, now: dt.datetime | None = None) -> ModelStatus:
        """What a page or a report of the model shows: the status, with the lookback's windows
        of every version (not only production's), and a year by day when it reaches further
        back than the lookback."""
        now = now or self.clock.now()
        windows = self.history(name, now=now)
        status = self.status(name, now=now, windows=windows)
        days = self.history(name, now=now, days=365)
        reaches_further = bool(days) and (not windows or days[0].start < windows[0].start)
        return dataclasses.replace(
            status,
            windows=tuple(windows),
            year=tuple(days) if reaches_further else (),
        )

    def latest(self, name: str, *, now: dt.datetime | None = None) -> WindowStatus | None:
        """The newest production window with traffic (a models list's live figures)."""
        newest = latest_window(self.models.db, name)
        if newest is None:
            return None
        found = self.windows(
            name, since=newest - dt.timedelta(seconds=self.settings.window_s), now=now
        )
        return next((w for w in reversed(found) if w.rows), None)

    def compare_versions(
        self, name: str, before: int, after: int, since: dt.datetime, *, now: dt.datetime
    ) -> compare.VersionComparison:
        """`after` (production since `since`) against `before` on the same rows."""
        windows = self.windows(name, version=after, since=since, now=now)
        metric = primary_metric(self.models.get(f"{name}@{after}").evaluation.get("task", ""))
        return compare.compare_versions(
            self.settings, self.models, name, before=before, after=after, since=since,
            windows=windows, metric=metric, now=now,
        )  # fmt: skip

    def backtest(
        self, name: str, challenger: int, production: int, *, labelled_after: dt.datetime,
        now: dt.datetime, missing_label: str | None = None,
        logged_after: dt.datetime | None = None,
    ) -> compare.Backtest:  # fmt: skip
        """`challenger` against `production` on labelled rows it was not trained on (those
        labelled after `labelled_after`, and those logged from `logged_after` on: a holdout)."""
        metric = primary_metric(self.models.get(f"{name}@{production}").evaluation.get("task", ""))
        since = self._since(name, now)
        if logged_after is not None:
            since = min(since, logged_after)
        return compare.backtest(
            self.settings, self.models, name, challenger=challenger, production=production,
            labelled_after=labelled_after, since=since, metric=metric,
            missing_label=missing_label, logged_after=logged_after,
        )  # fmt: skip

    # ---- rules --------------------------------------------------------------------------

    def check(self, name: str, *, now: dt.datetime | None = None) -> list[Alert]:
        """Evaluate every rule on the complete windows; fire (and return) the new alerts."""
        now = now or self.clock.now()
        return self.fire(name, self.status(name, now=now), now=now)

    def fire(self, name: str, status: ModelStatus, *, now: dt.datetime) -> list[Alert]:
        """Evaluate every rule on a status already computed; fire the new alerts (returned as
        stored, with their time and id)."""
        if status.version is None:
            return []
        fired = []
        for rule in self.rules:
            for alert in rule.check(status):
                stored = self.alerts.fire(alert, rule, now)
                if stored is not None:
                    fired.append(stored)
        return fired

    def preview(self, name: str, status: ModelStatus, *, now: dt.datetime) -> list[Alert]:
        """The alerts `fire` would fire on this status now, without storing or sending any
        (`keel loop --dry-run`)."""
        if status.version is None:
            return []
        return [
            alert
            for rule in self.rules
            for alert in rule.check(status)
            if self.alerts.would_fire(alert, rule, now)
        ]
