"""HTML pages with charts: one file, every script inlined, openable with no server or network.

Charts are Vega-Lite specifications rendered by the bundled vega, vega-lite and vega-embed
(`static/`, BSD-3-Clause); the same specs serve the dashboard.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import orjson

from keel.monitor.drift import DriftReport

SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;color:#1d2430;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.9rem}td,th{padding:.25rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left}
th{background:#f5f7f9}.drifted{color:#b42318;font-weight:600}.ok{color:#067647}.muted{color:#667085}
.chart{margin:1rem 0}
"""


@cache
def script(name: str) -> str:
    """One bundled script's text."""
    return (resources.files("keel.monitor") / "static" / name).read_text(encoding="utf-8")


def page(
    title: str,
    body: str,
    charts: dict[str, dict[str, Any]],
    *,
    inline: bool = True,
    style: str = "",
) -> str:
    """A whole HTML page; `charts` maps element ids in `body` to Vega-Lite specs. Each chart's
    view is kept in `window.keelViews[id]` (tests, and people in the console, read its data).

    With `inline=False` the scripts are linked from `/ui/static/` (the dashboard serves them)
    and the page runs no inline script: the specs are a JSON data block, `#keel-charts`, that
    the dashboard's own script embeds (its pages forbid inline scripts).
    """
    if inline:
        scripts = "".join(f"<script>{script(s)}</script>" for s in SCRIPTS)
        embeds = "window.keelViews = window.keelViews || {};" + "".join(
            f"vegaEmbed({_json('#' + cid)}, {_json(spec)}, {{actions:false}})"
            f".then(r => {{ window.keelViews[{_json(cid)}] = r.view; }});"
            for cid, spec in charts.items()
        )
        tail = f"<script>{embeds}</script>"
    else:
        scripts = "".join(f'<script src="/ui/static/{s}"></script>' for s in SCRIPTS)
        tail = f'<script type="application/json" id="keel-charts">{_json(charts)}</script>'
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><link rel="icon" href="data:,">'
        f"<style>{_STYLE}{style}</style>{scripts}</head><body>{body}{tail}</body></html>"
    )


def _json(value: Any) -> str:
    # no "<" at all inside a script element: "</script" would end it and "<!--" change how
    # it is parsed; "\u003c" is the same character to JSON and JavaScript
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("<", "\\u003c")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return '<span class="drifted">drifted</span>' if v else '<span class="ok">stable</span>'
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return "" if v is None else html.escape(str(v))


def drift_bar_spec(report: DriftReport) -> dict[str, Any]:
    """Each column's effect size against its threshold."""
    values = [
        {
            "column": c.name,
            "ratio": c.statistic / c.threshold if c.threshold else 0.0,
            "statistic": c.statistic,
            "threshold": c.threshold,
            "method": c.method,
            "p_value": c.p_value,
            "verdict": "drifted" if c.drifted else "stable",
        }
        for c in report.columns
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": "Effect size / threshold per column (drifted at ≥ 1 with p < alpha)",
        "width": 640,
        "data": {"values": values},
        "layer": [
            {
                "mark": "bar",
                "encoding": {
                    "y": {"field": "column", "type": "nominal", "sort": "-x", "title": None},
                    "x": {
                        "field": "ratio",
                        "type": "quantitative",
                        "title": "statistic / threshold",
                    },
                    "color": {
                        "field": "verdict",
                        "type": "nominal",
                        "scale": {"domain": ["drifted", "stable"], "range": ["#d92d20", "#98a2b3"]},
                    },
                    "tooltip": [
                        {"field": "column"},
                        {"field": "method"},
                        {"field": "statistic", "format": ".4f"},
                        {"field": "threshold"},
                        {"field": "p_value", "format": ".3g"},
                    ],
                },
            },
            {"mark": {"type": "rule", "strokeDash": [4, 4]}, "encoding": {"x": {"datum": 1}}},
        ],
    }


