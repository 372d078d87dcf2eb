"""Who may see and change what on the dashboard: login and its cookie, CSRF on every change,
the `view` scope, paths shown relative to the store, and a database that is down."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from keel.dashboard import Dashboard
from keel.dashboard.auth import LOGIN_COOKIE, SESSION_COOKIE, Sessions, safe_next
from keel.data import DatasetStore, infer_contract
from keel.registry import ModelStore
from keel.store import Settings

ADMIN, VIEWER, PREDICTOR = "admin-secret", "view-secret", "predict-secret"
TOKENS = {ADMIN: ["admin", "predict"], VIEWER: ["view"], PREDICTOR: ["predict", "feedback"]}
PID = "0" * 32
PAGES = ["/ui", "/ui/", "/ui/data", "/ui/models/fraud", "/ui/models/fraud/versions/1"]


@dataclass
class World:
    settings: Settings
    models: ModelStore
    datasets: DatasetStore
    source: Path

    def client(
        self, *, tokens: dict[str, list[str]] | None = TOKENS, https: bool = False
    ) -> Client:
        settings = self.settings.model_copy(update={"tokens": tokens or {}})
        dashboard = Dashboard(settings, self.models, self.datasets)
        return Client(Starlette(routes=dashboard.routes()), https=https)


class Client:
    """A browser-like client of the app in process (cookies kept, redirects not followed):
    httpx's ASGI transport driven from synchronous tests."""

    def __init__(self, app: Starlette, *, https: bool) -> None:
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="https://testserver" if https else "http://testserver",
        )
        self.cookies = self._client.cookies

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.get(url, **kwargs))

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.post(url, **kwargs))


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """An empty registry and one dataset version, ingested from a CSV file outside the store."""
    settings = Settings(home=tmp_path / "home", secret_key="k")
    models = ModelStore.open(settings)
    datasets = DatasetStore(models.db, models.artifacts, settings.resolved_secret_key())
    source = tmp_path / "elsewhere" / "private" / "tx.csv"
    source.parent.mkdir(parents=True)
    frame = pl.DataFrame({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]})
    frame.write_csv(source)
    datasets.ingest(str(source), infer_contract(frame, name="tx", target="y"), "tx")
    yield World(settings, models, datasets, source)
    models.db.dispose()


def login(client: Client, token: str, next_: str = "/ui") -> str:
    """Log in through the form as a browser would; the session's CSRF token."""
    form = client.get("/ui/login", params={"next": next_})
    csrf = _hidden(form.text, "csrf")
    r = client.post("/ui/login", data={"csrf": csrf, "token": token, "next": next_})
    assert r.status_code == 303, r.text
    page = client.get("/ui")
    return re.search(r'<meta name="keel-csrf" content="([^"]+)">', page.text).group(1)  # type: ignore[union-attr]


def _hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)  # type: ignore[union-attr]


