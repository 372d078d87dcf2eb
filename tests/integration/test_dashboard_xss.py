"""Stored XSS: hostile text logged through predict (and in a source file's name, an audit reason
and a login link) shows as text on every dashboard page, in a real browser (Debian's chromium,
driven by Playwright), and never runs; no page breaks its Content-Security-Policy."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from serving_fixtures import ADMIN, FEEDER, ROW, Server, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
IMG = "<img src=x onerror=alert('img')>"
SCRIPT = "</script><script>alert('script')</script>"
SVG = "\"><svg onload=alert('svg')>"
VIEWER = "view-token"
TOKENS = f'{{"{ADMIN}": ["admin", "predict", "feedback"], "{VIEWER}": ["view"], "{FEEDER}": ["feedback"]}}'
# every element a payload could create, and inline script that is not a JSON data block
INJECTED = (
    "img[src=x], svg[onload], [onerror], [onload], script:not([src]):not([type='application/json'])"
)
# set before any page script: CSP violations are counted even when nothing is logged
WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


def _free_text_registry(home: Path) -> None:
    """'fraud' v1 whose contract takes any text (up to its limit) for a sensitive column and
    for the segment, and keeps unseen merchant categories: the values a contract cannot narrow
    down. Its dataset was read from a file whose name is markup; production was set with a
    reason that is markup."""
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=5, n_customers=300).generate(days=5, per_day=200)
    inferred = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    free = {"customer_sex", "region"}
    contract = dataclasses.replace(
        inferred,
        columns=tuple(
            dataclasses.replace(c, type="string", categories=None) if c.name in free else c
            for c in inferred.columns
        ),
    )
    assert contract.column("merchant_category").unseen == "keep"
    source = home / "incoming" / f"tx {SVG}.parquet"
    source.parent.mkdir()
    frame.write_parquet(source)
    ref = ds.ingest(str(source), contract, "tx").version.ref
    spec = {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}
    train([spec_from_dict(spec)], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1, reason=f"first {IMG} {SCRIPT}")
    db.dispose()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    home = tmp_path_factory.mktemp("xss")
    _free_text_registry(home)
    server = start_server(home, env={"KEEL_TOKENS": TOKENS})
    try:
        with server.client(ADMIN) as c:
            row = {**ROW, "region": SVG, "customer_sex": SCRIPT, "merchant_category": IMG}
            r = c.post("/v1/models/fraud/predict", json={"rows": [row, ROW]})
            assert r.status_code == 200, r.text
            c.post("/v1/admin/flush", json={}).raise_for_status()
        yield server, r.json()["prediction_ids"][0]
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@dataclasses.dataclass
class Watched:
    """A page with everything that would show an attack or a broken policy."""

    page: Any
    dialogs: list[str]
    console: list[str]

    def problems(self) -> dict[str, Any]:
        return {
            "dialogs": self.dialogs,
            "console errors": [
                m for m in self.console if "status of 404" not in m
            ],  # the 404 page is meant
            "csp violations": self.page.evaluate("window.__csp"),
            "injected elements": self.page.locator(INJECTED).count()
            + sum(f.locator(INJECTED).count() for f in self.page.frames[1:]),
        }


def _open(context: Any, url: str) -> Watched:
    page = context.new_page()
    watched = Watched(page, [], [])

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: watched.console.append(m.text) if m.type == "error" else None)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return watched


def _logged_in(browser: Any, server: Server, token: str) -> Any:
    context = browser.new_context()
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    page.goto(server.url + "/ui/login")
    page.fill("input[name=token]", token)
    page.click("#login button")
    page.wait_for_url(server.url + "/ui")
    page.close()
    return context


CLEAN = {"dialogs": [], "console errors": [], "csp violations": [], "injected elements": 0}


def test_every_page_shows_hostile_values_as_text_and_runs_none(
    hostile: tuple[Server, str], browser: Any
) -> None:
    """Models, model, version (with its framed card), card, data, a 404 naming markup: no
    dialog, no element of a payload, no CSP violation, no console error; the payloads that
    reach a page are there as literal text."""
    server, _ = hostile
    context = _logged_in(browser, server, VIEWER)
    expected_text = {
        "/ui/models/fraud": [IMG, SCRIPT],  # the audit reason
        "/ui/models/fraud/versions/1": [SVG],  # the source file's name
        "/ui/models/fraud/versions/1/card": [SVG],
        "/ui/data": [SVG],
        f"/ui/models/{quote(IMG)}": [IMG],  # the 404 names the model asked for
    }
    for path in ("/ui", *expected_text):
        watched = _open(context, server.url + path)
        text = watched.page.inner_text("body")

        assert watched.problems() == CLEAN, path
        for payload in expected_text.get(path, []):
            assert payload in text, (path, payload)
        if path.endswith("/versions/1"):
            card = watched.page.frame_locator("#card").locator("body").inner_text()
            assert SVG in card
        watched.page.close()
    context.close()


def test_the_prediction_explorer_shows_the_hostile_row_as_text(
    hostile: tuple[Server, str], browser: Any
) -> None:
    """The logged row's segment, sensitive column and feature, each a payload: table cells of
    text, nothing injected, nothing run."""
    server, pid = hostile
    context = _logged_in(browser, server, VIEWER)
    watched = _open(context, server.url + "/ui/models/fraud/versions/1")
    watched.page.fill("#explore input[name=pid]", pid)
    watched.page.click("#explore button")
    watched.page.wait_for_selector("#explained table")
    # an injected handler would fire on insertion; wait for the page to be idle, then look
    watched.page.wait_for_load_state("networkidle")
    cells = watched.page.locator("#explained tbody td").all_inner_texts()

    assert watched.problems() == CLEAN
    assert {IMG, SCRIPT, SVG} <= set(cells)
    context.close()


def test_the_login_page_and_the_session_are_out_of_reach_of_page_script(
    hostile: tuple[Server, str], browser: Any
) -> None:
    """A page asked for without a session lands on the login form (its `next` carrying
    markup, shown as nothing but a form value); after logging in, page script sees no cookie
    and nothing is kept in web storage."""
    server, _ = hostile
    context = browser.new_context()
    context.add_init_script(WATCH_CSP)
    redirected = _open(context, server.url + "/ui/models/fraud")
    target = "/ui/data?x=" + SVG
    watched = _open(context, server.url + "/ui/login?next=" + quote(target, safe=""))

    assert redirected.page.url == server.url + "/ui/login?next=%2Fui%2Fmodels%2Ffraud"
    assert redirected.problems() == CLEAN
    assert watched.problems() == CLEAN
    assert watched.page.input_value("input[name=next]") == target
    watched.page.fill("input[name=token]", VIEWER)
    watched.page.click("#login button")
    watched.page.wait_for_load_state("networkidle")

    assert unquote(watched.page.url) == server.url + target
    assert watched.problems() == CLEAN
    assert watched.page.evaluate("document.cookie") == ""
    assert watched.page.evaluate("sessionStorage.length + localStorage.length") == 0
    cookie = next(c for c in context.cookies() if c["name"] == "keel_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    context.close()


def test_dashboard_responses_send_the_security_headers(hostile: tuple[Server, str]) -> None:
    """Every dashboard response forbids inline script, framing, sniffing and the referrer; the
    model card runs no script at all and is framed only by its own version page."""
    server, pid = hostile
    paths = [
        "/ui",
        "/ui/login",
        "/ui/data",
        "/ui/models/fraud",
        "/ui/models/fraud/versions/1",
        "/ui/models/nope",
        "/ui/static/dashboard.js",
        f"/ui/api/models/fraud/predictions/{pid}",
    ]
    headers = {"Authorization": f"Bearer {VIEWER}"}
    for path in paths:
        r = httpx.get(server.url + path, headers=headers)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-eval';" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
    card = httpx.get(server.url + "/ui/models/fraud/versions/1/card", headers=headers).headers
    assert "default-src 'none'" in card["content-security-policy"]
    assert "script-src" not in card["content-security-policy"]
    assert "frame-ancestors 'self'" in card["content-security-policy"]


def test_the_logged_row_is_not_served_without_the_view_scope(hostile: tuple[Server, str]) -> None:
    """Inputs, sensitive columns and SHAP of a logged prediction: 401 with no token, 403 with a
    token that cannot view; the pages redirect to the login form."""
    server, pid = hostile
    url = f"{server.url}/ui/api/models/fraud/predictions/{pid}"

    none = httpx.get(url)
    feeder = httpx.get(url, headers={"Authorization": f"Bearer {FEEDER}"})
    viewer = httpx.get(url, headers={"Authorization": f"Bearer {VIEWER}"})
    page = httpx.get(f"{server.url}/ui/models/fraud/versions/1")

    assert none.status_code == 401
    assert SCRIPT not in none.text
    assert feeder.status_code == 403
    assert viewer.status_code == 200
    assert viewer.json()["features"]["customer_sex"] == SCRIPT
    assert page.status_code == 303
    assert page.headers["location"].startswith("/ui/login?next=")
