"""The loop's safety: a crashing or hanging retrain leaves production untouched and alerts;
two loops never act at once; alerts are stored once per window and sent to their sinks."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.data import DatasetStore, infer_contract
from keel.demo.simulate import TransactionSimulator
from keel.loop import Lease, Loop, LoopPolicy
from keel.monitor import Alert, AlertStore, DriftRule
from keel.registry import ModelStore
from keel.store import ArtifactStore, ConflictError, Database, FakeClock, Settings
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NOW = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


@pytest.fixture
def registry(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[Settings, ModelStore, DatasetStore]]:
    settings = Settings(home=tmp_path, database_url=database_url, secret_key="k")
    db = Database(database_url, clock=FakeClock(NOW))
    art = ArtifactStore(settings.resolved_artifacts)
    models, datasets = ModelStore(db, art), DatasetStore(db, art, b"k")
    frame = TransactionSimulator(seed=2, n_customers=500).generate(days=4, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    ref = datasets.ingest(frame, contract, "tx").version.ref
    spec = {
        "name": "lr",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 500},
    }
    train([spec_from_dict(spec)], ref, datasets=datasets, models=models, register="fraud")
    models.set_alias("fraud", "production", 1)
    yield settings, models, datasets
    db.dispose()


def _log_rows(
    settings: Settings, models: ModelStore, datasets: DatasetStore, *, labels: bool = True
) -> int:
    """Log 200 of the training rows as predictions a day before NOW (with their labels)."""
    import orjson
    import polars as pl

    from keel.monitor import PredictionLog, prediction_ids

    prod = models.get("fraud@1")
    frame = datasets.load(str(prod.dataset_version)).head(200)
    features = prod.evaluation["features"]
    at = NOW - dt.timedelta(days=1)
    ids = prediction_ids(frame.height, at)
    # scores as good as the model's at training: no performance alert from these rows
    target = frame.get_column("is_fraud").cast(pl.Int64).to_list()
    log = PredictionLog(settings.resolved_artifacts)
    log.log(
        {
            "prediction_id": ids,
            "time": [at] * frame.height,
            "model": ["fraud"] * frame.height,
            "version": [1] * frame.height,
            "role": ["production"] * frame.height,
            "segment": [None] * frame.height,
            "features": [orjson.dumps(r).decode() for r in frame.select(features).to_dicts()],
            "prediction": [str(y) for y in target],
            "probabilities": [[0.2, 0.8] if y else [0.8, 0.2] for y in target],
            "latency_ms": [1.0] * frame.height,
        }
    )
    if labels:
        log.add_feedback("fraud", [(i, str(y)) for i, y in zip(ids, target, strict=True)], at)
    return log.flush()


def _loop(settings: Settings, models: ModelStore, datasets: DatasetStore, **policy: object) -> Loop:
    return Loop(settings, models, datasets, policy=LoopPolicy(min_new_labels=0, **policy))  # type: ignore[arg-type]


def test_a_crashing_retrain_leaves_production_and_alerts(
    registry: tuple[Settings, ModelStore, DatasetStore],
) -> None:
    settings, models, datasets = registry
    _log_rows(settings, models, datasets)
    # the training data's file is gone: the child fails while loading it
    version = datasets.get(str(models.get("fraud@1").dataset_version))
    for f in Path(settings.resolved_artifacts).rglob("*"):
        if f.is_file() and version.data_sha256 in f.name:
            f.unlink()

    decisions = _loop(settings, models, datasets).step("fraud", now=NOW, retrain=True)

    assert decisions[-1].action == "retrain"
    assert "failed" in decisions[-1].reason
    assert models.aliases("fraud")["production"].version == 1
    assert "shadow" not in models.aliases("fraud")
    alerts = AlertStore(models.db).list("fraud")
    assert [a.rule for a in alerts] == ["retrain_failed"]
    assert ("loop", "loop.retrain") in [(e.actor, e.action) for e in models.audit("fraud")]


def test_a_hanging_retrain_is_stopped(registry: tuple[Settings, ModelStore, DatasetStore]) -> None:
    settings, models, datasets = registry
    _log_rows(settings, models, datasets)
    decisions = _loop(settings, models, datasets, retrain_timeout_s=0.3).step(
        "fraud", now=NOW, retrain=True
    )

    assert "did not finish in 0.3 s" in decisions[-1].reason
    assert models.aliases("fraud")["production"].version == 1
    assert AlertStore(models.db).list("fraud")[0].rule == "retrain_failed"


def test_a_retrain_without_labelled_rows_says_what_is_missing(
    registry: tuple[Settings, ModelStore, DatasetStore],
) -> None:
    """No labels since the window's start: the loop says so, with the counts, and starts no
    child (whose error would be a puzzling 'No features to train on')."""
    settings, models, datasets = registry
    loop = _loop(settings, models, datasets, recent_days=30)
    nothing = loop.step("fraud", now=NOW, retrain=True)[-1]
    logged = _log_rows(settings, models, datasets, labels=False)
    unlabelled = loop.step("fraud", now=NOW, retrain=True)[-1]

    since = "2025-01-30 00:00 UTC"
    assert nothing.action == "retrain"
    assert nothing.reason == (
        f"retrain of fraud failed (no labelled rows since {since} to retrain 'fraud' on: "
        "0 logged rows, 0 labels. Send labels to /v1/models/fraud/feedback (or lengthen the "
        "loop's recent_days) before retraining); production fraud@1 untouched"
    )
    assert logged == 200
    assert f"since {since} to retrain 'fraud' on: 200 logged rows, 0 labels" in unlabelled.reason
    assert "No features" not in unlabelled.reason
    assert models.aliases("fraud")["production"].version == 1
    assert [a.rule for a in AlertStore(models.db).list("fraud")] == ["retrain_failed"] * 2


def test_two_loops_never_act_at_once(registry: tuple[Settings, ModelStore, DatasetStore]) -> None:
    settings, models, datasets = registry
    other = Lease(models.db, "loop:fraud", ttl_s=60)
    assert other.acquire()
    with pytest.raises(ConflictError, match="Another loop holds the lease"):
        _loop(settings, models, datasets).step("fraud", now=NOW)
    assert not Lease(models.db, "loop:fraud", ttl_s=60).acquire()
    other.release()
    assert _loop(settings, models, datasets).step("fraud", now=NOW)[-1].action == "none"
    expired = Lease(models.db, "loop:fraud", ttl_s=-1)
    assert expired.acquire()
    assert Lease(models.db, "loop:fraud", ttl_s=60).acquire()  # an expired lease is taken over


def test_alerts_deduplicate_cool_down_and_reach_their_sinks(
    tmp_path: Path, database_url: str
) -> None:
    received: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    db = Database(database_url)
    store = AlertStore(
        db,
        jsonl=str(tmp_path / "alerts.jsonl"),
        webhook=f"http://127.0.0.1:{server.server_port}/hook",
    )
    rule = DriftRule("drift", 1, cooldown_s=3600)
    window = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)

    def alert(start: dt.datetime) -> Alert:
        return Alert("fraud", "drift", "warning", "region drifted", start, {"columns": ["region"]})

    assert store.fire(alert(window), rule, NOW)
    assert not store.fire(alert(window), rule, NOW + dt.timedelta(hours=5))  # same window
    nxt = window + dt.timedelta(days=1)
    assert not store.fire(alert(nxt), rule, NOW + dt.timedelta(minutes=30))  # cool-down
    assert store.fire(alert(nxt), rule, NOW + dt.timedelta(hours=2))
    server.shutdown()
    server.server_close()

    stored = AlertStore(db).list("fraud")
    db.dispose()
    assert [a.evidence for a in stored] == [{"columns": ["region"]}] * 2
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert len(received) == 2
    assert received[0]["text"].startswith("[keel] warning: fraud")  # type: ignore[union-attr]
