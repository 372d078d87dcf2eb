"""Stored XSS: hostile text logged through predict shows as text on every dashboard page, in a
real browser (Debian's chromium, driven by Playwright), and never runs."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_fixtures import ADMIN, ROW, Server, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.data.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.browser]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
SENSITIVE = "<img src=x onerror=alert('sensitive')><script>alert('s2')</script>"
SEGMENT = "\"'><img src=x onerror=alert('segment')>"


def _free_text_registry(home: Path) -> None:
    """'fraud' v1 whose contract takes any text (up to the limit) for a sensitive column and
    for the segment: the values the contract cannot narrow down."""
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
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}
    train([spec_from_dict(spec)], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    home = tmp_path_factory.mktemp("xss")
    _free_text_registry(home)
    server = start_server(home)
    try:
        with server.client(ADMIN) as c:
            r = c.post(
                "/v1/models/fraud/predict",
                json={"rows": [{**ROW, "region": SEGMENT, "customer_sex": SENSITIVE}, ROW]},
            )
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


def _watched(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page()
    fired: list[str] = []

    def on_dialog(dialog: Any) -> None:
        fired.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url)
    page.wait_for_load_state("networkidle")
    return page, fired


def test_hostile_logged_values_show_as_text_and_never_run(
    hostile: tuple[Server, str], browser: Any
) -> None:
    """Script in a logged sensitive value and in a segment: no dialog, no element, literal text."""
    server, pid = hostile
    for path in ("/ui", "/ui/data", "/ui/models/fraud", "/ui/models/fraud/versions/1"):
        page, fired = _watched(browser, server.url + path)
        assert fired == [], path
        assert page.locator("img[src=x]").count() == 0, path
        assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
        page.close()

    page, fired = _watched(browser, server.url + "/ui/models/fraud/versions/1")
    page.fill("#explore input[name=pid]", pid)
    page.click("#explore button")
    page.wait_for_selector("#explained table")
    page.wait_for_timeout(300)  # an injected onerror would fire within a tick of the insert
    cells = page.locator("#explained tbody td").all_inner_texts()

    assert fired == []
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("#explained script").count() == 0
    assert SENSITIVE in cells
    assert SEGMENT in cells
    page.close()


def test_dashboard_pages_send_the_security_headers(hostile: tuple[Server, str]) -> None:
    """Every dashboard response forbids inline script, framing, sniffing and the referrer."""
    server, pid = hostile
    paths = [
        "/ui",
        "/ui/data",
        "/ui/models/fraud",
        "/ui/models/fraud/versions/1",
        "/ui/models/nope",
        "/ui/static/dashboard.js",
        f"/ui/api/models/fraud/predictions/{pid}",
    ]
    for path in paths:
        headers = httpx.get(server.url + path).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp, path
        assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0], path
        assert "frame-ancestors 'none'" in csp, path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer", path
    card = httpx.get(server.url + "/ui/models/fraud/versions/1/card").headers
    assert "default-src 'none'" in card["content-security-policy"]
    assert "frame-ancestors 'self'" in card["content-security-policy"]
