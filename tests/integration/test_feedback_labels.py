"""Feedback labels over a real `keel serve`: cleaned by the target's rules, refused by name.

Real data: scikit-learn's iris (a classifier whose target is the species name) and diabetes
(a regression), both bundled. Labels are sent as a raw file spells them (`' setosa'`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import polars as pl
import pytest
from sklearn.datasets import load_diabetes, load_iris
from tests.integration.serving_fixtures import ADMIN, Server, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.monitor import Monitor
from keel.registry import ModelStore
from keel.serve import Client
from keel.store import ArtifactStore, Database, Settings
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_WHEN = dt.datetime(2026, 3, 2, 10, 15, tzinfo=dt.UTC)


def iris() -> pl.DataFrame:
    data = load_iris(as_frame=True)
    frame = pl.from_pandas(data.frame.drop(columns="target"))
    names = [str(data.target_names[i]) for i in data.target]
    return frame.rename(lambda c: c.replace(" (cm)", "").replace(" ", "_")).with_columns(
        pl.Series("species", names)
    )


def diabetes() -> pl.DataFrame:
    return pl.from_pandas(load_diabetes(as_frame=True).frame)


def _register(
    ds: DatasetStore, ms: ModelStore, name: str, frame: pl.DataFrame, target: str, estimator: str
) -> None:
    contract = infer_contract(frame, name=name, target=target)
    ref = ds.ingest(frame, contract, name).version.ref
    spec = spec_from_dict({"name": "m", "estimator": estimator, "params": {}})
    train([spec], ref, datasets=ds, models=ms, register=name)
    ms.set_alias(name, "production", 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("labels")
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    _register(ds, ms, "species", iris(), "species", "sklearn.linear_model.LogisticRegression")
    _register(ds, ms, "progress", diabetes(), "target", "sklearn.linear_model.Ridge")
    db.dispose()
    server = start_server(home, model=["species", "progress"])
    try:
        yield server
    finally:
        stop_server(server)


def _predict(server: Server, model: str, rows: list[dict[str, object]]) -> list[str]:
    with server.client(ADMIN) as http:
        answer = http.post(
            f"/v1/models/{model}/predict",
            json={"rows": rows},
            headers={"X-Keel-Time": _WHEN.isoformat()},
        )
        assert answer.status_code == 200, answer.text
        return list(answer.json()["prediction_ids"])


def test_padded_labels_are_cleaned_accepted_and_fill_live_metrics(server: Server) -> None:
    """Labels with a leading space, as in the raw file, match the classes and give live metrics."""
    frame = iris()
    ids = _predict(server, "species", frame.drop("species").to_dicts())

    with server.client(ADMIN) as http:
        answer = http.post(
            "/v1/models/species/feedback",
            json={
                "labels": [
                    {"prediction_id": i, "label": f" {s}"}
                    for i, s in zip(ids, frame["species"], strict=True)
                ]
            },
            headers={"X-Keel-Time": _WHEN.isoformat()},
        )
        http.post("/v1/admin/flush")

    assert answer.json() == {"accepted": 150, "unknown_ids": [], "refused": []}
    settings = Settings(home=server.home, window_s=86400, secret_key="k")
    models = ModelStore(
        Database(settings.resolved_database_url), ArtifactStore(settings.resolved_artifacts)
    )
    status = Monitor(settings, models).status("species", now=_WHEN + dt.timedelta(days=2))
    live = [x for x in status.live if x.role == "production"]
    assert live[0].labels == 150
    assert live[0].judged
    assert live[0].metrics["accuracy"] > 0.9


def test_labels_outside_the_classes_and_missing_ones_are_refused_by_name(server: Server) -> None:
    """'banana', null and 'NA' are refused, each with its prediction id and reason."""
    ids = _predict(server, "species", iris().drop("species").head(4).to_dicts())

    with server.client(ADMIN) as http:
        answer = http.post(
            "/v1/models/species/feedback",
            json={
                "labels": [
                    {"prediction_id": ids[0], "label": "banana"},
                    {"prediction_id": ids[1], "label": None},
                    {"prediction_id": ids[2], "label": "NA"},
                    {"prediction_id": ids[3], "label": "virginica "},
                ]
            },
        )

    assert answer.status_code == 200
    classes = "'setosa', 'versicolor', 'virginica'"
    assert answer.json() == {
        "accepted": 1,
        "unknown_ids": [],
        "refused": [
            {
                "prediction_id": ids[0],
                "label": "banana",
                "reason": f"not one of the model's classes: {classes}",
            },
            {
                "prediction_id": ids[1],
                "label": None,
                "reason": "missing label (null or a missing marker)",
            },
            {
                "prediction_id": ids[2],
                "label": "NA",
                "reason": "missing label (null or a missing marker)",
            },
        ],
    }


def test_regression_labels_must_be_numbers_in_the_python_client(server: Server) -> None:
    """keel.Client gets the refused labels back: a regression label that is not a number."""
    ids = _predict(server, "progress", diabetes().drop("target").head(3).to_dicts())

    with Client(server.url, token=ADMIN) as client:
        result = client.feedback("progress", {ids[0]: "151.0", ids[1]: "banana", ids[2]: True})

    assert result["accepted"] == 1
    assert result["refused"] == [
        {
            "prediction_id": ids[1],
            "label": "banana",
            "reason": "a regression label must be a number",
        },
        {"prediction_id": ids[2], "label": True, "reason": "a regression label must be a number"},
    ]
