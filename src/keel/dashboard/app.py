"""The dashboard: models, one model over time, one version, data; admin actions with a reason.

Pages are Jinja2 templates (`templates/`, autoescaped, with the monitor's `sections.html`)
rendered on the server from the registry, the monitor and the dataset store; charts are
Vega-Lite specs drawn by the bundled scripts (served at /ui/static, no network) from a JSON
block. Whenever tokens are configured, viewing needs the `view` scope (`admin` implies it),
through the login form's session cookie or a bearer token; every admin action needs the
`admin` scope and, from a session, the CSRF token; it asks for a reason and lands in the audit
log (actor `dashboard`). See `keel.dashboard.auth`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote

import orjson
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.dashboard.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Sessions,
    Viewer,
    safe_next,
)
from keel.data import DatasetStore
from keel.monitor import Monitor
from keel.monitor.logfiles import day_of, read_log
from keel.monitor.report import (
    SCRIPTS,
    STATIC,
    alert_rows,
    drift_heatmap_spec,
    environment,
    performance_spec,
    script,
    segments_section,
    shadow_row,
    unjudged,
    year_heatmap_spec,
)
from keel.monitor.service import latency_quantile
from keel.registry import ModelStore, says_something
from keel.store import ConfigError, KeelError, Settings
from keel.train import report_of

log = logging.getLogger("keel.dashboard")

OWN_STATIC = ("dashboard.js", "dashboard.css")
"""The dashboard's own files in `static/` (the Vega scripts, charts.js and report.css are the
monitor's)."""

# No inline script (dashboard.js and charts.js do it all), nothing loaded from elsewhere, never
# framed. 'unsafe-eval' because Vega compiles its expressions and field accessors with
# Function() (the CSP-safe interpreter, vega-interpreter, is not in the vendored bundle); it
# lets no injected markup run, only code that is already a script call eval. Styles may be
# inline: vega-embed and its tooltips inject their own <style>, and every value is escaped, so
# no markup of a client's can carry a style either.
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

MAX_FORM_BYTES = 16_384
"""The login and logout forms hold a token, a CSRF token and a path: a bigger body is refused."""

Handler = Callable[[Request, Viewer], Awaitable[Response]]
_STATUS_TEXT = "The dashboard has no such page, or it does not take this method here."


class DashboardGuard:
    """Around every dashboard response: the Content-Security-Policy (unless the response set
    its own), nosniff and no-referrer; the metadata database unreachable is a 503 with a page
    (or JSON under /ui/api) that says so, and any other failure a 500 with an error id that is
    in the log, never a traceback, SQL or a path."""

    def __init__(self, app: ASGIApp, templates: Jinja2Templates) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except (OperationalError, PoolTimeoutError) as exc:
            if started:
                raise
            log.warning("dashboard: metadata database unavailable: %s", type(exc).__name__)
            response = self._failure(
                scope,
                503,
                "Database unavailable",
                "The metadata database cannot be reached right now, so this page cannot be "
                "shown. Nothing was changed. Try again in a moment; if it lasts, check the "
                "database (KEEL_DATABASE_URL) and the server's log.",
            )
            response.headers["Retry-After"] = "5"
            await response(scope, receive, send_with_headers)
        except HTTPException as exc:  # no route here (404), a method not allowed (405)
            if started:
                raise
            response = self._failure(scope, exc.status_code, exc.detail, _STATUS_TEXT)
            if exc.headers:
                response.headers.update(exc.headers)
            await response(scope, receive, send_with_headers)
        except Exception:
            if started:
                raise
            error_id = uuid.uuid4().hex[:12]
            log.exception("dashboard: unexpected error %s on %s", error_id, scope.get("path"))
            response = self._failure(
                scope,
                500,
                "Internal error",
                f"Something went wrong on the server (error id {error_id}, in its log).",
            )
            await response(scope, receive, send_with_headers)

    def _failure(self, scope: Scope, status: int, heading: str, message: str) -> Response:
        if str(scope.get("path", "")).startswith("/ui/api/"):
            return _json({"error": message}, status)
        text = self.templates.get_template("error.html").render(
            title=f"keel: {heading.lower()}",
            heading=heading,
            message=message,
            viewer=Viewer("anonymous", frozenset()),
            csrf="",
            charts={},
            vega=SCRIPTS,
        )
        return HTMLResponse(text, status_code=status)


