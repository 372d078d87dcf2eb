"""HTML reports with charts: one file, every script inlined, openable with no server or network.

Pages are Jinja2 templates (`templates/`, autoescaped); charts are Vega-Lite specifications
drawn by the bundled vega, vega-lite and vega-embed (`static/`, BSD-3-Clause) and by
`static/charts.js`, which reads the specs from a JSON data block. The same specs, templates and
script serve the dashboard.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import jinja2
import orjson
from markupsafe import Markup

from keel.monitor import DriftReport
from keel.registry import AuditEvent

SCRIPTS = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
"""The vendored Vega scripts, in the order a page loads them."""
STATIC = (*SCRIPTS, "charts.js", "report.css")
"""Every file of `static/` a page may load (the dashboard serves these at /ui/static)."""


@cache
def script(name: str) -> str:
    """One bundled static file's text (a script or the style sheet)."""
    if name not in STATIC:
        msg = f"No bundled file {name!r}; expected one of {', '.join(STATIC)}."
        raise KeyError(msg)
    return (resources.files("keel.render") / "static" / name).read_text(encoding="utf-8")


def _dumps(value: Any, **_kwargs: Any) -> str:
    # the `tojson` filter's serializer: orjson knows NumPy numbers and datetimes; Jinja then
    # replaces <, >, & and ' by their \u escapes, so no "</script" or "<!--" can end the block
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _cell(value: Any) -> Any:
    """A table cell: booleans as drifted / stable, floats to four places, anything else as
    text (autoescaped: a cell is never markup)."""
    if isinstance(value, bool):
        return (
            Markup('<span class="drifted">drifted</span>')
            if value
            else Markup('<span class="ok">stable</span>')
        )
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return "" if value is None else str(value)  # str() of Markup is plain text again


def environment(*packages: str) -> jinja2.Environment:
    """A Jinja2 environment that autoescapes every template, with the templates of `packages`
    first and this package's (`sections.html`, `page.html`) after them, `tojson` by orjson and
    the `cell` filter. Undefined names are errors, not empty strings."""
    loaders = [jinja2.PackageLoader(p, "templates") for p in (*packages, "keel.render")]
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["json.dumps_function"] = _dumps
    env.policies["json.dumps_kwargs"] = {}
    env.filters["cell"] = _cell
    return env


@cache
def _environment() -> jinja2.Environment:
    return environment()


