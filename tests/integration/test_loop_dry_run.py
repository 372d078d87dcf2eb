"""`keel loop --dry-run` evaluates the alert rules (storing and sending nothing) and says what
a real step would do: on a state where the real step fires alerts and retrains, it says so."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa

from keel.data import DatasetStore, infer_contract
from keel.loop import Loop, LoopPolicy
from keel.monitor import AlertStore
from keel.monitor.profiles import ProfileSpec, update_columns
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database, Settings, tables
from keel.train import report_of, spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
HOURS = 12
FEATURES = [f"x{i}" for i in range(4)]
NOW = START + dt.timedelta(hours=HOURS + 1)


def _profile(spec: ProfileSpec, rng: np.random.Generator, shift: float) -> dict[str, Any]:
    xs = rng.normal(size=(300, len(FEATURES))) + shift
    score = 1 / (1 + np.exp(-xs.sum(axis=1)))
    p = spec.empty()
    update_columns(
        p,
        {f: xs[:, i] for i, f in enumerate(FEATURES)},
        score,
        pl.Series((score > 0.5).astype(int).astype(str)),
        np.full(300, 2.0),
    )
    return p


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Settings, ModelStore, DatasetStore]]:
    """A model whose last windows drifted by 1.5 sd on every feature (hourly windows)."""
    settings = Settings(
        home=tmp_path,
        secret_key="k",
        window_s=3600,
        alert_file=str(tmp_path / "alerts.jsonl"),
        loop={"min_new_labels": 0},
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, len(FEATURES)))
    frame = pl.DataFrame({f: x[:, i] for i, f in enumerate(FEATURES)}).with_columns(
        pl.Series("y", (x.sum(axis=1) + rng.normal(size=1500) > 0).astype(int))
    )
    db = Database(settings.resolved_database_url)
    art = ArtifactStore(settings.resolved_artifacts)
    datasets, models = DatasetStore(db, art, b"k"), ModelStore(db, art)
    ref = datasets.ingest(frame, infer_contract(frame, name="m", target="y"), "m").version.ref
    spec = spec_from_dict(
        {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression", "params": {}}
    )
    train([spec], ref, datasets=datasets, models=models, register="m")
    models.set_alias("m", "production", 1)
    pspec = ProfileSpec.from_evaluation(report_of(models.get("m@1")))
    rows = []
    for h in range(HOURS):
        profile = _profile(pspec, rng, 1.5 if h >= HOURS // 2 else 0.0)
        start = START + dt.timedelta(hours=h)
        rows.append(
            {
                "model": "m",
                "version": 1,
                "role": "production",
                "segment": "",
                "window_start": start,
                "writer": "a",
                "window_s": 3600,
                "rows": profile["rows"],
                "profile": profile,
                "updated_at": start + dt.timedelta(hours=1),
            }
        )
    with db.begin() as conn:
        conn.execute(sa.insert(tables.window_profiles), rows)
    yield settings, models, datasets
    db.dispose()


def test_dry_run_says_which_alerts_would_fire_and_that_it_would_retrain(world: Any) -> None:
    """The dry run lists the alerts the real step fires and says it would retrain; it stores
    and sends no alert, and the real step then does what the dry run said."""
    settings, models, datasets = world
    loop = Loop(settings, models, datasets, policy=LoopPolicy(min_new_labels=0))

    dry = loop.step("m", now=NOW, dry_run=True)
    stored_after_dry = AlertStore(models.db).list("m")
    sent_after_dry = (settings.home / "alerts.jsonl").exists()
    real = loop.step("m", now=NOW)

    assert [d.action for d in dry] == ["alerts", "retrain"]
    assert not any(d.acted for d in dry)
    would = [a["rule"] for a in dry[0].numbers["alerts"]]
    assert "feature_drift" in would
    assert dry[0].reason == f"would fire {len(would)} alert(s): " + ", ".join(would)
    assert dry[1].reason.startswith("would retrain (alert(s) ")
    assert "feature_drift" in dry[1].reason
    assert stored_after_dry == []
    assert not sent_after_dry
    assert [d.action for d in real] == ["alerts", "retrain"]
    assert [a["rule"] for a in real[0].numbers["alerts"]] == would


def test_the_command_line_dry_run_prints_what_it_would_do(world: Any) -> None:
    """`keel loop m --once --dry-run` prints the alerts and the retrain, not 'nothing to do'."""
    settings, _, _ = world
    env = {
        **os.environ,
        "KEEL_HOME": str(settings.home),
        "KEEL_SECRET_KEY": "k",
        "KEEL_WINDOW_S": "3600",
        "KEEL_LOOP": json.dumps({"min_new_labels": 0}),
    }

    out = subprocess.run(
        [sys.executable, "-m", "keel", "loop", "m", "--once", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )

    decisions = json.loads(out.stdout)
    assert [d["action"] for d in decisions] == ["alerts", "retrain"]
    assert decisions[0]["reason"].startswith("would fire ")
    assert decisions[1]["reason"].startswith("would retrain (alert(s) ")
    assert AlertStore(Database(settings.resolved_database_url)).list("m") == []
