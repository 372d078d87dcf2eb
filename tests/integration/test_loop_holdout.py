"""A retrain with `backtest_holdout_days` leaves the newest days out of its training rows, and
its backtest starts at once on those held-out rows (instead of waiting for rows logged after
the retrain); without a holdout the same backtest has no row yet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from serving_fixtures import ADMIN, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.demo.replay import Replay
from keel.demo.simulate import TransactionSimulator
from keel.loop import Loop, LoopPolicy
from keel.registry import ModelStore
from keel.serve import Client
from keel.store import ArtifactStore, Database, FakeClock, Settings
from keel.train import report_of, spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = {
    "name": "logit",
    "estimator": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 300},
    "gates": [],
}
POLICY = {
    "recent_days": 10,
    "older_share": 0.0,
    "missing_label": "0",
    "min_new_labels": 0,
    "backtest_min_labels": 50,
    "backtest_min_minority": 1,
    "retrain_timeout_s": 300,
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    home = tmp_path / "home"
    settings = Settings(home=home, secret_key="holdout", window_s=86400, alert_rules=[])
    clock = FakeClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    db = Database(settings.resolved_database_url, clock=clock)
    art = ArtifactStore(settings.resolved_artifacts)
    models, datasets = ModelStore(db, art), DatasetStore(db, art, b"holdout")
    sim = TransactionSimulator(seed=5, n_customers=800, events=())
    first = sim.generate(days=2, per_day=600)
    contract = infer_contract(
        first, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    ref = datasets.ingest(first, contract, "tx").version.ref
    clock.advance(days=2)
    train([spec_from_dict(SPEC)], ref, datasets=datasets, models=models, register="fraud")
    models.set_alias("fraud", "production", 1, reason="first model")
    server = start_server(
        home, flush_interval_s=0.5, env={"KEEL_WINDOW_S": "86400", "KEEL_SECRET_KEY": "holdout"}
    )
    try:
        with Client(server.url, token=ADMIN) as client:
            replay = Replay(client, "fraud", sim, per_day=300, label_delay_scale=0.1)
            for day in range(2, 9):
                replay.day(day)
            now = replay.time_of(9)
            replay.labels_until(now)
            client.flush()
        clock._now = now
        yield {"settings": settings, "models": models, "datasets": datasets, "now": now}
    finally:
        stop_server(server)
        db.dispose()


def test_a_holdout_retrain_is_judged_at_once_on_rows_it_never_saw(
    world: dict[str, object],
) -> None:
    settings, models, datasets = world["settings"], world["models"], world["datasets"]
    now = world["now"]
    assert isinstance(settings, Settings)
    assert isinstance(models, ModelStore)
    assert isinstance(datasets, DatasetStore)
    assert isinstance(now, dt.datetime)
    loop = Loop(settings, models, datasets, policy=LoopPolicy(**POLICY, backtest_holdout_days=3))
    [decision] = [d for d in loop.step("fraud", now=now, retrain=True) if d.acted]
    assert decision.action == "shadow", decision.reason
    until = now - dt.timedelta(days=3)
    assert decision.numbers["trained_until"] == until.isoformat()
    challenger = decision.version
    assert challenger is not None

    # every logged row it learnt from is older than the holdout's start
    trained = datasets.load(str(models.get(f"fraud@{challenger}").dataset_version))
    assert trained.height > 0
    # ... and it learnt from every one of them: refit after its holdout gates (loop.refit)
    split = report_of(models.get(f"fraud@{challenger}")).split
    assert split["refit_rows"] == trained.height == split["train_rows"] + split["holdout_rows"]
    ts = trained.get_column("ts").dt.replace_time_zone(None).dt.replace_time_zone("UTC")
    assert ts.max() < until  # type: ignore[operator]
    assert ts.min() >= until - dt.timedelta(days=10)  # type: ignore[operator]

    # judged at once on the held-out rows, with the labels that have come
    seen = loop.observe("fraud", loop.monitor.status("fraud", now=now), loop.moves("fraud"), now)
    assert seen.backtest is not None
    held_out = seen.backtest.rows
    assert 800 <= held_out <= 3 * 300 + 10  # three days of ~300 rows (seen live by day)
    assert seen.backtest.difference is not None
    assert seen.backtest.difference.labels == held_out
    assert not set(trained.get_column("transaction_id")) & set(_logged_ids_since(settings, until))

    # the same challenger without the holdout's record: no row is newer than its training
    no_holdout = loop.monitor.backtest(
        "fraud", challenger, 1, labelled_after=now, now=now, missing_label="0"
    )
    assert no_holdout.rows == 0


def _logged_ids_since(settings: Settings, since: dt.datetime) -> list[str]:
    from keel.monitor import read_log

    log = read_log(settings.resolved_artifacts, "predictions", "fraud", since.date())
    return log.filter(pl.col("time") >= since).get_column("prediction_id").to_list()


def test_a_holdout_as_long_as_the_window_is_refused() -> None:
    with pytest.raises(ValueError, match="backtest_holdout_days 10 leaves nothing to train on"):
        LoopPolicy(recent_days=10, backtest_holdout_days=10)