class TestLogin:
    def test_login_sets_an_httponly_samesite_strict_session_cookie(self, world: World) -> None:
        """The session cookie is HttpOnly, SameSite=Strict, scoped to /ui; not Secure over http."""
        with world.client() as client:
            form = client.get("/ui/login")
            r = client.post(
                "/ui/login",
                data={"csrf": _hidden(form.text, "csrf"), "token": ADMIN, "next": "/ui/data"},
            )

        cookies = r.headers.get_list("set-cookie")
        session = next(c for c in cookies if c.startswith(f"{SESSION_COOKIE}="))
        assert r.status_code == 303
        assert r.headers["location"] == "/ui/data"
        assert "HttpOnly" in session
        assert "SameSite=strict" in session
        assert "Path=/ui" in session
        assert "Secure" not in session
        assert ADMIN not in session  # the cookie holds an HMAC of the token, never the token
        assert any(c.startswith(f"{LOGIN_COOKIE}=") and "Max-Age=0" in c for c in cookies)

    def test_the_cookie_is_secure_over_https(self, world: World) -> None:
        """Over https the session cookie (and the login form's) are Secure too."""
        with world.client(https=True) as client:
            form = client.get("/ui/login")
            r = client.post("/ui/login", data={"csrf": _hidden(form.text, "csrf"), "token": VIEWER})

        session = next(
            c for c in r.headers.get_list("set-cookie") if c.startswith(f"{SESSION_COOKIE}=")
        )
        assert "Secure" in session
        assert "Secure" in form.headers["set-cookie"]

    def test_login_without_or_with_a_wrong_csrf_token_is_refused(self, world: World) -> None:
        """The login form checks its CSRF token: 403 without it, with a wrong one, or without
        the form's cookie; no session is set."""
        with world.client() as client:
            form = client.get("/ui/login")
            csrf = _hidden(form.text, "csrf")
            missing = client.post("/ui/login", data={"token": ADMIN})
            wrong = client.post("/ui/login", data={"csrf": csrf[::-1], "token": ADMIN})
            client.cookies.clear()
            no_cookie = client.post("/ui/login", data={"csrf": csrf, "token": ADMIN})

        for r in (missing, wrong, no_cookie):
            assert r.status_code == 403
            assert "CSRF token is missing or wrong" in r.text
            assert SESSION_COOKIE not in r.headers.get("set-cookie", "")

    def test_unknown_tokens_and_tokens_without_view_cannot_log_in(self, world: World) -> None:
        """An unknown token is a 401; a predict-only token a 403 naming its scopes."""
        with world.client() as client:
            unknown = client.post(
                "/ui/login",
                data={"csrf": _hidden(client.get("/ui/login").text, "csrf"), "token": "nope"},
            )
            predictor = client.post(
                "/ui/login",
                data={"csrf": _hidden(client.get("/ui/login").text, "csrf"), "token": PREDICTOR},
            )

        assert unknown.status_code == 401
        assert "Unknown token." in unknown.text
        assert predictor.status_code == 403
        assert "the scopes [&#39;feedback&#39;, &#39;predict&#39;]" in predictor.text

    def test_logout_needs_the_csrf_token_and_ends_the_session(self, world: World) -> None:
        """Logout without the session's CSRF token is a 403 and changes nothing; with it, the
        cookie is cleared and pages send the browser to the login form again."""
        with world.client() as client:
            csrf = login(client, VIEWER)
            refused = client.post("/ui/logout", data={"csrf": "forged"})
            still = client.get("/ui/data")
            out = client.post("/ui/logout", data={"csrf": csrf})
            after = client.get("/ui/data")

        assert refused.status_code == 403
        assert still.status_code == 200
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login"
        assert after.status_code == 303
        assert after.headers["location"] == "/ui/login?next=%2Fui%2Fdata"

    def test_forged_and_borrowed_cookies_are_not_sessions(self, world: World) -> None:
        """A cookie signed with another key, edited, or the login form's cookie presented as a
        session: the page still asks for a login."""
        sessions = Sessions(world.settings.model_copy(update={"tokens": TOKENS}))
        other = Sessions(
            world.settings.model_copy(update={"secret_key": "other", "tokens": TOKENS})
        )
        good = sessions.dump(SESSION_COOKIE, sessions.new(ADMIN))
        payload, signature = good.split(".")
        forged = [
            other.dump(SESSION_COOKIE, other.new(ADMIN)),
            payload[:-2] + "xx." + signature,
            sessions.dump(LOGIN_COOKIE, sessions.new(ADMIN)),
        ]

        with world.client() as client:
            client.cookies.set(SESSION_COOKIE, good, path="/ui")
            accepted = client.get("/ui/data").status_code
            refused = []
            for value in forged:
                client.cookies.set(SESSION_COOKIE, value, path="/ui")
                refused.append(client.get("/ui/data").status_code)

        assert accepted == 200
        assert refused == [303, 303, 303]

    def test_a_session_ends_when_its_token_is_removed_or_old(self, world: World) -> None:
        """The session is looked up against the configured tokens on every request, and it
        expires after SESSION_MAX_AGE_S."""
        sessions = Sessions(world.settings.model_copy(update={"tokens": TOKENS}))
        cookie = sessions.dump(SESSION_COOKIE, sessions.new(VIEWER))
        old = Sessions(
            world.settings.model_copy(update={"tokens": TOKENS}), now=lambda: 1_000_000.0
        )
        stale = old.dump(SESSION_COOKIE, old.new(VIEWER))

        with world.client(tokens={ADMIN: ["admin"]}) as client:
            client.cookies.set(SESSION_COOKIE, cookie, path="/ui")
            removed = client.get("/ui/data")
        with world.client() as client:
            client.cookies.set(SESSION_COOKIE, stale, path="/ui")
            expired = client.get("/ui/data")

        assert removed.status_code == 303
        assert expired.status_code == 303

    @pytest.mark.parametrize(
        ("asked", "went"),
        [
            ("/ui/models/fraud?x=1", "/ui/models/fraud?x=1"),
            ("//evil.example/ui", "/ui"),
            ("https://evil.example/ui", "/ui"),
            ("/ui//evil.example", "/ui"),
            ("/ui\\@evil.example", "/ui"),
            ("/elsewhere", "/ui"),
            ("/uix", "/ui"),
            ("/ui?x=1", "/ui?x=1"),
            (None, "/ui"),
        ],
    )
    def test_after_login_only_dashboard_paths(self, asked: str | None, went: str) -> None:
        """`next` never sends the browser off the dashboard (no open redirect)."""
        assert safe_next(asked) == went


