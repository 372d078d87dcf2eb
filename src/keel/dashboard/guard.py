"""Around every dashboard response: the security headers, and failures answered without
internals.

Pages get the Content-Security-Policy (unless the response set its own), nosniff and
no-referrer. A failure under `/ui/api` is answered as JSON by serve's one error table
(`keel.serve.error_response`: the same statuses, kinds and error ids as the model API); a
page's failure is an HTML page: the metadata database unreachable is a 503 that says so, a
route or method that does not exist a 404 or 405, anything else a 500 with an error id that
is in the log, never a traceback, SQL or a path.
"""

from __future__ import annotations

import logging
import uuid

import orjson
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import HTMLResponse, Response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.dashboard.auth import Viewer
from keel.render import SCRIPTS
from keel.serve import error_response, status_of

log = logging.getLogger("keel.dashboard")

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

API = "/ui/api/"
"""Paths under this prefix answer JSON, pages HTML."""
_STATUS_TEXT = "The dashboard has no such page, or it does not take this method here."
_DATABASE_TEXT = (
    "The metadata database cannot be reached right now, so this page cannot be shown. "
    "Nothing was changed. Try again in a moment; if it lasts, check the database "
    "(KEEL_DATABASE_URL) and the server's log."
)


class DashboardGuard:
    """The dashboard's headers and failure answers (see the module's docstring)."""

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
        except Exception as exc:
            if started:
                raise
            await self._failure(scope, exc)(scope, receive, send_with_headers)

    def _failure(self, scope: Scope, exc: Exception) -> Response:
        path = str(scope.get("path", ""))
        if isinstance(exc, HTTPException):  # no route here (404), a method not allowed (405)
            if path.startswith(API):
                body = orjson.dumps({"error": _STATUS_TEXT})
                response: Response = Response(body, exc.status_code, media_type="application/json")
            else:
                response = self.page(exc.status_code, exc.detail, _STATUS_TEXT)
            if exc.headers:
                response.headers.update(exc.headers)
            return response
        if path.startswith(API):
            return error_response(exc, path)
        if status_of(exc) == 503:
            log.warning("dashboard: metadata database unavailable: %s", type(exc).__name__)
            response = self.page(503, "Database unavailable", _DATABASE_TEXT)
            response.headers["Retry-After"] = "5"
            return response
        error_id = uuid.uuid4().hex[:12]
        log.error("dashboard: unexpected error %s on %s", error_id, path, exc_info=exc)
        return self.page(
            500,
            "Internal error",
            f"Something went wrong on the server (error id {error_id}, in its log).",
        )

    def page(self, status: int, heading: str, message: str) -> HTMLResponse:
        """An error page outside any request's session (no viewer, no CSRF token)."""
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
