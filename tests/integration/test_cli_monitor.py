"""The monitoring and loop commands, end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from serving_fixtures import build_registry
from typer.testing import CliRunner

from keel.cli import app

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_drift_between_two_files_json_and_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    ref = pl.DataFrame(
        {"x": rng.normal(0, 1, n), "y": rng.normal(0, 1, n), "c": rng.choice(["a", "b"], n)}
    )
    cur = pl.DataFrame(
        {"x": rng.normal(0.5, 1, n), "y": rng.normal(0, 1, n), "c": rng.choice(["a", "b"], n)}
    )
    ref.write_parquet(tmp_path / "ref.parquet")
    cur.write_csv(tmp_path / "cur.csv")  # CSV read as text: numbers are found again

    exact = runner.invoke(
        app,
        [
            "monitor",
            "drift",
            str(tmp_path / "ref.parquet"),
            str(tmp_path / "cur.csv"),
            "--exact",
            "--json",
        ],
    )
    binned = runner.invoke(
        app,
        [
            "monitor",
            "drift",
            str(tmp_path / "ref.parquet"),
            str(tmp_path / "cur.csv"),
            "--multivariate",
            "-o",
            str(tmp_path / "d.html"),
        ],
    )

    assert exact.exit_code == 0, exact.output
    data = json.loads(exact.output)
    assert data["drifted_columns"] == ["x"]
    assert {c["name"]: c["method"] for c in data["columns"]} == {
        "x": "wasserstein",
        "y": "wasserstein",
        "c": "jensen_shannon",
    }
    assert binned.exit_code == 0, binned.output
    assert "1 of 3 columns drifted" in binned.output
    page = (tmp_path / "d.html").read_text()
    assert "vegaEmbed" in page
    assert "Domain classifier" in page


def test_status_alerts_report_and_loop_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_registry(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    monkeypatch.setenv("KEEL_SECRET_KEY", "k")

    status = runner.invoke(app, ["monitor", "status", "fraud", "--json"])
    table = runner.invoke(app, ["monitor", "status", "fraud"])
    report = runner.invoke(app, ["monitor", "report", "fraud", "-o", str(tmp_path / "r.html")])
    alerts = runner.invoke(app, ["alerts", "list", "--json"])
    dry = runner.invoke(app, ["loop", "fraud", "--once", "--dry-run", "--json"])
    unknown = runner.invoke(app, ["monitor", "status", "nope"])

    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["version"] == 1
    assert "fraud@1" in table.output
    assert report.exit_code == 0
    assert "Audit timeline" in (tmp_path / "r.html").read_text()
    assert json.loads(alerts.output) == []
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)[-1]["action"] == "none"
    assert unknown.exit_code != 0
    assert "nope" in str(unknown.exception)