class TestViewScope:
    def test_pages_send_an_anonymous_browser_to_the_login_form(self, world: World) -> None:
        """With tokens configured, every page answers 303 to /ui/login with the page to return
        to; the login page itself and the static files are open."""
        with world.client() as client:
            answers = {path: client.get(path) for path in PAGES}
            login_page = client.get("/ui/login")
            static = client.get("/ui/static/dashboard.js")

        for path, r in answers.items():
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/ui/login?next=%2Fui"), path
        assert login_page.status_code == 200
        assert static.status_code == 200

    def test_the_prediction_api_answers_401_without_view(self, world: World) -> None:
        """Logged inputs, sensitive columns and SHAP need the view scope: 401 JSON without a
        token, 401 with an unknown one, 403 with a predict-only token."""
        path = f"/ui/api/models/fraud/predictions/{PID}"
        with world.client() as client:
            none = client.get(path)
            unknown = client.get(path, headers={"Authorization": "Bearer nope"})
            predictor = client.get(path, headers={"Authorization": f"Bearer {PREDICTOR}"})
            viewer = client.get(path, headers={"Authorization": f"Bearer {VIEWER}"})

        assert none.status_code == 401
        assert none.json()["error"].startswith("This needs a token with the 'view' scope")
        assert unknown.status_code == 401
        assert predictor.status_code == 403
        assert predictor.json() == {
            "error": "The token has the scopes ['feedback', 'predict']; this needs 'view'.",
            "kind": "AuthError",
        }
        assert viewer.status_code == 404  # through the door: no such prediction
        assert "No logged prediction" in viewer.json()["error"]

    def test_view_and_admin_sessions_and_bearers_see_the_pages(self, world: World) -> None:
        """A session or a bearer token with `view` (or `admin`, which implies it) sees every
        page; a predict-only bearer gets a 403 page."""
        with world.client() as client:
            login(client, VIEWER)
            by_session = [client.get(p).status_code for p in ("/ui", "/ui/data")]
        with world.client() as client:
            login(client, ADMIN)
            by_admin = [client.get(p).status_code for p in ("/ui", "/ui/data")]
        with world.client() as client:
            bearer = client.get("/ui/data", headers={"Authorization": f"Bearer {VIEWER}"})
            predictor = client.get("/ui/data", headers={"Authorization": f"Bearer {PREDICTOR}"})

        assert by_session == [200, 200]
        assert by_admin == [200, 200]
        assert bearer.status_code == 200
        assert predictor.status_code == 403
        assert "this needs &#39;view&#39;" in predictor.text

    def test_without_tokens_the_dashboard_is_open_and_no_one_can_act(self, world: World) -> None:
        """Laptop mode: no tokens, every page answers; actions are 401 naming KEEL_TOKENS."""
        with world.client(tokens=None) as client:
            pages = [client.get(p).status_code for p in ("/ui", "/ui/data", "/ui/login")]
            act = client.post("/ui/api/models/fraud/rollback", json={"reason": "r"})

        assert pages == [200, 200, 200]
        assert act.status_code == 401
        assert "KEEL_TOKENS" in act.json()["error"]


