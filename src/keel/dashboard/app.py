"""The dashboard: models, one model over time, one version, data; admin actions with a reason.

Pages are Jinja2 templates (`templates/`, autoescaped, with the monitor's `sections.html`)
rendered on the server from what `keel.dashboard.pages` reads; charts are Vega-Lite specs drawn
by the bundled scripts (served at /ui/static, no network) from a JSON block. Whenever tokens
are configured, viewing needs the `view` scope (`admin` implies it), through the login form's
session cookie or a bearer token (`Settings.scopes_for`, as the model API); every admin action
needs the `admin` scope and, from a session, the CSRF token; it asks for a reason and lands in
the audit log (actor `dashboard`). See `keel.dashboard.auth`. A refusal or failure under
`/ui/api` is the model API's error (`keel.serve.error_response`): one table of statuses and
bodies for both.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

import orjson
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.templating import Jinja2Templates

from keel.dashboard.actions import Actions, Verify
from keel.dashboard.auth import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Sessions,
    Viewer,
    safe_next,
)
from keel.dashboard.guard import CARD_CSP, DashboardGuard
from keel.dashboard.pages import PageData
from keel.data import DatasetStore
from keel.monitor import Monitor
from keel.registry import ModelStore, says_something
from keel.render import SCRIPTS, STATIC, environment, script
from keel.serve import AuthError, RequestError, ScopeError, TokenRequiredError, status_of
from keel.store import KeelError, Settings

log = logging.getLogger("keel.dashboard")

OWN_STATIC = ("dashboard.js", "dashboard.css")
"""The dashboard's own files in `static/` (the Vega scripts, charts.js and report.css are the
monitor's)."""

MAX_FORM_BYTES = 16_384
"""The login and logout forms hold a token, a CSRF token and a path: a bigger body is refused."""

Handler = Callable[[Request, Viewer], Awaitable[Response]]
Action = Callable[[str, dict[str, Any], str], str]


