"""The closed loop on an accelerated clock, against a real server: drift → alert → retrain →
shadow → promote; a broken model promoted by hand → automatic rollback; no human step."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_fixtures import ADMIN, start_server, stop_server

from keel.data import DatasetStore, infer_contract
from keel.demo.replay import Replay
from keel.demo.simulate import Event, TransactionSimulator
from keel.loop import Loop, LoopPolicy
from keel.monitor import AlertStore
from keel.registry import ModelStore
from keel.serve import Client
from keel.store import ArtifactStore, Database, FakeClock, Settings
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = {
    "name": "hgb",
    "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
    "params": {"max_iter": 60, "learning_rate": 0.1, "min_samples_leaf": 20},
    "gates": ["holdout.roc_auc >= 0.6"],
}
RULES = [
    {"name": "feature_drift", "kind": "drift", "threshold": 1, "windows": 2, "trigger": True},
    {"name": "auc_drop", "kind": "performance", "threshold": 0.05, "trigger": True},
    {"name": "error_rate", "kind": "error_rate", "threshold": 0.01},
]
POLICY = {
    "recent_days": 60,
    "older_share": 0.2,
    "min_new_labels": 2000,
    "shadow_min_requests": 500,
    "shadow_min_labels": 1500,
    "shadow_max_wait_s": 30 * 86400,
    "watch_s": 10 * 86400,
    "min_watch_rows": 300,
    "retrain_timeout_s": 300,
    # non-inferiority: a fresher model that is no worse than 0.02 AUC (95 %) replaces the old
    "margin": -0.02,
}


def _settings(home: Path) -> Settings:
    return Settings(
        home=home,
        secret_key="loop-test",
        window_s=86400,
        alert_rules=RULES,
        loop=POLICY,
        alert_file=str(home / "alerts.jsonl"),
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, object]]:
    home = tmp_path / "home"
    settings = _settings(home)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    clock = FakeClock(start)
    db = Database(settings.resolved_database_url, clock=clock)
    art = ArtifactStore(settings.resolved_artifacts)
    models, datasets = ModelStore(db, art), DatasetStore(db, art, b"loop-test")
    events = (
        Event("region_shift", 8, "west grows"),
        Event("new_fraud_pattern", 8, "web fraud in the south"),
    )
    sim = TransactionSimulator(seed=11, n_customers=1500, events=events)
    first = sim.generate(days=3, per_day=500)  # a first model on little data
    contract = infer_contract(
        first, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    ref = datasets.ingest(first, contract, "tx").version.ref
    clock.advance(days=3)
    train([spec_from_dict(SPEC)], ref, datasets=datasets, models=models, register="fraud")
    models.set_alias("fraud", "production", 1, reason="first model")
    server = start_server(
        home,
        flush_interval_s=0.5,
        env={"KEEL_WINDOW_S": "86400", "KEEL_SECRET_KEY": "loop-test"},
    )
    url = server.url
    try:
        yield {
            "settings": settings, "clock": clock, "models": models, "datasets": datasets,
            "sim": sim, "url": url, "db": db,
        }  # fmt: skip
    finally:
        stop_server(server)
        db.dispose()


def _wait_for_version(client: Client, version: int) -> None:
    row = {"region": "north", "merchant_category": "grocery", "amount": 10.0, "device": "pos",
           "distance_km": 1.0, "recent_tx_24h": 0, "customer_sex": "F"}  # fmt: skip
    for _ in range(100):
        if int(client.predict("fraud", [row])["version"][0]) == version:
            return
        time.sleep(0.1)
    msg = f"the server did not switch to version {version}"
    raise AssertionError(msg)


def test_drift_retrain_shadow_promote_then_rollback(world: dict[str, object]) -> None:
    settings, clock = world["settings"], world["clock"]
    models, datasets = world["models"], world["datasets"]
    assert isinstance(settings, Settings)
    assert isinstance(clock, FakeClock)
    assert isinstance(models, ModelStore)
    assert isinstance(datasets, DatasetStore)
    loop = Loop(settings, models, datasets, policy=LoopPolicy(**POLICY))
    decisions: list[tuple[int, str, str]] = []
    with Client(str(world["url"]), token=ADMIN) as client:
        replay = Replay(client, "fraud", world["sim"], per_day=600, label_delay_scale=0.2)  # type: ignore[arg-type]
        broken: int | None = None
        for day in range(3, 60):
            replay.day(day)
            now = replay.time_of(day + 1)
            replay.labels_until(now)
            client.flush()
            clock._now = now
            t0 = time.perf_counter()
            stepped = loop.step("fraud", now=now)
            print(f"day {day}: step {time.perf_counter() - t0:.2f} s", [d.action for d in stepped])
            for d in stepped:
                decisions.append((day, d.action, d.reason))
                if d.action in ("promote", "rollback", "shadow"):
                    _wait_for_version(client, models.aliases("fraud")["production"].version)
            actions = [a for _, a, _ in decisions]
            if "promote" in actions and broken is None:
                # a person promotes a deliberately broken candidate by hand
                bad = spec_from_dict(
                    {"name": "broken", "estimator": "sklearn.dummy.DummyClassifier",
                     "params": {"strategy": "prior"}, "gates": []}
                )  # fmt: skip
                prod = models.get("fraud@production")
                result = train(
                    [bad],
                    str(prod.dataset_version),
                    datasets=datasets,
                    models=models,
                    register="fraud",
                )
                broken = result.candidates[0].version
                assert broken is not None
                # as `keel models promote fraud N --force` would, at the simulated time
                models.set_alias(
                    "fraud", "production", broken, reason="hand promotion", actor="user"
                )
                _wait_for_version(client, broken)
            if "rollback" in actions:
                break

    actions = [a for _, a, _ in decisions]
    story = "\n".join(f"day {d}: {a}: {r}" for d, a, r in decisions if a != "none")
    print(story)
    assert "alerts" in actions, story
    assert {"shadow", "promote", "rollback"} <= set(actions), story
    assert actions.index("shadow") < actions.index("promote") < actions.index("rollback")
    assert models.aliases("fraud")["production"].version != broken
    history = [(e.actor, e.action) for e in models.audit("fraud")]
    assert ("loop", "loop.retrain") in history
    assert ("loop", "alias.rollback") in history
    # each act is also recorded whole, for the loop_decision webhook (keel.hooks)
    acts = [e.details["decision"] for e in models.audit("fraud") if e.action == "loop.decision"]
    assert {"shadow", "promote", "rollback"} <= set(acts)  # a retrain that passed is "shadow"
    rollback = next(e for e in models.audit("fraud") if e.action == "alias.rollback")
    assert "regressed" in rollback.reason
    assert rollback.details["previous"] != broken
    alerts = AlertStore(world["db"]).list("fraud")  # type: ignore[arg-type]
    assert {"feature_drift", "rolled_back"} <= {a.rule for a in alerts}
    assert (Path(str(settings.home)) / "alerts.jsonl").read_text().count("\n") == len(alerts)
    # the loop's status leaves out the per-segment figures (no rule or decision reads them);
    # everything else is the status a person sees (up to `now`: the version checks above
    # sent requests at the wall clock's time, which the server may still be writing)
    full = loop.monitor.status("fraud", now=now)
    lean = loop.monitor.status("fraud", now=now, segments=False)
    assert full.segments
    assert full.segment_live
    assert lean.segments == ()
    assert lean.segment_live == ()
    assert [w for w in lean.windows if w.start < now] == [w for w in full.windows if w.start < now]
    assert [x for x in lean.live if x.window_start < now] == [
        x for x in full.live if x.window_start < now
    ]
    rest = dataclasses.replace(
        full, segments=(), segment_live=(), windows=lean.windows, live=lean.live
    )
    assert rest == lean
