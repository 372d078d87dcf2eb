"""The monitor of a served model: drift and estimated performance per window from window
profiles, live performance from the log and its feedback, shadow comparison, and alerts."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keel.monitor import summaries
from keel.monitor.alerts import Alert, AlertRule, AlertStore, rules_from_settings
from keel.monitor.drift import DriftConfig, compare_profiles, with_one_missing
from keel.monitor.logfiles import MONITORED, read_log
from keel.monitor.performance import (
    PerformanceConfig,
    estimate_binary,
    live_performance,
    pooled_performance,
    shadow_comparison,
    training_metrics,
)
from keel.monitor.profiles import LATENCY_BUCKETS_MS, Window, latest_window, merge, read_windows
from keel.registry import ModelStore
from keel.store import Clock, Settings, SystemClock
from keel.train import EvaluationReport, report_of
from keel.train.metrics import LOWER_IS_BETTER


def primary_metric(task: str) -> str:
    return "rmse" if task == "regression" else "roc_auc"


@dataclass
class WindowStatus:
    """What monitoring concluded about one window of the production version."""

    start: dt.datetime
    version: int
    rows: int
    drift: list[dict[str, Any]]
    drifted: list[str]
    output_drift: dict[str, Any] | None
    estimated: dict[str, float | None]
    error_rate: float
    latency_p99_ms: float | None
    latency_counts: list[int]
    unseen_share: float
    complete: bool
    judged: bool = True
    """Whether the window had the rows to be judged (drift and window alerts)."""
    note: str | None = None
    """Why it was not, for people and JSON: "too few rows to judge (42 < 100)"."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "start": self.start.isoformat()}