class Dashboard:
    """The pages and the admin endpoints over one set of stores."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        datasets: DatasetStore,
        *,
        on_alias_moved: Callable[[str], Awaitable[None]] | None = None,
        verify: Verify | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.datasets = datasets
        self.monitor = Monitor(settings, models)
        self.on_alias_moved = on_alias_moved  # the server's follower, to switch at once
        self.sessions = Sessions(settings)
        self.templates = Jinja2Templates(env=environment("keel.dashboard"))
        self.data = PageData(settings, models, datasets, self.monitor)
        # under `keel serve`, `verify` loads a version before it serves
        self.actions = Actions(models, datasets, verify)

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
            Route("/api/models/{name}/promote", act(self.actions.promote), methods=["POST"]),
            Route("/api/models/{name}/rollback", act(self.actions.rollback), methods=["POST"]),
            Route("/api/models/{name}/canary", act(self.actions.canary), methods=["POST"]),
        ]
        # pages with a year of charts and the bundled scripts are text: gzip cuts them ~5x
        guard = [Middleware(DashboardGuard, templates=self.templates)]
        gzip = [*guard, Middleware(GZipMiddleware, minimum_size=2048, compresslevel=5)]
        return [
            Route("/ui", view(self.models_page), middleware=guard),
            Mount("/ui", routes=pages, middleware=gzip),
        ]

    def shown_path(self, uri: str | None) -> str:
        """A source as pages show it (see `PageData.shown_path`)."""
        return self.data.shown_path(uri)

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
            refusal = _refusal(viewer, "view")
            return self._error(request, viewer, status_of(refusal), str(refusal))

        return endpoint

    def _api(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A read of /ui/api: the `view` scope, or an `AuthError` (401/403 as JSON)."""

        async def endpoint(request: Request) -> Response:
            viewer = self.sessions.viewer(request)
            if not viewer.can_view:
                raise _refusal(viewer, "view")
            return await handler(request, viewer)

        return endpoint

    def _acting(self, action: Action) -> Callable[[Request], Awaitable[Response]]:
        """An action: from a session, its CSRF token in the X-CSRF-Token header (403 without);
        then the `admin` scope (401/403); then a reason. The action's own errors are answered
        by the model API's table (a refused gate is a 422, a missing version a 404)."""

        async def endpoint(request: Request) -> Response:
            viewer = self.sessions.viewer(request)
            if viewer.via == "session" and not Sessions.csrf_matches(
                viewer.session, request.headers.get(CSRF_HEADER)
            ):
                msg = (
                    "The request's CSRF token is missing or wrong (header X-CSRF-Token); "
                    "reload the page and try again."
                )
                raise AuthError(msg)
            if not viewer.is_admin:
                raise _refusal(viewer, "admin")
            name = request.path_params["name"]
            body, reason = _action_body(await request.body())
            message = await asyncio.to_thread(action, name, body, reason)
            if self.on_alias_moved is not None:
                await self.on_alias_moved(name)
            return _json({"message": message})

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
        models = await asyncio.to_thread(self.data.models_rows)
        return self._render(request, viewer, "models.html", "keel: models", models=models)

    async def model_page(self, request: Request, viewer: Viewer) -> Response:
        name = request.path_params["name"]
        try:
            context = await asyncio.to_thread(self.data.model, name)
        except KeelError as exc:
            return self._error(request, viewer, 404, str(exc))
        return await asyncio.to_thread(
            self._render, request, viewer, "model.html", f"keel: {name}", **context
        )

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
        from keel.train import render_card_html, report_of

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
        """A logged prediction's inputs and SHAP values (a missing one: `NotFoundError`)."""
        name, pid = request.path_params["name"], request.path_params["pid"]
        return _json(await asyncio.to_thread(self.data.prediction, name, pid))

    async def data_page(self, request: Request, viewer: Viewer) -> Response:
        rows = await asyncio.to_thread(self.data.data_rows)
        return self._render(request, viewer, "data.html", "keel: data", rows=rows)

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
            msg = "The form could not be read (expected a short urlencoded form)."
            return self._login_form(request, "/ui", msg, 400)
        next_ = safe_next(form.get("next"))
        if not self.settings.tokens:
            return self._login_form(request, next_, "No tokens are configured.", 400)
        pending = self.sessions.load(LOGIN_COOKIE, request.cookies.get(LOGIN_COOKIE))
        if not Sessions.csrf_matches(pending, form.get(CSRF_FIELD)):
            msg = (
                "The login form expired or did not come from this page (its CSRF token is "
                "missing or wrong): log in again from this form."
            )
            return self._login_form(request, next_, msg, 403)
        token = form.get("token") or ""
        scopes = self.settings.scopes_for(token) if token else None
        if scopes is None:
            log.warning("dashboard: a login with an unknown token was refused")
            return self._login_form(request, next_, "Unknown token.", 401)
        if not scopes & {"view", "admin"}:
            msg = f"This token has the scopes {sorted(scopes)}; the dashboard needs 'view' (or 'admin')."
            return self._login_form(request, next_, msg, 403)
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


@cache
def _own_static(name: str) -> str:
    return (resources.files("keel.dashboard") / "static" / name).read_text("utf-8")


def _refusal(viewer: Viewer, needed: str) -> AuthError:
    """Why a caller may not do something that needs the scope `needed`: no (known) token, or
    a token without the scope."""
    if viewer.via == "open":
        return TokenRequiredError(
            "No tokens are configured, so no one holds 'admin': set KEEL_TOKENS with a token "
            "that has it, restart, and log in at /ui/login (or use the command line)."
        )
    if viewer.scopes is None:
        return TokenRequiredError("The bearer token is not one this server knows.")
    if viewer.via == "anonymous":
        return TokenRequiredError(
            f"This needs a token with the '{needed}' scope: log in at /ui/login, or send "
            "Authorization: Bearer <token>."
        )
    return ScopeError(f"The token has the scopes {sorted(viewer.scopes)}; this needs '{needed}'.")


def _action_body(raw: bytes) -> tuple[dict[str, Any], str]:
    """An action's JSON body and its reason (every change needs one)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        msg = "The body is not valid JSON."
        raise RequestError(msg) from None
    reason = body.get("reason") if isinstance(body, dict) else None
    if not isinstance(reason, str) or not says_something(reason):
        msg = "Every change needs a reason (field 'reason', text); none was given."
        raise RequestError(msg)
    return body, reason


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


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, default=str), status_code=status, media_type="application/json"
    )