class Dashboard:
    """The pages and the admin endpoints over one set of stores."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        datasets: DatasetStore,
        *,
        on_alias_moved: Any = None,
        verify: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.settings = settings
        self.verify = verify  # under `keel serve`: the server loads a version before it serves
        self.models = models
        self.datasets = datasets
        self.monitor = Monitor(settings, models)
        self.on_alias_moved = on_alias_moved  # the server's follower, to switch at once
        self.sessions = Sessions(settings)
        self.templates = Jinja2Templates(env=environment("keel.dashboard"))

    def routes(self) -> list[BaseRoute]:
        view, api, act = self._viewing, self._api, self._acting
        pages = [
            Route("/", view(self.models_page)),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/data", view(self.data_page)),
            Route("/static/{file}", self.static),
            Route("/models/{name}", view(self.model_page)),
            Route("/models/{name}/versions/{version:int}", view(self.version_page)),
            Route("/models/{name}/versions/{version:int}/card", view(self.card)),
            Route("/api/models/{name}/predictions/{pid}", api(self.prediction)),
            Route("/api/models/{name}/promote", act(self.promote), methods=["POST"]),
            Route("/api/models/{name}/rollback", act(self.rollback), methods=["POST"]),
            Route("/api/models/{name}/canary", act(self.canary), methods=["POST"]),
        ]
        # pages with a year of charts and the bundled scripts are text: gzip cuts them ~5x
        guard = [Middleware(DashboardGuard, templates=self.templates)]
        gzip = [*guard, Middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)]
        return [
            Route("/ui", view(self.models_page), middleware=guard),
            Mount("/ui", routes=pages, middleware=gzip),
        ]

    # ---- access -------------------------------------------------------------------------------

    def _viewing(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page: the `view` scope, or off to the login page (403 with a token that lacks it)."""

        async def endpoint(request: Request) -> Response:
            viewer = self.sessions.viewer(request)
            if viewer.can_view:
                return await handler(request, viewer)
            if viewer.via == "anonymous":
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
            status, message = _refusal(viewer, "view")
            return self._error(request, viewer, status, message)

        return endpoint

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A read of /ui/api: the `view` scope, or 401/403 as JSON."""

        async def endpoint(request: Request) -> Response:
            viewer = self.sessions.viewer(request)
            if viewer.can_view:
                return await handler(request, viewer)
            status, message = _refusal(viewer, "view")
            return _json({"error": message}, status)

        return endpoint

    def _acting(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """An action: from a session, its CSRF token in the X-CSRF-Token header (403 without);
        then the `admin` scope (401/403)."""

        async def endpoint(request: Request) -> Response:
            viewer = self.sessions.viewer(request)
            if viewer.via == "session" and not Sessions.csrf_matches(
                viewer.session, request.headers.get(CSRF_HEADER)
            ):
                return _json(
                    {
                        "error": "The request's CSRF token is missing or wrong (header "
                        "X-CSRF-Token); reload the page and try again."
                    },
                    403,
                )
            if not viewer.is_admin:
                status, message = _refusal(viewer, "admin")
                return _json({"error": message}, status)
            return await handler(request, viewer)

        return endpoint

    # ---- rendering ----------------------------------------------------------------------------

    def _render(
        self,
        request: Request,
        viewer: Viewer,
        template: str,
        title: str,
        status: int = 200,
        **context: Any,
    ) -> Response:
        context.setdefault("charts", {})
        return self.templates.TemplateResponse(
            request,
            template,
            {
                "title": title,
                "viewer": viewer,
                "csrf": viewer.session.csrf if viewer.session else "",
                "vega": SCRIPTS,
                **context,
            },
            status_code=status,
        )

    def _error(self, request: Request, viewer: Viewer, status: int, message: str) -> Response:
        heading = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(status, "Error")
        return self._render(
            request,
            viewer,
            "error.html",
            f"keel: {heading.lower()}",
            status,
            heading=heading,
            message=message,
        )

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

    # ---- pages ----------------------------------------------------------------------------

    async def static(self, request: Request) -> Response:
        name = request.path_params["file"]
        if name in OWN_STATIC:
            text = _own_static(name)
        elif name in STATIC:
            text = script(name)
        else:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            text,
            media_type="text/css" if name.endswith(".css") else "text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    async def models_page(self, request: Request, viewer: Viewer) -> Response:
        models = await asyncio.to_thread(self._models)
        return self._render(request, viewer, "models.html", "keel: models", models=models)

    def _models(self) -> list[dict[str, Any]]:
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

    async def model_page(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        try:
            context = await asyncio.to_thread(self._model, name)
        except KeelError as exc:
            return self._error(request, viewer, 404, str(exc))
        return await asyncio.to_thread(
            self._render, request, viewer, "model.html", f"keel: {name}", **context
        )

    def _model(self, name: str) -> dict[str, Any]:
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

    async def version_page(self, request: Request, viewer: Viewer) -> Response:
        name, version = request.path_params["name"], request.path_params["version"]
        try:
            v = await asyncio.to_thread(self.models.get, f"{name}@{version}")
        except KeelError as exc:
            return self._error(request, viewer, 404, str(exc))
        lineage = v.lineage or {}
        return self._render(
            request,
            viewer,
            "version.html",
            f"keel: {name} v{v.version}",
            name=name,
            version=v.version,
            dataset=str(v.dataset_version),
            source=self.shown_path(lineage.get("source_uri")),
            source_sha256=str(lineage.get("source_sha256", ""))[:12],
            code=str(lineage.get("code_revision") or "unknown")[:12],
        )

    async def card(self, request: Request, viewer: Viewer) -> Response:
        from keel.train import render_card_html

        name, version = request.path_params["name"], request.path_params["version"]
        try:
            v = await asyncio.to_thread(self.models.get, f"{name}@{version}")
        except KeelError as exc:
            return self._error(request, viewer, 404, str(exc))
        dataset: dict[str, Any] = {}
        if v.dataset_version:
            try:
                dataset = self.datasets.get(v.dataset_version).to_dict()
            except KeelError:
                dataset = {"ref": v.dataset_version}
        if "source_uri" in dataset:
            dataset["source_uri"] = self.shown_path(dataset["source_uri"])
        text = await asyncio.to_thread(
            render_card_html,
            name,
            v.version,
            v.spec,
            report_of(v),
            dataset,
        )
        return HTMLResponse(text, headers={"Content-Security-Policy": CARD_CSP})

    async def prediction(self, request: Request, viewer: Viewer) -> Response:
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
        ev = report_of(v)
        bg = ev.explanations.get("background")
        if bg:
            import pandas as pd

            from keel.train.explain import shap_values

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

    async def data_page(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self._data)
        return self._render(request, viewer, "data.html", "keel: data", rows=rows)

    def _data(self) -> list[list[Any]]:
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

    # ---- login --------------------------------------------------------------------------------

    async def login_page(self, request: Request) -> Response:
        return self._login_form(request, safe_next(request.query_params.get("next")))

    def _login_form(
        self, request: Request, next_: str, error: str | None = None, status: int = 200
    ) -> Response:
        """The form, with a fresh CSRF token in its own short-lived cookie."""
        viewer = self.sessions.viewer(request)
        pending = self.sessions.new()
        response = self._render(
            request,
            viewer,
            "login.html",
            "keel: log in",
            status,
            open=not self.settings.tokens,
            login_csrf=pending.csrf,
            next=next_,
            error=error,
        )
        if self.settings.tokens:
            self.sessions.set_cookie(response, request, LOGIN_COOKIE, pending)
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        if form is None:
            return self._login_form(
                request,
                "/ui",
                "The form could not be read (expected a short urlencoded form).",
                400,
            )
        next_ = safe_next(form.get("next"))
        if not self.settings.tokens:
            return self._login_form(request, next_, "No tokens are configured.", 400)
        pending = self.sessions.load(LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
        if not Sessions.csrf_matches(pending, form.get(CSRF_FIELD)):
            return self._login_form(
                request,
                next_,
                "The login form expired or did not come from this page (its CSRF token is "
                "missing or wrong): log in again from this form.",
                403,
            )
        token = form.get("token") or ""
        scopes = self.settings.scopes_for(token) if token else None
        if scopes is None:
            log.warning("dashboard: a login with an unknown token was refused")
            return self._login_form(request, next_, "Unknown token.", 401)
        if not scopes & {"view", "admin"}:
            return self._login_form(
                request,
                next_,
                f"This token has the scopes {sorted(scopes)}; the dashboard needs 'view' "
                "(or 'admin').",
                403,
            )
        response = RedirectResponse(next_, 303)
        # a new session, with a new CSRF token: nothing from before the login carries over
        self.sessions.set_cookie(response, request, SESSION_COOKIE, self.sessions.new(token))
        self.sessions.clear_cookie(response, request, LOGIN_COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        form = await _form(request)
        session = self.sessions.session(request)
        if session is not None and not Sessions.csrf_matches(session, (form or {}).get(CSRF_FIELD)):
            return self._error(
                request,
                self.sessions.viewer(request),
                403,
                "The logout form did not come from this dashboard (its CSRF token is missing "
                "or wrong); use the log out button.",
            )
        response = RedirectResponse("/ui/login", 303)
        self.sessions.clear_cookie(response, request, SESSION_COOKIE)
        return response

    # ---- admin ----------------------------------------------------------------------------

    async def _act(self, request: Request, action: Any) -> Response:
        name = request.path_params["name"]
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _json({"error": "The body is not valid JSON."}, 400)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not says_something(reason):
            return _json(
                {"error": "Every change needs a reason (field 'reason', text); none was given."},
                400,
            )
        try:
            message = await asyncio.to_thread(action, name, body, reason)
        except KeelError as exc:
            return _json({"error": str(exc)}, 409 if "moved" in str(exc) else 400)
        if self.on_alias_moved is not None:
            await self.on_alias_moved(name)
        return _json({"message": message})

    async def promote(self, request: Request, viewer: Viewer) -> Response:
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
                verify=self.verify,
            )
            return f"{name}@{version} is production."

        return await self._act(request, act)

    async def rollback(self, request: Request, viewer: Viewer) -> Response:
        def act(name: str, _body: dict[str, Any], reason: str) -> str:
            from keel.train import rollback

            state = rollback(
                name, models=self.models, reason=reason, actor="dashboard", verify=self.verify
            )
            return f"production of {name} rolled back to v{state.version}."

        return await self._act(request, act)

    async def canary(self, request: Request, viewer: Viewer) -> Response:
        def act(name: str, body: dict[str, Any], reason: str) -> str:
            version = _field(body, "version", int, "a version number")
            weight = _field(body, "weight", float, "a share of traffic between 0 and 1")
            if not 0 < weight <= 1:
                msg = f"Field 'weight' is {weight!r}; expected a share of traffic between 0 and 1 (0.1 is 10 %)."
                raise ConfigError(msg)
            from keel.train import promote

            promote(
                name,
                version,
                "canary",
                models=self.models,
                datasets=self.datasets,
                weight=weight,
                reason=reason,
                actor="dashboard",
                verify=self.verify,
            )
            return f"{name}@{version} takes {weight:.0%} of traffic as canary."

        return await self._act(request, act)


@cache
def _own_static(name: str) -> str:
    return (resources.files("keel.dashboard") / "static" / name).read_text("utf-8")


def _refusal(viewer: Viewer, needed: str) -> tuple[int, str]:
    """Why a caller may not do something that needs the scope `needed`: 401 or 403."""
    if viewer.via == "open":
        return 401, (
            "No tokens are configured, so no one holds 'admin': set KEEL_TOKENS with a token "
            "that has it, restart, and log in at /ui/login (or use the command line)."
        )
    if viewer.scopes is None:
        return 401, "The bearer token is not one this server knows."
    if viewer.via == "anonymous":
        return 401, (
            f"This needs a token with the '{needed}' scope: log in at /ui/login, or send "
            "Authorization: Bearer <token>."
        )
    return 403, f"The token has the scopes {sorted(viewer.scopes)}; this needs '{needed}'."


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the last value of each), or None when the body is too
    big or not one."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[-1] for k, v in fields.items()}


def _field(body: dict[str, Any], name: str, kind: type[Any], expected: str) -> Any:
    """A number from an admin action's body, or an error naming the field, value and need."""
    value = body.get(name)
    try:
        if value is None or isinstance(value, bool):
            raise ValueError(value)
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        msg = f"Field {name!r} is {value!r}; expected {expected}."
        raise ConfigError(msg) from None
    return number


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, default=str), status_code=status, media_type="application/json"
    )


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