def drift_report_html(report: DriftReport, *, title: str = "Drift report") -> str:
    """A page for an offline drift comparison."""
    rows = [
        (c.name, c.kind, c.method, c.statistic, c.threshold, c.test, c.p_value, c.psi, c.drifted)
        for c in report.columns
    ]
    summary = (
        f"<p>{len(report.drifted_columns)} of {len(report.columns)} columns drifted "
        f"({report.mode} statistics): {html.escape(', '.join(report.drifted_columns) or 'none')}.</p>"
    )
    if report.multivariate:
        m = report.multivariate
        summary += (
            f"<p>Domain classifier: ROC AUC {m['auc']:.3f} (lower bound {m['auc_lower']:.3f}); "
            f"{'the two sets can be told apart' if m['drifted'] else 'the two sets cannot be told apart'}.</p>"
        )
    body = f"<h1>{html.escape(title)}</h1>{summary}<div class='chart' id='bars'></div>" + table(
        ["column", "kind", "method", "statistic", "threshold", "test", "p-value", "PSI", "verdict"],
        rows,
    )
    return page(title, body, {"bars": drift_bar_spec(report)})


def drift_heatmap_spec(
    windows: Sequence[Any],
    *,
    title: str | None = None,
    day: bool = False,
    window_s: int | None = None,
) -> dict[str, Any]:
    """Windows by features, coloured by effect size over its threshold (capped at 3), past 1
    only where the test is significant too: a small window's effect size is mostly sampling
    noise, and a chart coloured by it alone would show drift everywhere. The tooltip keeps the
    raw statistic.

    Cells carry short field names and rounded figures: a year of days or two weeks of hours
    by fifty features is some 18,000 cells, and the page's weight is mostly theirs."""

    def level(c: dict[str, Any]) -> float:
        ratio = c["statistic"] / c["threshold"] if c["threshold"] else 0.0
        return round(min(3.0, ratio) if c["drifted"] else min(0.99, ratio), 3)

    values = [
        {
            "t": t,
            "f": c["name"],
            "v": w.version,
            "r": level(c),
            "s": c["statistic"],
            "th": c["threshold"],
            "m": c["method"],
            "p": c["p_value"],
            # a window too small to judge says so, rather than reading as stable
            "d": getattr(w, "note", None) or c["drifted"],
        }
        for w, t in ((w, w.start.strftime("%Y-%m-%dT%H:%M")) for w in windows)
        for c in [*w.drift, *([w.output_drift] if w.output_drift else [])]
    ]
    when = "%Y-%m-%d" if day else "%Y-%m-%d %H:%M"
    if window_s is None:  # the smallest step between windows (each cell spans its window)
        starts = sorted({w.start for w in windows})
        steps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
        window_s = int(min(steps)) if steps else 86400
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title
        or "Drift per window and feature (effect size / threshold; red: ≥ 1 and p < alpha, drift)",
        "width": "container",
        "height": {"step": 16},
        "data": {"values": values},
        "transform": [{"calculate": f"toDate(datum.t) + {window_s * 1000}", "as": "t2"}],
        "mark": "rect",
        "encoding": {
            "x": {"field": "t", "type": "temporal", "title": None},
            "x2": {"field": "t2"},
            "y": {"field": "f", "type": "nominal", "title": None},
            "color": {
                "field": "r",
                "type": "quantitative",
                "scale": {"domain": [0, 1, 3], "range": ["#f2f4f7", "#fec84b", "#d92d20"]},
                "title": "statistic / threshold",
            },
            "tooltip": [
                {
                    "field": "t",
                    "type": "temporal",
                    "format": when,
                    "title": "day" if day else "window",
                },
                {"field": "f", "title": "feature"},
                {"field": "v", "title": "version"},
                {"field": "m", "title": "method"},
                {"field": "s", "title": "statistic", "format": ".4f"},
                {"field": "th", "title": "threshold"},
                {"field": "p", "title": "p-value", "format": ".3g"},
                {"field": "d", "title": "drifted"},
            ],
        },
    }


def year_heatmap_spec(days: Sequence[Any], window_s: int) -> dict[str, Any]:
    """The year at a glance: one column per day (each day's windows merged and judged)."""
    merged = " (windows of each day merged)" if window_s < 86400 else ""
    return drift_heatmap_spec(
        days,
        title=f"Drift per day and feature over the last year: {len(days)} days{merged}",
        day=True,
        window_s=max(86400, window_s),
    )