def _trusted(name: str, end: str) -> Markup:
    """A bundled file to inline as it is: ours, not data; refused if it could end its element."""
    text = script(name)
    if end in text.lower():  # pragma: no cover - a vendored file that would break the page
        msg = f"The bundled {name} contains {end!r}; it cannot be inlined."
        raise ValueError(msg)
    return Markup(text)


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def _offline_page(template: str, title: str, charts: dict[str, Any], **context: Any) -> str:
    """A one-file page: the scripts inlined and allowed by hash in its own CSP, nothing else."""
    scripts = [_trusted(s, "</script") for s in SCRIPTS]
    charts_js = _trusted("charts.js", "</script")
    # 'unsafe-eval': Vega compiles its expressions and field accessors with Function(); the
    # hashes let only these exact scripts run (no injected inline script could)
    csp = (
        "default-src 'none'; script-src "
        + " ".join(_sha256(s) for s in [*scripts, charts_js])
        + " 'unsafe-eval'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'"
    )
    return (
        _environment()
        .get_template(template)
        .render(
            title=title,
            csp=csp,
            style=_trusted("report.css", "</style"),
            scripts=scripts,
            charts_js=charts_js,
            charts=charts,
            **context,
        )
    )


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
    return _offline_page(
        "drift_report.html",
        title,
        {"bars": drift_bar_spec(report)},
        rows=rows,
        columns=len(report.columns),
        drifted=list(report.drifted_columns),
        mode=report.mode,
        multivariate=report.multivariate,
    )


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

    def level(c: Any) -> float:
        ratio = c.statistic / c.threshold if c.threshold else 0.0
        return round(min(3.0, ratio) if c.drifted else min(0.99, ratio), 3)

    values = [
        {
            "t": t,
            "f": c.name,
            "v": w.version,
            "r": level(c),
            "s": c.statistic,
            "th": c.threshold,
            "m": c.method,
            "p": c.p_value,
            # a window too small to judge says so, rather than reading as stable
            "d": getattr(w, "note", None) or c.drifted,
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
        value = x.metrics.get(metric)
        if value is not None and x.role == "production":
            values.append(
                {
                    "window": x.window_start.isoformat(),
                    "value": value,
                    "series": f"live (v{x.version})"
                    if x.judged
                    else f"live, few labels (v{x.version})",
                    "coverage": x.coverage,
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
            "window": x.window_start.isoformat(),
            "segment": x.segment,
            "value": x.metrics.get(status.metric),
            "coverage": x.coverage,
            "labels": x.labels,
        }
        for x in status.segment_live
        if x.judged and x.metrics.get(status.metric) is not None
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


def segments_section(status: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Per segment: live metric with its interval and label coverage, estimated, training (the
    table for `sections.html`'s `segments`); and the per-segment chart's spec (its data named
    `segment_points`), None when no window has enough labels. (None, None) for a model
    without segments."""
    if not status.segments:
        return None, None
    m = status.metric
    spec = segment_performance_spec(status)
    spec["data"]["name"] = "segment_points"
    chart = spec if spec["data"]["values"] else None
    table = {
        "headers": [
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
        "rows": [
            [
                s.segment,
                s.rows,
                s.labels,
                f"{s.coverage:.0%}",
                s.live,
                s.low,
                s.high,
                s.estimated,
                s.training,
            ]
            for s in status.segments
        ],
        "chart": chart is not None,
    }
    return table, chart


def unjudged(windows: Sequence[Any], *, limit: int = 50) -> dict[str, Any] | None:
    """The windows with too few rows to judge, each with its note (the newest `limit`), for
    `sections.html`'s `unjudged`: a window not judged is not a window without drift."""
    rows = [
        [w.start.strftime("%Y-%m-%d %H:%M"), w.version, w.rows, w.note]
        for w in windows
        if not getattr(w, "judged", True)
    ]
    if not rows:
        return None
    return {"total": len(rows), "rows": rows[-limit:]}


def shadow_row(status: Any) -> list[Any] | None:
    """The shadow comparison as one table row, when a shadow answered."""
    s = status.shadow
    if not s or not s.requests:
        return None
    keys = ("shadow_version", "requests", "agreement", "labels", "difference", "low", "high")
    return [getattr(s, k) for k in keys]


def alert_rows(status: Any) -> list[list[Any]]:
    """The open alerts: time, rule, severity, message."""
    return [
        [a.time.strftime("%Y-%m-%d %H:%M") if a.time else "", a.rule, a.severity, a.message]
        for a in status.alerts
    ]


def monitor_report_html(status: Any, audit: Sequence[AuditEvent], *, window_s: int = 3600) -> str:
    """The monitoring report of one model: the same charts as the dashboard's model page."""
    title = f"keel monitoring report: {status.model}"
    if status.version is None:
        return _offline_page("monitor_report.html", title, {}, version=None)
    windows = status.windows
    charts = {
        "heat": drift_heatmap_spec(windows, window_s=window_s),
        "perf": performance_spec(status),
    }
    if status.year:
        charts["year"] = year_heatmap_spec(status.year, window_s)
    segments, spec = segments_section(status)
    if spec is not None:
        charts["segments"] = spec
    return _offline_page(
        "monitor_report.html",
        title,
        charts,
        version=status.version,
        task=status.task,
        windows=len(windows),
        predictions=sum(w.rows for w in windows),
        drifted=sum(1 for w in windows if w.drifted),
        unjudged=unjudged(windows),
        year=bool(status.year),
        segments=segments,
        shadow=shadow_row(status),
        alerts=alert_rows(status),
        audit=[
            [e.time.isoformat()[:16], e.actor, e.action, e.alias, e.version, e.reason]
            for e in audit
        ],
    )
