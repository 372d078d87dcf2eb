"""Who is looking at the dashboard: a signed session cookie set by the login form, or a bearer
token (API clients of /ui/api); and the CSRF token every state-changing request must carry.

The session cookie is HttpOnly (page script never sees it), SameSite=Strict, Secure over https,
and scoped to /ui. It holds no token: only an HMAC of the token the person logged in with, the
CSRF token and the time of login, signed with a key derived from the server's secret key. Each
request looks the token up again among `settings.tokens`, so removing a token (or a scope) and
restarting ends its sessions; a session also ends after `SESSION_MAX_AGE_S`.

With no tokens configured (a laptop) the dashboard is open for viewing, as `keel serve` is;
actions still need a token with the `admin` scope, which then no one has.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from keel.store import Settings

SESSION_COOKIE = "keel_session"
"""The signed session of a person who logged in."""
LOGIN_COOKIE = "keel_login"
"""The CSRF token of the login form, before there is a session (its own cookie, so that opening
the login page never ends a session that exists)."""
SESSION_MAX_AGE_S = 12 * 3600
LOGIN_MAX_AGE_S = 3600
COOKIE_PATH = "/ui"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"

VIEWING = frozenset({"view", "admin"})
"""Scopes that may view the dashboard: `admin` implies `view`."""


@dataclass(frozen=True)
class Session:
    """What the session cookie holds (signed, not encrypted: nothing in it is secret)."""

    csrf: str
    token_mac: str | None
    """HMAC of the token logged in with; None for the login form's cookie."""
    issued: float
    """Unix time of login (wall clock, not the replay clock)."""


@dataclass(frozen=True)
class Viewer:
    """The caller of one request, as far as the dashboard can tell."""

    via: Literal["open", "session", "bearer", "anonymous"]
    scopes: frozenset[str] | None
    """The caller's scopes; None for a bearer token this server does not know."""
    session: Session | None = None

    @property
    def can_view(self) -> bool:
        return self.scopes is not None and bool(self.scopes & VIEWING)

    @property
    def is_admin(self) -> bool:
        return self.scopes is not None and "admin" in self.scopes


class Sessions:
    """Signs and reads the dashboard's cookies, and resolves who made a request."""

    def __init__(self, settings: Settings, *, now: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.now = now
        # a key of its own, derived from the secret key: a session signature is never also a
        # valid pseudonym of some value, and the reverse
        self._key = hmac.new(
            settings.resolved_secret_key(), b"keel.dashboard.session.v1", hashlib.sha256
        ).digest()

    # ---- cookies ------------------------------------------------------------------------------

    def dump(self, cookie: str, session: Session) -> str:
        payload = _b64(
            orjson.dumps({"c": session.csrf, "t": session.token_mac, "i": session.issued})
        )
        return f"{payload}.{self._sign(cookie, payload)}"

    def load(self, cookie: str, value: str | None) -> Session | None:
        """The session in a cookie's value, or None when it is missing, forged or expired.
        `cookie` is part of what is signed: a login cookie never passes as a session."""
        if not value or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(cookie, payload).encode()):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        csrf, mac, issued = data.get("c"), data.get("t"), data.get("i")
        if not isinstance(csrf, str) or not isinstance(issued, int | float):
            return None
        if mac is not None and not isinstance(mac, str):
            return None
        max_age = SESSION_MAX_AGE_S if cookie == SESSION_COOKIE else LOGIN_MAX_AGE_S
        age = self.now() - issued
        if not -60 <= age <= max_age:  # a minute of clock skew between workers
            return None
        return Session(csrf=csrf, token_mac=mac, issued=float(issued))

    def new(self, token: str | None = None) -> Session:
        """A fresh session (a new CSRF token); with `token`, a logged-in one."""
        mac = None if token is None else self._mac(token)
        return Session(csrf=secrets.token_urlsafe(32), token_mac=mac, issued=self.now())

    def set_cookie(
        self, response: Response, request: Request, cookie: str, session: Session
    ) -> None:
        response.set_cookie(
            cookie,
            self.dump(cookie, session),
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def clear_cookie(self, response: Response, request: Request, cookie: str) -> None:
        response.delete_cookie(
            cookie,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    # ---- who is asking -----------------------------------------------------------------------

    def viewer(self, request: Request) -> Viewer:
        """The caller: a bearer token wins over the cookie; no tokens configured is open."""
        if not self.settings.tokens:
            return Viewer("open", frozenset({"view"}))
        header = request.headers.get("authorization", "")
        if header[:7].lower() == "bearer ":
            return Viewer("bearer", self.settings.scopes_for(header[7:].strip()))
        session = self.session(request)
        scopes = self._scopes(session.token_mac) if session is not None else None
        if not scopes:  # no session, or its token is no longer configured: log in again
            return Viewer("anonymous", frozenset())
        return Viewer("session", scopes, session)

    def session(self, request: Request) -> Session | None:
        """The logged-in session of the request's cookie, if any."""
        session = self.load(SESSION_COOKIE, request.cookies.get(SESSION_COOKIE))
        return session if session is not None and session.token_mac is not None else None

    @staticmethod
    def csrf_matches(session: Session | None, given: str | None) -> bool:
        """Whether `given` is the session's CSRF token (constant time)."""
        if session is None or not given:
            return False
        return hmac.compare_digest(session.csrf.encode(), given.encode())

    def _scopes(self, mac: str | None) -> frozenset[str] | None:
        # every known token is compared, in constant time, as Settings.scopes_for does
        found: frozenset[str] | None = None
        if mac is None:
            return found
        for known, scopes in self.settings.tokens.items():
            if hmac.compare_digest(self._mac(known).encode(), mac.encode()):
                found = frozenset(scopes)
        return found

    def _mac(self, token: str) -> str:
        return _b64(hmac.new(self._key, b"token\0" + token.encode(), hashlib.sha256).digest())

    def _sign(self, cookie: str, payload: str) -> str:
        message = cookie.encode() + b"\0" + payload.encode()
        return _b64(hmac.new(self._key, message, hashlib.sha256).digest())


def safe_next(path: str | None) -> str:
    """Where to go after logging in: a dashboard path on this server, never elsewhere."""
    if (
        not path
        or not (path == "/ui" or path.startswith(("/ui/", "/ui?")))
        or any(c in path for c in "\\\r\n\t")
        or "//" in path
    ):
        return "/ui"
    return path


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
