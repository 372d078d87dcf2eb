"""What the dashboard's pages show, read from the registry, the monitor, the dataset store and
the prediction log (run in worker threads; the handlers in `keel.dashboard.app` render it)."""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Any

import orjson
import polars as pl

from keel.data import DatasetStore
from keel.monitor import Monitor, day_of, latency_quantile, read_log
from keel.registry import ModelStore
from keel.render import (
    alert_rows,
    drift_heatmap_spec,
    performance_spec,
    segments_section,
    shadow_row,
    unjudged,
    year_heatmap_spec,
)
from keel.store import NotFoundError, Settings
from keel.train import report_of


class PageData:
    """The contents of the models, model, data and prediction views, as plain values."""

    def __init__(
        self, settings: Settings, models: ModelStore, datasets: DatasetStore, monitor: Monitor
    ) -> None:
        self.settings = settings
        self.models = models
        self.datasets = datasets
        self.monitor = monitor

    def shown_path(self, uri: str | None) -> str:
        """A source as pages show it: its path inside the store (artifacts or home folder)
        when it is there, else its file name only; never an absolute path of the machine."""
        if not uri:
            return ""
        if uri.startswith("frame:"):
            return uri
        path = re.sub(r"^file://", "", uri)
        for root in (self.settings.resolved_artifacts, str(self.settings.home)):
            root = re.sub(r"^file://", "", root)
            root = (root if "://" in root else os.path.abspath(root)).rstrip("/")
            if root and path.startswith(root + "/"):
                return path[len(root) + 1 :]
        return PurePosixPath(path.replace("\\", "/")).name or "(source)"

    def models_rows(self) -> list[dict[str, Any]]:
        rows = []
        now = self.models.db.clock.now()
        for name in self.models.names():
            versions = self.models.versions(name)
            aliases = self.models.aliases(name)
            traffic = ", ".join(
                f"{a} v{s.version}" + (f" ({s.weight:.0%})" if a == "canary" and s.weight else "")
                for a, s in sorted(aliases.items())
            )
            last = self.monitor.latest(name, now=now)
            rate = ""
            if last:
                # an open window holds only the traffic since it began
                seconds = min(self.settings.window_s, (now - last.start).total_seconds())
                rate = f"{last.rows / max(seconds, 1.0):.3g}"
            p50 = latency_quantile(last.latency_counts, 0.5) if last else None
            p99 = last.latency_p99_ms if last else None
            rows.append(
                {
                    "name": name,
                    "versions": len(versions),
                    "traffic": traffic,
                    "rate": rate,
                    "p50": "" if p50 is None else f"{p50:g}",
                    "p99": "" if p99 is None else f"{p99:g}",
                    "errors": f"{last.error_rate:.2%}" if last else "",
                    "alerts": len(self.monitor.alerts.list(name, open_only=True)),
                }
            )
        return rows

    def model(self, name: str) -> dict[str, Any]:
        versions = self.models.versions(name)
        status = self.monitor.overview(name)
        audit = self.models.audit(name)
        aliases = self.models.aliases(name)
        heat = _cap_windows(
            drift_heatmap_spec(status.windows, window_s=self.settings.window_s), 400
        )
        heat["data"]["name"] = "cells"
        perf = performance_spec(status)
        perf["data"]["name"] = "points"
        charts = {"heat": heat, "perf": perf}
        if status.year:
            charts["year"] = year_heatmap_spec(status.year, self.settings.window_s)
            charts["year"]["data"]["name"] = "days"
        segments, spec = segments_section(status)
        if spec is not None:
            charts["segments"] = spec
        timeline = []
        for e in reversed(audit):
            details = dict(e.details)
            weight = details.get("weight")
            timeline.append(
                {
                    "time": e.time.isoformat()[:16],
                    "actor": e.actor,
                    "action": e.action,
                    "alias": (e.alias or "") + (f" ({weight:.0%})" if weight else ""),
                    "version": "" if e.version is None else f"v{e.version}",
                    "reason": e.reason or "",
                    "numbers": _numbers(details),
                }
            )
        return {
            "name": name,
            "versions": [v.version for v in versions],
            "aliases": [(a, s.version) for a, s in sorted(aliases.items())],
            "charts": charts,
            "unjudged": unjudged(status.windows),
            "year": bool(status.year),
            "segments": segments,
            "shadow": shadow_row(status),
            "alerts": alert_rows(status),
            "timeline": timeline,
        }

    def prediction(self, name: str, pid: str) -> dict[str, Any]:
        if not re.fullmatch(r"[0-9a-f]{32}", pid):
            msg = f"Prediction id {pid!r} is not one keel makes; expected 32 hexadecimal digits."
            raise NotFoundError(msg)
        day = day_of(pid)  # a time-ordered id names its day: read that day's files only
        logged = read_log(
            self.settings.resolved_artifacts,
            "predictions",
            name,
            days=None if day is None else [day],
        )
        hit = logged.filter(pl.col("prediction_id") == pid)
        if hit.height == 0:
            msg = f"No logged prediction {pid!r} of model {name!r} (was it flushed yet?)."
            raise NotFoundError(msg)
        row = (
            hit.filter(pl.col("role") != "shadow").row(0, named=True)
            if hit.filter(pl.col("role") != "shadow").height
            else hit.row(0, named=True)
        )
        features = orjson.loads(row["features"])
        shap: dict[str, float] = {}
        v, pipeline = self.models.load(f"{name}@{row['version']}")
        ev = report_of(v)
        bg = ev.explanations.get("background")
        if bg:
            import pandas as pd

            from keel.train import shap_values

            feats = list(ev.features)
            cats = set(ev.categorical)
            x = pd.DataFrame(
                {
                    f: ["" if features.get(f) is None else str(features.get(f))]
                    if f in cats
                    else [float("nan") if features.get(f) is None else float(features[f])]
                    for f in feats
                }
            )
            values, _, names = shap_values(pipeline, pd.DataFrame(bg)[feats], x, feats)
            shap = {n: float(val) for n, val in zip(names, values[0], strict=False)}
        return {
            "prediction_id": pid,
            "version": row["version"],
            "role": row["role"],
            "time": row["time"].isoformat(),
            "features": features,
            "prediction": row["prediction"],
            "probabilities": row["probabilities"],
            "shap": shap,
        }

    def data_rows(self) -> list[list[Any]]:
        return [
            [
                v.ref,
                v.created_at.strftime("%Y-%m-%d %H:%M"),
                v.rows_in,
                v.rows_versioned,
                v.rows_quarantined,
                ", ".join(f"{k} {n}" for k, n in sorted(v.quarantine_by_rule.items())),
                ", ".join(v.parents),
                self.shown_path(v.source_uri),
            ]
            for name in self.datasets.names()
            for v in self.datasets.versions(name)
        ]


def _numbers(details: dict[str, Any]) -> str:
    keep = {
        k: v
        for k, v in details.items()
        if k not in ("alias", "version", "from_version", "weight") and v is not None
    }
    if not keep:
        return ""
    return orjson.dumps(keep, default=str, option=orjson.OPT_INDENT_2).decode()[:4000]


def _cap_windows(spec: dict[str, Any], limit: int) -> dict[str, Any]:
    """A year of hourly windows is 8,760 columns: keep the chart light by showing the most
    recent `limit` windows (the report file keeps them all)."""
    values = spec["data"]["values"]
    windows = sorted({v["t"] for v in values})
    if len(windows) > limit:
        keep = set(windows[-limit:])
        spec["data"]["values"] = [v for v in values if v["t"] in keep]
        spec["title"] = f"{spec['title']} (last {limit} of {len(windows)} windows)"
    return spec