def performance_spec(status: Any) -> dict[str, Any]:
    """Live metric (windows with enough labels), estimated metric, and training's figure."""
    metric = status.metric
    values: list[dict[str, Any]] = []
    for x in status.live:
        value = x["metrics"].get(metric)
        if value is not None and x["role"] == "production":
            values.append(
                {
                    "window": x["window_start"].isoformat(),
                    "value": value,
                    "series": f"live (v{x['version']})"
                    if x["judged"]
                    else f"live, few labels (v{x['version']})",
                    "coverage": x["coverage"],
                }
            )
    for w in status.windows:
        est = w.estimated.get(metric)
        if est is not None:
            values.append(
                {"window": w.start.isoformat(), "value": est, "series": f"estimated (v{w.version})"}
            )
    layers: list[dict[str, Any]] = [
        {
            "mark": {"type": "line", "point": True},
            "encoding": {
                "x": {"field": "window", "type": "temporal", "title": None},
                "y": {
                    "field": "value",
                    "type": "quantitative",
                    "title": metric,
                    "scale": {"zero": False},
                },
                "color": {"field": "series", "type": "nominal", "title": None},
                "tooltip": [
                    {"field": "window", "type": "temporal", "format": "%Y-%m-%d"},
                    {"field": "series"},
                    {"field": "value", "format": ".4f"},
                    {"field": "coverage", "format": ".0%"},
                ],
            },
        }
    ]
    base = status.training.get(metric)
    if base is not None:
        layers.append(
            {
                "data": {"values": [{"training": base}]},
                "mark": {"type": "rule", "strokeDash": [4, 4], "color": "#667085"},
                "encoding": {"y": {"field": "training", "type": "quantitative"}},
            }
        )
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"{metric} over time (dashed: holdout at training)",
        "width": "container",
        "height": 240,
        "data": {"values": values},
        "layer": layers,
    }


def segment_performance_spec(status: Any) -> dict[str, Any]:
    """Live metric per segment, windows with enough labels only."""
    values = [
        {
            "window": x["window_start"].isoformat(),
            "segment": x["segment"],
            "value": x["metrics"].get(status.metric),
            "coverage": x["coverage"],
            "labels": x["labels"],
        }
        for x in status.segment_live
        if x["judged"] and x["metrics"].get(status.metric) is not None
    ]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": f"live {status.metric} per segment (windows with enough labels)",
        "width": "container",
        "height": 200,
        "data": {"values": values},
        "mark": {"type": "line", "point": True},
        "encoding": {
            "x": {"field": "window", "type": "temporal", "title": None},
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": status.metric,
                "scale": {"zero": False},
            },
            "color": {"field": "segment", "type": "nominal"},
            "tooltip": [
                {"field": "window", "type": "temporal", "format": "%Y-%m-%d %H:%M"},
                {"field": "segment"},
                {"field": "value", "format": ".4f"},
                {"field": "coverage", "format": ".0%"},
                {"field": "labels"},
            ],
        },
    }


def segments_section(status: Any) -> tuple[str, dict[str, Any] | None]:
    """Per segment: live metric with its interval and label coverage, estimated, training; and
    the per-segment chart's spec (its data named `segment_points`), None when no window has
    enough labels. ("", None) for a model without segments."""
    if not status.segments:
        return "", None
    m = status.metric
    spec = segment_performance_spec(status)
    spec["data"]["name"] = "segment_points"
    chart = spec if spec["data"]["values"] else None
    html_ = (
        "<h2>Performance per segment</h2>"
        "<p class='muted'>Over the lookback; live from labelled predictions (95% bootstrap "
        "interval), estimated from the score histograms before labels, training from the "
        "holdout.</p>"
        + table(
            [
                "segment",
                "predictions",
                "labels",
                "coverage",
                f"live {m}",
                "95% low",
                "95% high",
                f"estimated {m}",
                f"training {m}",
            ],
            [
                [
                    s["segment"],
                    s["rows"],
                    s["labels"],
                    f"{s['coverage']:.0%}",
                    s["live"],
                    s["low"],
                    s["high"],
                    s["estimated"],
                    s["training"],
                ]
                for s in status.segments
            ],
        )
        + (
            "<div class='chart' id='segments' style='width:100%'></div>"
            if chart is not None
            else "<p class='muted'>No window has enough labels per segment for a chart yet.</p>"
        )
    )
    return html_, chart


