"""The dashboard: models, one model over time, one version, data; admin actions with a reason.

Pages are rendered on the server from the registry, the monitor and the dataset store; charts
are Vega-Lite specs drawn by the bundled scripts (served at /ui/static, no network). Viewing
needs no token; every admin action needs a token with the `admin` scope, asks for a reason and
lands in the audit log (actor `dashboard`).
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from importlib import resources
from typing import Any

import orjson
from markupsafe import Markup, escape
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.data import DatasetStore
from keel.monitor import Monitor
from keel.monitor.logfiles import day_of, read_log
from keel.monitor.report import (
    SCRIPTS,
    drift_heatmap_spec,
    page,
    performance_spec,
    script,
    segments_section,
    shadow_and_alerts_html,
    unjudged_html,
    year_heatmap_spec,
)
from keel.monitor.service import latency_quantile
from keel.registry import ModelStore
from keel.store import ConfigError, KeelError, Settings

_STYLE = """
nav{display:flex;gap:1.2rem;align-items:center;border-bottom:1px solid #e3e6ea;padding:.6rem 0;margin-bottom:1rem}
nav a{color:#1d2430;text-decoration:none;font-weight:600}nav .token{margin-left:auto;font-size:.85rem}
.pill{display:inline-block;padding:.05rem .45rem;border-radius:.6rem;background:#eef2f6;margin-right:.25rem;font-size:.85rem}
.alert{color:#b42318}.actions{display:flex;gap:.6rem;flex-wrap:wrap;margin:.6rem 0}
.actions form{border:1px solid #e3e6ea;padding:.5rem;border-radius:.4rem}
#message{margin:.5rem 0;font-weight:600}.error{color:#b42318}.ok{color:#067647}
iframe{width:100%;height:70vh;border:1px solid #e3e6ea}
"""

_SCRIPT = "dashboard.js"
"""The dashboard's own script (token box, admin forms, prediction explorer, charts): pages run
no inline script, and it puts every server value into the page as text."""


# No inline script (dashboard.js does it all), nothing loaded from elsewhere, never framed.
# 'unsafe-eval' because Vega compiles its expressions and field accessors with Function();
# it lets no injected markup run, only code that is already a script call eval.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CARD_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
"""The model card: static HTML, no script at all, framed only by the version page."""


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy (unless the response set its own), nosniff and
    no-referrer to every dashboard response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@cache
def _own_script() -> str:
    return (resources.files("keel.dashboard") / "static" / _SCRIPT).read_text(encoding="utf-8")


def _nav() -> str:
    return (
        "<nav><a href='/ui'>Models</a><a href='/ui/data'>Data</a>"
        "<span class='token'>admin token <input id='token' type='password' size='14'>"
        "</span></nav><div id='message'></div>"
    )


def _page(title: str, body: str, charts: dict[str, dict[str, Any]] | None = None) -> HTMLResponse:
    """A dashboard page; `body` is HTML whose every interpolated value was escaped."""
    body = f"<script src='/ui/static/{_SCRIPT}'></script>{_nav()}{body}"
    return HTMLResponse(page(title, body, charts or {}, inline=False, style=_STYLE))


class Dashboard:
    """The pages and the admin endpoints over one set of stores."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        datasets: DatasetStore,
        *,
        on_alias_moved: Any = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.datasets = datasets
        self.monitor = Monitor(settings, models)
        self.on_alias_moved = on_alias_moved  # the server's follower, to switch at once

    def routes(self) -> list[BaseRoute]:
        pages = [
            Route("/", self.models_page),
            Route("/data", self.data_page),
            Route("/static/{file}", self.static),
            Route("/models/{name}", self.model_page),
            Route("/models/{name}/versions/{version:int}", self.version_page),
            Route("/models/{name}/versions/{version:int}/card", self.card),
            Route("/api/models/{name}/predictions/{pid}", self.prediction),
            Route("/api/models/{name}/promote", self.promote, methods=["POST"]),
            Route("/api/models/{name}/rollback", self.rollback, methods=["POST"]),
            Route("/api/models/{name}/canary", self.canary, methods=["POST"]),
        ]
        # pages with a year of charts and the bundled scripts are text: gzip cuts them ~5x
        secure = [Middleware(SecurityHeadersMiddleware)]
        gzip = [*secure, Middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)]
        return [
            Route("/ui", self.models_page, middleware=secure),
            Mount("/ui", routes=pages, middleware=gzip),
        ]

    # ---- pages ----------------------------------------------------------------------------

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name not in (*SCRIPTS, _SCRIPT):
            return Response("not found", status_code=404)
        return Response(
            _own_script() if name == _SCRIPT else script(name),
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def models_page(self, request: Request) -> Response:
        return await asyncio.to_thread(self._models_page)

    def _models_page(self) -> HTMLResponse:
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
            alerts = len(self.monitor.alerts.list(name, open_only=True))
            rows.append(
                [
                    Markup("<a href='/ui/models/{}'>{}</a>").format(name, name),
                    len(versions),
                    traffic,
                    rate,
                    "" if p50 is None else f"{p50:g}",
                    "" if p99 is None else f"{p99:g}",
                    f"{last.error_rate:.2%}" if last else "",
                    Markup("<span class='alert'>{}</span>").format(alerts) if alerts else "0",
                ]
            )
        body = "<h1>Models</h1>" + _raw_table(
            [
                "model",
                "versions",
                "traffic",
                "req/s (last window)",
                "p50 ms",
                "p99 ms",
                "errors",
                "open alerts",
            ],
            rows,
        )
        return _page("keel: models", body)

    async def model_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            return await asyncio.to_thread(self._model_page, name)
        except KeelError as exc:
            return HTMLResponse(
                Markup("<h1>Not found</h1><p>{}</p>").format(str(exc)), status_code=404
            )

    def _model_page(self, name: str) -> HTMLResponse:
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
        year = ""
        if status.year:
            charts["year"] = year_heatmap_spec(status.year, self.settings.window_s)
            charts["year"]["data"]["name"] = "days"
            year = (
                "<h2>Drift over the year</h2><div class='chart' id='year' style='width:100%'></div>"
            )
        options = "".join(
            Markup("<option value='{}'>v{}</option>").format(v.version, v.version) for v in versions
        )
        e = escape(name)
        # the forms carry their action and model as data: dashboard.js posts them
        actions = (
            "<div class='actions'>"
            f"<form data-admin='promote' data-model='{e}'>"
            f"promote <select name='version'>{options}</select> to production <button id='promote'>promote</button></form>"
            f"<form data-admin='rollback' data-model='{e}'>"
            "<button id='rollback'>roll back production</button></form>"
            f"<form data-admin='canary' data-model='{e}'>"
            f"canary <select name='version'>{options}</select> weight <input name='weight' size='4' value='0.1'> <button id='canary'>set</button></form>"
            "</div>"
        )
        body = (
            f"<h1>{e}</h1><p>"
            + "".join(
                Markup("<span class='pill'>{} v{}</span>").format(a, s.version)
                for a, s in sorted(aliases.items())
            )
            + " versions: "
            + " ".join(
                Markup("<a href='/ui/models/{}/versions/{}'>v{}</a>").format(
                    name, v.version, v.version
                )
                for v in versions
            )
            + "</p>"
            + actions
            + "<h2>Drift per window and feature</h2><div class='chart' id='heat' style='width:100%'></div>"
            + unjudged_html(status.windows)
            + year
            + "<h2>Performance: live (by label coverage) and estimated</h2><div class='chart' id='perf' style='width:100%'></div>"
        )
        section, spec = segments_section(status)
        body += section
        if spec is not None:
            charts["segments"] = spec
        body += shadow_and_alerts_html(status)
        timeline = [
            [
                str(e_["time"])[:16],
                e_["actor"],
                e_["action"],
                (e_.get("alias") or "")
                + (
                    f" ({(e_.get('details') or {})['weight']:.0%})"
                    if (e_.get("details") or {}).get("weight")
                    else ""
                ),
                "" if e_.get("version") is None else f"v{e_['version']}",
                e_.get("reason") or "",
                _numbers(e_.get("details") or {}),
            ]
            for e_ in reversed(audit)
        ]
        body += "<h2>Timeline (audit log)</h2>" + _raw_table(
            ["time", "actor", "action", "alias", "version", "reason", "numbers"],
            timeline,
            table_id="timeline",
        )
        return _page(f"keel: {name}", body, charts)

    async def version_page(self, request: Request) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        try:
            v = await asyncio.to_thread(self.models.get, f"{name}@{version}")
        except KeelError as exc:
            return HTMLResponse(
                Markup("<h1>Not found</h1><p>{}</p>").format(str(exc)), status_code=404
            )
        lineage = v.lineage or {}
        body = Markup(
            "<h1>{} v{}</h1>"
            "<p>Trained on <a href='/ui/data'>{}</a> from {} (sha256 {}); code {}.</p>"
            "<h2>Prediction explorer</h2>"
            "<form id='explore' data-model='{}'>"
            "prediction id <input name='pid' size='36'> <button>look up</button></form>"
            "<div id='explained'></div>"
            "<h2>Model card</h2><iframe id='card' src='/ui/models/{}/versions/{}/card'></iframe>"
        ).format(
            name,
            v.version,
            str(v.dataset_version),
            str(lineage.get("source_uri", "")),
            str(lineage.get("source_sha256", ""))[:12],
            str(lineage.get("code_revision") or "unknown")[:12],
            name,
            name,
            v.version,
        )
        return _page(f"keel: {name} v{v.version}", body)

    async def card(self, request: Request) -> Response:
        from keel.train import render_card_html

        name, version = request.path_params["name"], request.path_params["version"]
        v = await asyncio.to_thread(self.models.get, f"{name}@{version}")
        dataset = {}
        if v.dataset_version:
            try:
                dataset = self.datasets.get(v.dataset_version).to_dict()
            except KeelError:
                dataset = {"ref": v.dataset_version}
        text = render_card_html(
            name, v.version, v.spec, v.evaluation, v.evaluation.get("gates", []), dataset
        )
        return HTMLResponse(text, headers={"Content-Security-Policy": CARD_CSP})

    async def prediction(self, request: Request) -> Response:
        name, pid = request.path_params["name"], request.path_params["pid"]
        try:
            data = await asyncio.to_thread(self._prediction, name, pid)
        except KeelError as exc:
            return _json({"error": str(exc)}, 404)
        return _json(data)

    def _prediction(self, name: str, pid: str) -> dict[str, Any]:
        import polars as pl

        if not re.fullmatch(r"[0-9a-f]{32}", pid):
            msg = f"Prediction id {pid!r} is not one keel makes; expected 32 hexadecimal digits."
            raise ConfigError(msg)
        day = day_of(pid)  # a time-ordered id names its day: read that day's files only
        log = read_log(
            self.settings.resolved_artifacts,
            "predictions",
            name,
            days=None if day is None else [day],
        )
        hit = log.filter(pl.col("prediction_id") == pid)
        if hit.height == 0:
            msg = f"No logged prediction {pid!r} of model {name!r} (was it flushed yet?)."
            raise ConfigError(msg)
        row = (
            hit.filter(pl.col("role") != "shadow").row(0, named=True)
            if hit.filter(pl.col("role") != "shadow").height
            else hit.row(0, named=True)
        )
        features = orjson.loads(row["features"])
        shap: dict[str, float] = {}
        v, pipeline = self.models.load(f"{name}@{row['version']}")
        ev = v.evaluation
        bg = (ev.get("explanations") or {}).get("background")
        if bg:
            import pandas as pd

            from keel.train.explain import shap_values

            feats = list(ev["features"])
            cats = set(ev.get("categorical", []))
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

    async def data_page(self, request: Request) -> Response:
        return await asyncio.to_thread(self._data_page)

    def _data_page(self) -> HTMLResponse:
        rows = []
        for name in self.datasets.names():
            for v in self.datasets.versions(name):
                rows.append(
                    [
                        v.ref,
                        v.created_at.strftime("%Y-%m-%d %H:%M"),
                        v.rows_in,
                        v.rows_versioned,
                        v.rows_quarantined,
                        ", ".join(f"{k} {n}" for k, n in sorted(v.quarantine_by_rule.items())),
                        ", ".join(v.parents),
                        v.source_uri,
                    ]
                )
        body = "<h1>Data</h1>" + _raw_table(
            [
                "version",
                "created",
                "rows in",
                "versioned",
                "quarantined",
                "quarantine by rule",
                "parents",
                "source",
            ],
            rows,
        )
        return _page("keel: data", body)

    # ---- admin ----------------------------------------------------------------------------

    def _admin(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        scopes = self.settings.scopes_for(token) if token else None
        if scopes is None:
            return _json(
                {"error": "This action needs an admin token: enter it at the top of the page."}, 401
            )
        if "admin" not in scopes:
            return _json(
                {"error": f"The token has the scopes {sorted(scopes)}; this action needs 'admin'."},
                403,
            )
        return None

    async def _act(self, request: Request, action: Any) -> Response:
        refused = self._admin(request)
        if refused is not None:
            return refused
        name = request.path_params["name"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"error": "The body is not valid JSON."}, 400)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            return _json({"error": "Every change needs a reason; none was given."}, 400)
        try:
            message = await asyncio.to_thread(action, name, body, reason)
        except KeelError as exc:
            return _json({"error": str(exc)}, 409 if "moved" in str(exc) else 400)
        if self.on_alias_moved is not None:
            await self.on_alias_moved(name)
        return _json({"message": message})

    async def promote(self, request: Request) -> Response:
        def act(name: str, body: dict[str, Any], reason: str) -> str:
            from keel.train import promote

            version = _field(body, "version", int, "a version number")
            promote(
                name,
                version,
                "production",
                models=self.models,
                datasets=self.datasets,
                reason=reason,
                actor="dashboard",
            )
            return f"{name}@{version} is production."

        return await self._act(request, act)

    async def rollback(self, request: Request) -> Response:
        def act(name: str, _body: dict[str, Any], reason: str) -> str:
            state = self.models.rollback(name, reason=reason, actor="dashboard")
            return f"production of {name} rolled back to v{state.version}."

        return await self._act(request, act)

    async def canary(self, request: Request) -> Response:
        def act(name: str, body: dict[str, Any], reason: str) -> str:
            version = _field(body, "version", int, "a version number")
            weight = _field(body, "weight", float, "a share of traffic between 0 and 1")
            if not 0 < weight <= 1:
                msg = f"Field 'weight' is {weight!r}; expected a share of traffic between 0 and 1 (0.1 is 10 %)."
                raise ConfigError(msg)
            self.models.set_alias(
                name, "canary", version, weight=weight, reason=reason, actor="dashboard"
            )
            return f"{name}@{version} takes {weight:.0%} of traffic as canary."

        return await self._act(request, act)


def _field(body: dict[str, Any], name: str, kind: type[Any], expected: str) -> Any:
    """A number from an admin action's body, or an error naming the field, value and need."""
    value = body.get(name)
    try:
        if value is None or isinstance(value, bool):
            raise ValueError(value)
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError(value)
    except (TypeError, ValueError):
        msg = f"Field {name!r} is {value!r}; expected {expected}."
        raise ConfigError(msg) from None
    return number


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, default=str), status_code=status, media_type="application/json"
    )


def _raw_table(headers: list[str], rows: list[list[Any]], table_id: str | None = None) -> str:
    """A table; every cell is escaped unless it is `Markup` (HTML built with escaped values)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    tid = f" id='{table_id}'" if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _numbers(details: dict[str, Any]) -> Markup | str:
    keep = {
        k: v
        for k, v in details.items()
        if k not in ("alias", "version", "from_version", "weight") and v is not None
    }
    if not keep:
        return ""
    text = orjson.dumps(keep, default=str, option=orjson.OPT_INDENT_2).decode()
    return Markup("<details><summary>numbers</summary><pre>{}</pre></details>").format(text[:4000])


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