class TestActions:
    def test_actions_from_a_session_need_the_csrf_header(self, world: World) -> None:
        """From a session: 403 without the X-CSRF-Token header or with a wrong one, and the
        alias does not move; with it the action is taken (here: refused for its reason)."""
        path = "/ui/api/models/fraud/rollback"
        with world.client() as client:
            csrf = login(client, ADMIN)
            missing = client.post(path, json={"reason": "x"})
            wrong = client.post(path, json={"reason": "x"}, headers={"X-CSRF-Token": "no"})
            right = client.post(path, json={}, headers={"X-CSRF-Token": csrf})

        assert missing.status_code == 403
        assert wrong.status_code == 403
        assert "CSRF token is missing or wrong" in missing.json()["error"]
        assert right.status_code == 400
        assert right.json()["error"].startswith("Every change needs a reason")

    def test_actions_need_the_admin_scope(self, world: World) -> None:
        """A view session with the right CSRF token, or a view bearer: 403; no login: 401."""
        path = "/ui/api/models/fraud/canary"
        with world.client() as client:
            csrf = login(client, VIEWER)
            viewer = client.post(path, json={"reason": "x"}, headers={"X-CSRF-Token": csrf})
        with world.client() as client:
            bearer = client.post(
                path, json={"reason": "x"}, headers={"Authorization": f"Bearer {VIEWER}"}
            )
            anonymous = client.post(path, json={"reason": "x"})

        assert viewer.status_code == 403
        assert viewer.json()["error"] == "The token has the scopes ['view']; this needs 'admin'."
        assert bearer.status_code == 403
        assert anonymous.status_code == 401

    def test_an_admin_bearer_needs_no_csrf_token(self, world: World) -> None:
        """API clients send the token themselves (no ambient cookie): no CSRF check; bad
        fields are a 400 naming field, value and expectation."""
        with world.client() as client:
            r = client.post(
                "/ui/api/models/fraud/canary",
                json={"reason": "try", "version": 1, "weight": "lots"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            obj = client.post(
                "/ui/api/models/fraud/canary",
                json={"reason": {"a": 1}, "version": 1},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )

        assert r.status_code == 400
        assert r.json()["error"] == (
            "Field 'weight' is 'lots'; expected a share of traffic between 0 and 1."
        )
        assert obj.status_code == 400

    def test_an_action_the_registry_refuses_is_answered_as_the_model_api_would(
        self, world: World
    ) -> None:
        """Errors under /ui/api come from serve's one table: a model that does not exist is a
        404 whose kind names the error, as on /v1/models/.../aliases."""
        with world.client() as client:
            r = client.post(
                "/ui/api/models/fraud/promote",
                json={"reason": "try", "version": 99},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )

        assert r.status_code == 404
        assert r.json()["kind"] == "ModelNotFoundError"
        assert r.json()["error"].startswith("No model named 'fraud'")


class TestPagesShowNoMachinePaths:
    def test_a_source_outside_the_store_shows_by_its_name_only(self, world: World) -> None:
        """The data page names the CSV file, not the folders it was read from."""
        with world.client(tokens=None) as client:
            page = client.get("/ui/data").text

        assert "<td>tx.csv</td>" in page
        assert str(world.source.parent) not in page
        assert "/private/" not in page

    def test_a_source_inside_the_store_shows_relative_to_it(self, world: World) -> None:
        """A path under the artifact store or the home folder loses its root."""
        dashboard = Dashboard(world.settings, world.models, world.datasets)
        artifacts = Path(world.settings.resolved_artifacts)

        assert dashboard.shown_path(str(artifacts / "incoming" / "a.csv")) == "incoming/a.csv"
        assert dashboard.shown_path(str(world.settings.home / "raw" / "b.csv")) == "raw/b.csv"
        assert dashboard.shown_path("/etc/keel/c.parquet") == "c.parquet"
        assert dashboard.shown_path("frame:polars") == "frame:polars"


class TestHeadersAndFailures:
    def test_every_response_carries_the_security_headers(self, world: World) -> None:
        """Pages, redirects, the login page, static files and API errors: CSP without inline
        script, no framing, nosniff, no referrer."""
        with world.client() as client:
            answers = [
                client.get("/ui"),
                client.get("/ui/login"),
                client.get("/ui/static/charts.js"),
                client.get(f"/ui/api/models/fraud/predictions/{PID}"),
                client.post("/ui/login", data={}),
            ]
            login(client, VIEWER)
            answers += [client.get("/ui/data"), client.get("/ui/models/nope")]

        for r in answers:
            csp = r.headers["content-security-policy"]
            assert "script-src 'self' 'unsafe-eval';" in csp, r.url
            assert "frame-ancestors 'none'" in csp, r.url
            assert r.headers["x-content-type-options"] == "nosniff", r.url
            assert r.headers["referrer-policy"] == "no-referrer", r.url
        assert answers[-1].status_code == 404

    def test_a_database_that_is_down_is_a_503_that_says_so(self, world: World) -> None:
        """The metadata database unreachable (nothing listens on its port): pages answer a 503
        page and an action under /ui/api a 503 JSON that say what is wrong, with no SQL and no path."""
        with world.client() as client:
            login(client, ADMIN)
            world.models.db.engine = sa.create_engine(
                "postgresql+psycopg://keel@127.0.0.1:1/keel", connect_args={"connect_timeout": 2}
            )
            page = client.get("/ui")
            action = client.post(
                "/ui/api/models/fraud/rollback",
                json={"reason": "r"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )

        assert page.status_code == 503
        assert "Database unavailable" in page.text
        assert "The metadata database cannot be reached right now" in page.text
        assert page.headers["retry-after"] == "5"
        assert action.status_code == 503
        assert action.json()["error"].startswith("The metadata database is not reachable")
        assert action.json()["kind"] == "DatabaseUnavailable"
        assert action.headers["retry-after"] == "5"
        for r in (page, action):
            assert "SELECT" not in r.text
            assert "127.0.0.1" not in r.text
            assert str(world.settings.home) not in r.text

    def test_unknown_paths_and_methods_are_pages_with_the_headers(self, world: World) -> None:
        """No such page: a 404 page; a GET-only page posted to: 405; both with the CSP."""
        with world.client(tokens=None) as client:
            missing = client.get("/ui/models/fraud/versions/x")
            method = client.post("/ui/data")

        assert missing.status_code == 404
        assert method.status_code == 405
        for r in (missing, method):
            assert "<h1>" in r.text
            assert "frame-ancestors 'none'" in r.headers["content-security-policy"]

    def test_a_bug_is_a_500_with_an_error_id_and_no_internals(
        self, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An unexpected exception: a 500 page naming an error id that is in the log; the
        exception's text (SQL, a path) is not in the page."""

        def broken() -> list[str]:
            msg = "SELECT secret FROM /home/keel/keel.db"
            raise RuntimeError(msg)

        monkeypatch.setattr(world.models, "names", broken)
        with world.client(tokens=None) as client:
            r = client.get("/ui")

        error_id = re.search(r"error id ([0-9a-f]{12})", r.text)
        assert r.status_code == 500
        assert error_id is not None
        assert "SELECT" not in r.text
        assert "/home/keel" not in r.text
        assert error_id.group(1) in caplog.text
