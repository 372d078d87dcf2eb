"""The dashboard in a real browser (Debian's chromium, driven by Playwright) against a real
`keel serve` on loopback with a few days of replayed traffic and labels."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serving_fixtures import ADMIN, FEEDER, Server, build_registry, start_server, stop_server

from keel.demo.replay import Replay
from keel.demo.simulate import TransactionSimulator
from keel.monitor import Monitor
from keel.registry import ModelStore
from keel.serve import Client
from keel.store import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
DAYS = 3
FEATURES = 6  # region, merchant_category, amount, device, distance_km, recent_tx_24h
VIEWER = "view-token"
TOKENS = f'{{"{ADMIN}": ["admin", "predict", "feedback"], "{FEEDER}": ["feedback"], "{VIEWER}": ["view"]}}'
BEARER = {"Authorization": f"Bearer {ADMIN}"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[str]]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    home = tmp_path_factory.mktemp("ui")
    build_registry(home)
    server = start_server(home, env={"KEEL_WINDOW_S": "86400", "KEEL_TOKENS": TOKENS})
    ids: list[str] = []
    with Client(server.url, token=ADMIN) as client:
        replay = Replay(
            client,
            "fraud",
            TransactionSimulator(seed=4, n_customers=800),
            per_day=300,
            label_delay_scale=0.0,
        )
        for day in range(20, 20 + DAYS):
            ids += replay.day(day)["prediction_id"].to_list()
            replay.labels_until(replay.time_of(day + 1))
        client.flush()
    yield server, ids
    stop_server(server)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _login(browser: Any, server: Server, token: str) -> Any:
    """A browser context logged in through the form (the session is an HttpOnly cookie)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/ui/login")
    page.fill("input[name=token]", token)
    page.click("#login button")
    page.wait_for_url(server.url + "/ui")
    page.close()
    return context


@pytest.fixture(scope="module")
def admin(served: tuple[Server, list[str]], browser: Any) -> Iterator[Any]:
    context = _login(browser, served[0], ADMIN)
    yield context
    context.close()


@pytest.fixture(scope="module")
def viewer(served: tuple[Server, list[str]], browser: Any) -> Iterator[Any]:
    context = _login(browser, served[0], VIEWER)
    yield context
    context.close()


def _monitored(server: Server, read: Any) -> Any:
    """What the monitor says of the served home (its own connection, closed after)."""
    settings = Settings(home=server.home, window_s=86400, secret_key="k")
    models = ModelStore.open(settings)
    try:
        return read(Monitor(settings, models))
    finally:
        models.db.dispose()


def _open(context: Any, url: str) -> tuple[Any, list[str]]:
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
    page.on(
        "response",
        lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None,
    )
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page, problems


def test_every_page_loads_clean(served: tuple[Server, list[str]], viewer: Any) -> None:
    """Every page, for a person logged in with the view scope: no failed request, no error."""
    server, _ = served
    for path in ("/ui", "/ui/data", "/ui/models/fraud", "/ui/models/fraud/versions/1"):
        page, problems = _open(viewer, server.url + path)
        assert problems == [], (path, problems)
        assert page.title().startswith("keel")
        page.close()


def test_charts_hold_the_expected_points(served: tuple[Server, list[str]], viewer: Any) -> None:
    server, _ = served
    page, problems = _open(viewer, server.url + "/ui/models/fraud")
    page.wait_for_function("window.keelViews.heat && window.keelViews.perf")
    cells = page.evaluate("window.keelViews.heat.data('cells').length")
    points = page.evaluate("window.keelViews.perf.data('points').map(p => p.series)")
    assert cells == DAYS * (FEATURES + 1)  # every window x (features + the output)
    assert sorted(points) == sorted(["estimated (v1)"] * DAYS + ["live (v1)"] * DAYS)
    assert problems == []


def test_performance_per_segment_with_coverage(
    served: tuple[Server, list[str]], viewer: Any
) -> None:
    server, _ = served
    status = _monitored(server, lambda m: m.status("fraud"))
    page, problems = _open(viewer, server.url + "/ui/models/fraud")
    page.wait_for_function("window.keelViews.segments")
    rows = page.locator("h2:has-text('Performance per segment') ~ table").first
    texts = rows.locator("tbody tr").all_inner_texts()
    assert sorted(t.split("\t")[0] for t in texts) == sorted(s.segment for s in status.segments)
    assert {s.segment for s in status.segments} >= {"north", "south", "east", "west"}
    assert all(s.labels > 0 and 0 < s.coverage <= 1 for s in status.segments)
    assert all(s.live is not None and s.estimated is not None for s in status.segments)
    # judged windows where the metric exists (ROC AUC needs both classes among the labels)
    judged = [x for x in status.segment_live if x.judged and x.metrics.get("roc_auc")]
    assert judged
    points = page.evaluate("window.keelViews.segments.data('segment_points').length")
    assert points == len(judged)
    assert problems == []


def test_models_page_shows_traffic_and_latency(
    served: tuple[Server, list[str]], viewer: Any
) -> None:
    server, _ = served
    last = _monitored(server, lambda m: m.latest("fraud"))
    assert last is not None
    page, _ = _open(viewer, server.url + "/ui")
    cells = page.locator("table tbody tr").first.locator("td").all_inner_texts()
    assert cells[0] == "fraud"
    assert "production v1" in cells[2]
    assert cells[3] == f"{last.rows / 86400:.3g}"  # the last (complete) day's requests per second
    assert cells[5] == f"{last.latency_p99_ms:g}"


