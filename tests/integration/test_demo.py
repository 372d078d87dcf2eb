"""The main job runs end to end and its figures hold together."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from keel.demo import run_demo
from keel.monitor import Monitor
from keel.registry import ModelStore
from keel.store import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.integration


def test_demo_runs_and_catches_every_fault(tmp_path: Path) -> None:
    """The demo versions the clean rows, quarantines every injected fault, and is repeatable."""
    figures = run_demo(home=tmp_path / "demo", last_day=150)

    assert figures["faults_caught_exactly"] is True
    assert figures["same_id_again"] is True
    assert figures["rows_in"] == figures["rows_versioned"] + figures["rows_quarantined"]  # type: ignore[operator]
    assert Path(str(figures["quarantine_csv"])).exists()
    # the served part: traffic replayed through a real server, labels fed back, the loop acting
    assert figures["rows"] > 0
    assert figures["labels"] > 0
    assert "retrain" in figures["actions"] or "shadow" in figures["actions"]  # type: ignore[operator]
    assert figures["alerts"]
    report = Path(str(figures["report_html"]))
    assert "vegaEmbed" in report.read_text()
    _report_opens_offline_with_the_dashboards_figures(report, tmp_path / "demo")


def _report_opens_offline_with_the_dashboards_figures(report: Path, home: Path) -> None:
    """The one-file report in Chromium with every request but the file refused: its charts
    draw, with as many cells and points as monitoring computes for the dashboard."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    settings = Settings(home=home, window_s=86400, lookback_windows=60, secret_key="k")
    models = ModelStore.open(settings)
    status = Monitor(settings, models).overview("fraud", now=models.db.clock.now())
    models.db.dispose()
    cells = sum(len(w.drift) + (1 if w.output_drift else 0) for w in status.windows)
    refused: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith("file:")
                else (refused.append(route.request.url), route.abort())
            ),
        )
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(report.as_uri())
        page.wait_for_function("window.keelViews && keelViews.heat && keelViews.perf")
        drawn = page.evaluate("keelViews.heat.data('source_0').length")
        browser.close()
    assert refused == []
    assert errors == []
    assert drawn == cells > 0


def test_demo_refuses_to_delete_a_foreign_folder(tmp_path: Path) -> None:
    """The demo only ever wipes a folder an earlier demo made."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")

    with pytest.raises(SystemExit, match=r"was not made by the demo"):
        run_demo(home=tmp_path / "mine")

    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"
