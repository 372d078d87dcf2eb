"""The main job runs end to end and its figures hold together."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.demo import run_demo

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
    assert "vegaEmbed" in Path(str(figures["report_html"])).read_text()


def test_demo_refuses_to_delete_a_foreign_folder(tmp_path: Path) -> None:
    """The demo only ever wipes a folder an earlier demo made."""
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")

    with pytest.raises(SystemExit, match=r"was not made by the demo"):
        run_demo(home=tmp_path / "mine")

    assert (tmp_path / "mine" / "precious.txt").read_text() == "keep me"