def test_promotion_through_the_api_appears_on_the_timeline(
    served: tuple[Server, list[str]], viewer: Any
) -> None:
    server, _ = served
    r = httpx.post(
        f"{server.url}/v1/models/fraud/aliases/production",
        json={"version": 2, "reason": "promoted by the API in a test"},
        headers=BEARER,
    )
    assert r.status_code == 200
    page, _ = _open(viewer, server.url + "/ui/models/fraud")
    first = page.locator("#timeline tbody tr").first.inner_text()
    assert "alias.set" in first
    assert "v2" in first
    assert "promoted by the API in a test" in first


def test_a_viewer_without_the_admin_scope_changes_nothing(
    served: tuple[Server, list[str]], viewer: Any
) -> None:
    """Logged in with `view` only: the page's rollback is refused (403) and nothing moves."""
    server, _ = served
    before = httpx.get(f"{server.url}/v1/models", headers=BEARER).json()
    page, _ = _open(viewer, server.url + "/ui/models/fraud")
    page.fill("form:has(#rollback) input[name=reason]", "a viewer tries")
    page.click("#rollback")
    page.wait_for_selector("#message.error")
    assert page.inner_text("#message") == (
        "Refused (403): The token has the scopes ['view']; this needs 'admin'."
    )
    assert httpx.get(f"{server.url}/v1/models", headers=BEARER).json() == before


def test_a_rollback_from_the_page_moves_the_alias_and_is_audited(
    served: tuple[Server, list[str]], admin: Any
) -> None:
    server, _ = served
    page, _ = _open(admin, server.url + "/ui/models/fraud")
    page.fill("form:has(#rollback) input[name=reason]", "the new version misbehaves")
    page.click("#rollback")
    page.wait_for_selector("#message.ok")
    models = httpx.get(f"{server.url}/v1/models", headers=BEARER).json()
    fraud = next(m for m in models["models"] if m["name"] == "fraud")
    assert fraud["versions"]["production"] == 1
    # a fresh page: the page reloads itself after a change, and a reload of ours would race it
    page, _ = _open(admin, server.url + "/ui/models/fraud")
    first = page.locator("#timeline tbody tr").first.inner_text()
    assert "dashboard" in first
    assert "alias.rollback" in first
    assert "the new version misbehaves" in first


def test_prediction_explorer_shows_inputs_and_shap(
    served: tuple[Server, list[str]], viewer: Any
) -> None:
    server, ids = served
    page, problems = _open(viewer, server.url + "/ui/models/fraud/versions/1")
    page.fill("#explore input[name=pid]", ids[0])
    page.click("#explore button")
    page.wait_for_selector("#explained table")
    text = page.inner_text("#explained")
    assert "amount" in text
    assert "version 1" in text
    shap = page.locator("#explained tbody tr td:nth-child(3)").all_inner_texts()
    assert any(s.strip() for s in shap)
    assert problems == []


def test_a_canary_set_from_the_page_takes_its_weight_and_is_audited(
    served: tuple[Server, list[str]], admin: Any
) -> None:
    server, _ = served
    page, problems = _open(admin, server.url + "/ui/models/fraud")
    canary = page.locator("form:has(#canary)")
    canary.locator("select[name=version]").select_option("2")
    canary.locator("input[name=weight]").fill("2.5")
    canary.locator("input[name=reason]").fill("try the boosted trees on a quarter")
    page.click("#canary")
    page.wait_for_selector("#message.error")
    assert "'weight' is 2.5" in page.inner_text("#message")
    assert "canary" not in _versions(server)
    canary.locator("input[name=weight]").fill("0.25")
    page.click("#canary")
    page.wait_for_selector("#message.ok")
    assert "25%" in page.inner_text("#message")
    assert _versions(server)["canary"] == 2
    # a fresh page: the page reloads itself after a change, and a reload of ours would race it
    page, _ = _open(admin, server.url + "/ui/models/fraud")
    first = page.locator("#timeline tbody tr").first.inner_text()
    assert "dashboard" in first
    assert "try the boosted trees on a quarter" in first
    assert "v2" in first
    assert "canary (25%)" in first
    assert [p for p in problems if "400" not in p] == []  # only the refused weight


def test_logging_out_ends_the_session(served: tuple[Server, list[str]], browser: Any) -> None:
    """The log out button (a form with the CSRF token) clears the cookie: the next page asks
    for a login again."""
    server, _ = served
    context = _login(browser, server, VIEWER)
    page, _ = _open(context, server.url + "/ui/data")
    page.click("#logout")
    page.wait_for_url(server.url + "/ui/login")
    page.goto(server.url + "/ui/data")
    assert page.url == server.url + "/ui/login?next=%2Fui%2Fdata"
    assert [c["name"] for c in context.cookies()] == ["keel_login"]
    context.close()


def _versions(server: Server) -> dict[str, int]:
    models = httpx.get(f"{server.url}/v1/models", headers=BEARER).json()
    return next(m for m in models["models"] if m["name"] == "fraud")["versions"]  # type: ignore[no-any-return]