@dataclass
class ModelStatus:
    model: str
    version: int | None
    task: str
    metric: str
    training: dict[str, float]
    windows: list[WindowStatus] = field(default_factory=list)
    live: list[dict[str, Any]] = field(default_factory=list)
    shadow: dict[str, Any] | None = None
    recent: dict[str, Any] | None = None
    """The primary metric pooled over the latest judged windows, with its interval."""
    alerts: list[Alert] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    """Per segment over the lookback: rows, label coverage, live metric with its interval,
    estimated metric (binary classifiers), and the figure at training."""
    segment_live: list[dict[str, Any]] = field(default_factory=list)
    """Live metric per window and segment (the per-segment chart)."""
    year: list[WindowStatus] = field(default_factory=list)
    """With `Monitor.overview`: a year by day, when that reaches past the lookback."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "metric": self.metric,
            "training": self.training,
            "windows": [w.to_dict() for w in self.windows],
            "live": [{**x, "window_start": x["window_start"].isoformat()} for x in self.live],
            "shadow": self.shadow,
            "recent": None
            if self.recent is None
            else {
                **self.recent,
                "from": self.recent["from"].isoformat(),
                "to": self.recent["to"].isoformat(),
            },
            "alerts": [a.to_dict() for a in self.alerts],
            "segments": self.segments,
            "segment_live": [
                {**x, "window_start": x["window_start"].isoformat()} for x in self.segment_live
            ],
            "year": [w.to_dict() for w in self.year],
        }


def latency_quantile(counts: list[int], q: float) -> float | None:
    """The upper bound (ms) of the latency bucket that holds quantile `q` of a histogram."""
    total = sum(counts)
    if not total:
        return None
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, q * total))
    bound = LATENCY_BUCKETS_MS[min(i, len(LATENCY_BUCKETS_MS) - 1)]
    return float(bound) if np.isfinite(bound) else float(LATENCY_BUCKETS_MS[-2])


def _rounded(column: dict[str, Any]) -> dict[str, Any]:
    """A column's drift figures to 6 significant digits: the verdicts are made, these are for
    people and charts (and a stored year of them parses twice as fast)."""
    return {
        k: float(f"{v:.6g}") if isinstance(v, float) and math.isfinite(v) else v
        for k, v in column.items()
    }


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
        self.drift_config = DriftConfig(**settings.drift)
        self.performance_config = PerformanceConfig(**settings.performance)
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

    def _window_status(
        self, w: Window, reference: Mapping[str, Any], now: dt.datetime, config: DriftConfig
    ) -> WindowStatus:
        report = compare_profiles(reference, w.profile, config)
        features = [c for c in report.columns if c.name != "__output__"]
        output = next((c for c in report.columns if c.name == "__output__"), None)
        scores = w.profile["output"].get("scores")
        estimated = estimate_binary(scores) if scores else {}
        errors = int(w.profile.get("errors", 0))
        unseen = total = 0
        for name, col in w.profile["columns"].items():
            if col["kind"] != "categorical":
                continue
            known = with_one_missing(reference["columns"].get(name, {}).get("counts", {}))
            total += sum(col["counts"].values())
            unseen += sum(v for k, v in col["counts"].items() if k not in known)
        return WindowStatus(
            start=w.start,
            version=w.version,
            rows=w.rows,
            drift=[_rounded(c.to_dict()) for c in features],
            drifted=[c.name for c in features if c.drifted],
            output_drift=_rounded(output.to_dict()) if output else None,
            estimated=estimated,
            error_rate=errors / (w.rows + errors) if (w.rows + errors) else 0.0,
            latency_p99_ms=latency_quantile(w.profile["latency"]["counts"], 0.99),
            latency_counts=list(w.profile["latency"]["counts"]),
            unseen_share=unseen / total if total else 0.0,
            complete=w.start + dt.timedelta(seconds=w.window_s) <= now,
            judged=w.rows >= config.min_rows,
            note=None
            if w.rows >= config.min_rows
            else f"too few rows to judge ({w.rows} < {config.min_rows})",
        )

    def status(
        self,
        name: str,
        *,
        now: dt.datetime | None = None,
        lookback_windows: int | None = None,
        performance: bool = True,
        windows: list[WindowStatus] | None = None,
    ) -> ModelStatus:
        """What monitoring concludes about a model's production version over the lookback.
        `windows`: the lookback's windows of every version (`history`), when the caller has
        them already."""
        now = now or self.clock.now()
        aliases = self.models.aliases(name)
        if not aliases and name not in self.models.names():
            self.models.versions(name)  # raises ModelNotFoundError naming the known models
        prod = aliases.get("production")
        if prod is None:
            return ModelStatus(name, None, "", "", {})
        version = self.models.get(f"{name}@{prod.version}")
        ev = report_of(version)
        task = ev.task
        metric = primary_metric(task)
        reference = ev.reference or {"columns": {}}
        since = self._since(name, now, lookback_windows)
        status = ModelStatus(
            name,
            prod.version,
            task,
            metric,
            training_metrics(ev),
            windows=[w for w in windows if w.version == prod.version]
            if windows is not None
            else self.windows(name, version=prod.version, since=since, now=now),
        )
        est_ref = (reference.get("output") or {}).get("scores")
        if est_ref:
            status.training["estimated_" + metric] = estimate_binary(est_ref).get(metric) or 0.0
        if performance:
            root = self.settings.resolved_artifacts
            preds = read_log(root, "predictions", name, since.date(), columns=MONITORED)
            feedback = read_log(root, "feedback", name, since.date())
            classes = list(ev.classes)
            status.live = live_performance(
                preds.filter(preds["role"] != "shadow"),
                feedback,
                task=task,
                classes=classes,
                window_s=self.settings.window_s,
                config=self.performance_config,
            )
            judged = [
                x["window_start"]
                for x in status.live
                if x["judged"] and x["role"] == "production" and x["version"] == prod.version
            ][-self.performance_config.pool_windows :]
            if judged:
                window = dt.timedelta(seconds=self.settings.window_s)
                rows = preds.filter(
                    (preds["version"] == prod.version)
                    & (preds["role"] == "production")
                    & (preds["time"] >= judged[0])
                    & (preds["time"] < judged[-1] + window)
                )
                status.recent = {
                    **pooled_performance(rows, feedback, task=task, classes=classes, metric=metric),
                    "windows": len(judged),
                    "from": judged[0],
                    "to": judged[-1],
                }
            answered = preds.filter(
                (preds["version"] == prod.version) & (preds["role"] == "production")
            )
            if answered.height and answered["segment"].null_count() < answered.height:
                self._segments(status, name, answered, feedback, classes, ev, since)
            shadow = aliases.get("shadow")
            if shadow is not None:
                recent = preds.filter(preds["version"].is_in([prod.version, shadow.version]))
                status.shadow = shadow_comparison(
                    recent, feedback, task=task, classes=classes, metric=metric
                )
        status.alerts = self.alerts.list(name, open_only=True)
        return status

    def _segments(
        self,
        status: ModelStatus,
        name: str,
        answered: Any,
        feedback: Any,
        classes: list[str],
        evaluation: EvaluationReport,
        since: dt.datetime,
    ) -> None:
        """Live and estimated performance per segment of the production version."""
        task, metric = status.task, status.metric
        status.segment_live = [
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
            if x["segment"] is not None
        ]
        estimated: dict[str, dict[str, Any]] = {}
        for w in read_windows(
            self.models.db,
            name,
            version=status.version,
            role="production",
            since=since,
            by_segment=True,
        ):
            if w.segment:
                acc = estimated.get(w.segment)
                estimated[w.segment] = w.profile if acc is None else merge(acc, w.profile)
        trained = evaluation.segments.get("groups") or {}
        for segment, part in answered.filter(answered["segment"].is_not_null()).group_by(
            "segment", maintain_order=True
        ):
            seg = str(segment[0])
            pooled = pooled_performance(part, feedback, task=task, classes=classes, metric=metric)
            scores = (estimated.get(seg) or {}).get("output", {}).get("scores")
            at_training = ((trained.get(seg) or {}).get("metrics") or {}).get(metric) or {}
            status.segments.append(
                {
                    "segment": seg,
                    "rows": part.height,
                    "labels": pooled["labels"],
                    "coverage": pooled["labels"] / part.height,
                    "live": pooled["value"],
                    "low": pooled["low"],
                    "high": pooled["high"],
                    "estimated": estimate_binary(scores).get(metric) if scores else None,
                    "training": at_training.get("value"),
                }
            )
        status.segments.sort(key=lambda s: s["segment"])

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
        now = now or self.clock.now()
        db, role = self.models.db, "production"
        res = resolution_s or self.settings.window_s
        if since is not None and res > self.settings.window_s:
            since = summaries.bucket_of(since, res)
        sources = summaries.sources(
            db, name, role=role, resolution_s=res, version=version, since=since
        )
        drift_config = self.drift_config_for(name)
        config = dataclasses.asdict(drift_config)
        prints = {k: s.fingerprint(config) for k, s in sources.items()}
        kept = (
            summaries.cached(db, name, role=role, resolution_s=res, version=version, since=since)
            if self.settings.summaries
            else {}
        )
        stale = sorted(k for k, fp in prints.items() if kept.get(k, ("",))[0] != fp)
        fresh: dict[summaries.Key, WindowStatus] = {}
        if stale:
            first = min(k[1] for k in stale)
            last = max(k[1] + dt.timedelta(seconds=sources[k].window_s) for k in stale)
            merged: dict[summaries.Key, Window] = {}
            for w in read_windows(db, name, version=version, role=role, since=first, until=last):
                key = (
                    w.version,
                    summaries.bucket_of(w.start, res) if res > w.window_s else w.start,
                )
                if key not in prints or kept.get(key, ("",))[0] == prints[key]:
                    continue
                if key in merged:
                    m = merged[key]
                    m.profile, m.rows = merge(m.profile, w.profile), m.rows + w.rows
                else:
                    merged[key] = Window(
                        key[1], sources[key].window_s, w.version, role, "", w.rows, w.profile
                    )
            references: dict[int, Mapping[str, Any]] = {}
            for key, w in merged.items():
                if w.version not in references:
                    ev = report_of(self.models.get(f"{name}@{w.version}"))
                    references[w.version] = ev.reference or {"columns": {}}
                fresh[key] = self._window_status(w, references[w.version], now, drift_config)
            if self.settings.summaries:
                summaries.store(
                    db,
                    name,
                    role=role,
                    resolution_s=res,
                    items=[
                        (k, prints[k], summaries.pack(s.to_dict()))
                        for k, s in fresh.items()
                        if s.complete
                    ],
                )
        out = []
        for key in sorted(prints):
            if key in fresh:
                out.append(fresh[key])
            elif key in kept:
                start = key[1]
                out.append(
                    WindowStatus(
                        start=start,
                        complete=True,
                        **summaries.unpack(kept[key][1]),
                    )
                )
        return out

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
        status.windows = windows
        days = self.history(name, now=now, days=365)
        if days and (not windows or days[0].start < windows[0].start):
            status.year = days
        return status

    def latest(self, name: str, *, now: dt.datetime | None = None) -> WindowStatus | None:
        """The newest production window with traffic (a models list's live figures)."""
        newest = latest_window(self.models.db, name)
        if newest is None:
            return None
        found = self.windows(
            name, since=newest - dt.timedelta(seconds=self.settings.window_s), now=now
        )
        return next((w for w in reversed(found) if w.rows), None)

    # ---- rules --------------------------------------------------------------------------

    def check(self, name: str, *, now: dt.datetime | None = None) -> list[Alert]:
        """Evaluate every rule on the complete windows; fire (and return) the new alerts."""
        now = now or self.clock.now()
        return self.fire(name, self.status(name, now=now), now=now)

    def fire(self, name: str, status: ModelStatus, *, now: dt.datetime) -> list[Alert]:
        """Evaluate every rule on a status already computed; fire the new alerts."""
        if status.version is None:
            return []
        fired = []
        for rule in self.rules:
            for alert in self._evaluate(rule, status):
                if self.alerts.fire(alert, rule, now):
                    fired.append(alert)
        return fired

    def preview(self, name: str, status: ModelStatus, *, now: dt.datetime) -> list[Alert]:
        """The alerts `fire` would fire on this status now, without storing or sending any
        (`keel loop --dry-run`)."""
        if status.version is None:
            return []
        return [
            alert
            for rule in self.rules
            for alert in self._evaluate(rule, status)
            if self.alerts.would_fire(alert, rule, now)
        ]

    def _evaluate(self, rule: AlertRule, s: ModelStatus) -> list[Alert]:
        min_rows = self.drift_config_for(s.model).min_rows
        complete = [w for w in s.windows if w.complete and w.rows >= min_rows]
        out: list[Alert] = []

        def alert(message: str, window: dt.datetime | None, evidence: dict[str, Any]) -> None:
            out.append(
                Alert(
                    model=s.model,
                    rule=rule.name,
                    severity=rule.severity,
                    message=message,
                    window_start=window,
                    evidence={"version": s.version, **evidence},
                    trigger=rule.trigger,
                )
            )

        if rule.kind == "drift":
            hits = []
            for w in complete:
                if rule.statistic == "psi":
                    cols = [
                        c["name"]
                        for c in ([*w.drift, w.output_drift] if w.output_drift else w.drift)
                        if c["psi"] > rule.psi_threshold
                    ]
                else:
                    cols = w.drifted
                hits.append((w, cols))
            run = 0
            for i, (w, cols) in enumerate(hits):
                run = run + 1 if len(cols) >= rule.threshold else 0
                if run >= rule.windows and i == len(hits) - 1:
                    what = (
                        "PSI > " + f"{rule.psi_threshold:g}" if rule.statistic == "psi" else "drift"
                    )
                    alert(
                        f"{len(cols)} columns show {what} for {run} windows in a row: {', '.join(cols)}",
                        w.start,
                        {
                            "columns": cols,
                            "windows": [x.start.isoformat() for x, _ in hits[i - run + 1 : i + 1]],
                            "statistics": {
                                c["name"]: {
                                    k: c[k] for k in ("method", "statistic", "p_value", "psi")
                                }
                                for c in w.drift
                                if c["name"] in cols
                            },
                        },
                    )
        elif rule.kind == "performance":
            base = s.training.get(s.metric)
            r = s.recent
            if base is not None and r and r.get("value") is not None and r.get("high") is not None:
                value, high, low = r["value"], r["high"], r["low"]
                lower_better = s.metric in LOWER_IS_BETTER
                drop = (value - base) if lower_better else (base - value)
                # significant: the whole interval is on the worse side of training's figure
                beyond = (low > base) if lower_better else (high < base)
                if drop >= rule.threshold and beyond:
                    alert(
                        f"{s.metric} {value:.4f} (95% {low:.4f} to {high:.4f}) over the last {r['windows']} judged windows "
                        f"is {drop:.4f} worse than at training ({base:.4f}); {r['labels']} labels",
                        r["to"],
                        {
                            "metric": s.metric,
                            "value": value,
                            "low": low,
                            "high": high,
                            "training": base,
                            "drop": drop,
                            "labels": r["labels"],
                            "windows": r["windows"],
                        },
                    )
        elif rule.kind == "estimated_performance":
            base = s.training.get("estimated_" + s.metric)
            if base is not None and complete and complete[-1].estimated.get(s.metric) is not None:
                w = complete[-1]
                value = float(w.estimated[s.metric] or 0.0)
                if base - value >= rule.threshold:
                    alert(
                        f"estimated {s.metric} {value:.4f} is {base - value:.4f} below the holdout's estimate ({base:.4f}), before labels",
                        w.start,
                        {"metric": s.metric, "estimated": value, "reference": base},
                    )
        elif rule.kind in ("error_rate", "latency_p99", "unseen_categories") and complete:
            w = complete[-1]
            value = {
                "error_rate": w.error_rate,
                "latency_p99": w.latency_p99_ms,
                "unseen_categories": w.unseen_share,
            }[rule.kind]
            if value is not None and value > rule.threshold:
                alert(
                    f"{rule.kind.replace('_', ' ')} {value:.4g} over {rule.threshold:g} in window {w.start:%Y-%m-%d %H:%M}",
                    w.start,
                    {"value": value, "threshold": rule.threshold, "rows": w.rows},
                )
        return out