def unjudged_html(windows: Sequence[Any], *, limit: int = 50) -> str:
    """The windows with too few rows to judge, each with its note (the newest `limit`): a
    window not judged is not a window without drift."""
    rows = [
        [w.start.strftime("%Y-%m-%d %H:%M"), w.version, w.rows, w.note]
        for w in windows
        if not getattr(w, "judged", True)
    ]
    if not rows:
        return ""
    shown = rows[-limit:]
    more = f" (the newest {len(shown)} shown)" if len(rows) > len(shown) else ""
    return (
        f"<h2>Windows not judged</h2><p id='unjudged'>{len(rows)} windows had too few rows to "
        f"judge drift{more}; they are neither stable nor drifted.</p>"
        + table(["window", "version", "rows", "verdict"], shown)
    )


def shadow_and_alerts_html(status: Any) -> str:
    """The shadow comparison (when a shadow answered) and the open alerts, as tables."""
    body = ""
    if status.shadow and status.shadow.get("requests"):
        s = status.shadow
        body += "<h2>Shadow against production</h2>" + table(
            ["shadow", "requests", "agreement", "labels", "difference", "95% low", "95% high"],
            [
                [
                    s[k]
                    for k in (
                        "shadow_version",
                        "requests",
                        "agreement",
                        "labels",
                        "difference",
                        "low",
                        "high",
                    )
                ]
            ],
        )
    return (
        body
        + "<h2>Open alerts</h2>"
        + table(
            ["time", "rule", "severity", "message"],
            [
                [a.time.strftime("%Y-%m-%d %H:%M") if a.time else "", a.rule, a.severity, a.message]
                for a in status.alerts
            ],
        )
    )


def monitor_report_html(
    status: Any, audit: list[dict[str, Any]], *, inline: bool = True, window_s: int = 3600
) -> str:
    """The monitoring report of one model: the same charts as the dashboard's model page."""
    title = f"keel monitoring report: {status.model}"
    if status.version is None:
        return page(
            title, f"<h1>{html.escape(title)}</h1><p>No production version.</p>", {}, inline=inline
        )
    windows = status.windows
    drifted = sum(1 for w in windows if w.drifted)
    unjudged = sum(1 for w in windows if not getattr(w, "judged", True))
    body = (
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Production version {status.version} ({html.escape(status.task)}); "
        f"{len(windows)} windows, {sum(w.rows for w in windows)} predictions, "
        f"{drifted} windows with drifted features, "
        f"{unjudged} with too few rows to judge; {len(status.alerts)} open alerts.</p>"
        "<h2>Drift</h2><div class='chart' id='heat' style='width:100%'></div>"
        + unjudged_html(windows)
    )
    charts = {
        "heat": drift_heatmap_spec(status.windows, window_s=window_s),
        "perf": performance_spec(status),
    }
    if status.year:
        body += "<h2>Drift over the year</h2><div class='chart' id='year' style='width:100%'></div>"
        charts["year"] = year_heatmap_spec(status.year, window_s)
    body += "<h2>Performance</h2><div class='chart' id='perf' style='width:100%'></div>"
    section, spec = segments_section(status)
    body += section
    if spec is not None:
        charts["segments"] = spec
    body += shadow_and_alerts_html(status)
    body += "<h2>Audit timeline</h2>" + table(
        ["time", "actor", "action", "alias", "version", "reason"],
        [
            [
                e["time"][:16],
                e["actor"],
                e["action"],
                e.get("alias"),
                e.get("version"),
                e.get("reason"),
            ]
            for e in audit
        ],
    )
    return page(title, body, charts, inline=inline)
