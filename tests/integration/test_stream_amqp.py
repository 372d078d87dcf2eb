"""Real data through the real RabbitMQ on 127.0.0.1:5672: Toronto arrests (scikit-lego's
bundled `load_arrests`) scored from a durable queue by a model trained on them, with the
faults a real feed carries (missing values, an unseen category, junk in a number column).
Scores keep the queue's order and equal the serving core's HTTP answers for the same rows;
the faulty rows reach the dead letters with their reasons; real labels join as feedback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from sklego.datasets import load_arrests
from stream_helpers import unique

from keel.data import DatasetStore, infer_contract
from keel.monitor import read_log
from keel.registry import ModelStore
from keel.serve import KeelServer
from keel.store import ArtifactStore, Database, load_settings
from keel.stream import StreamOptions, StreamRunner, open_broker, parse_endpoint
from keel.train import spec_from_dict, train

aio_pika = pytest.importorskip("aio_pika")

pytestmark = [pytest.mark.integration, pytest.mark.brokers]
AMQP = "amqp://guest:guest@127.0.0.1:5672/%2F"


def arrests() -> pl.DataFrame:
    frame = pl.from_pandas(load_arrests(as_frame=True)).unique(maintain_order=True)
    return frame.with_row_index("arrest_id").with_columns(pl.col("arrest_id").cast(pl.Int64))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stream_amqp")
    db = Database(f"sqlite:///{path / 'keel.db'}")
    art = ArtifactStore(str(path / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = arrests()
    contract = infer_contract(frame, name="arrests", id="arrest_id", target="released")
    ref = ds.ingest(frame, contract, "arrests").version.ref
    spec = spec_from_dict(
        {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression",
         "params": {"max_iter": 500}}
    )  # fmt: skip
    train([spec], ref, datasets=ds, models=ms, register="arrests", tolerance=1.0)
    ms.set_alias("arrests", "production", 1)
    db.dispose()
    return path


def test_real_rows_from_rabbitmq_with_missing_values_and_unseen_categories(home: Path) -> None:
    asyncio.run(_scenario(home))


async def _publish(channel: Any, queue: str, bodies: list[tuple[str, bytes]]) -> None:
    await channel.declare_queue(queue, durable=True)
    for mid, body in bodies:
        await channel.default_exchange.publish(
            aio_pika.Message(body, message_id=mid, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue,
        )


async def _take(channel: Any, queue: str, n: int) -> list[dict[str, Any]]:
    q = await channel.declare_queue(queue, durable=True)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        m = await q.get(timeout=10, fail=False)
        if m is None:
            await asyncio.sleep(0.05)
            continue
        await m.ack()
        out.append(orjson.loads(m.body))
    return out


async def _scenario(home: Path) -> None:
    frame = arrests().sample(n=300, seed=4, shuffle=True)
    features = ["colour", "year", "age", "sex", "employed", "citizen", "checks"]
    rows = frame.select(features).to_dicts()
    labels = frame.get_column("released").to_list()
    faults: dict[int, tuple[str, str]] = {}
    for i in range(10, 300, 60):  # missing values where the data never had any
        rows[i]["age"] = None
        faults[i] = ("age", "null")
    for i in range(20, 300, 70):  # junk in a number column
        rows[i]["checks"] = "three"
        faults[i] = ("checks", "type")
    unseen = list(range(30, 300, 50))
    for i in unseen:  # a colour the training data never had: this contract keeps it
        rows[i]["colour"] = "Purple"

    settings = load_settings(home=home, flush_interval_s=0.3)
    server = KeelServer(settings, ModelStore.open(settings), ["arrests"])
    await server.start()
    conn = await aio_pika.connect(AMQP)
    channel = await conn.channel()
    q = {k: unique(k) for k in ("in", "out", "dead", "lab")}
    url = {k: f"{AMQP}?queue={v}" for k, v in q.items()}
    try:
        await _publish(channel, q["in"], [(f"a{i}", orjson.dumps(r)) for i, r in enumerate(rows)])
        runner = StreamRunner(
            server,
            StreamOptions(name="arrests", model="arrests", batch_size=32, max_wait_ms=5,
                          idle_exit_s=1.0, lag_interval_s=0),
            source=open_broker(parse_endpoint(url["in"], source=True)),
            sink=open_broker(parse_endpoint(url["out"], source=False)),
            dead=open_broker(parse_endpoint(url["dead"], source=False)),
        )  # fmt: skip
        totals = await runner.run()
        assert (totals.read, totals.acked) == (300, 300)
        assert (totals.scores, totals.dead_letters) == (300 - len(faults), len(faults))
        lag = server.metrics.registry.get_sample_value(
            "keel_stream_lag_messages", {"stream": "arrests"}
        )
        assert lag == 0

        scores = await _take(channel, q["out"], 300 - len(faults))
        good = [i for i in range(300) if i not in faults]
        assert [s["message_id"] for s in scores] == [f"a{i}" for i in good]  # the queue's order
        # the same answers as the serving core gives an HTTP request of the same rows
        http = await server.predict("arrests", [rows[i] for i in good])
        assert [s["prediction"] for s in scores] == [p.prediction for p in http.predictions]
        assert [s["probabilities"] for s in scores] == [p.probabilities for p in http.predictions]
        assert all(s["classes"] == [False, True] for s in scores)
        agree = sum(
            s["prediction"] == (labels[i] == "Yes") for s, i in zip(scores, good, strict=True)
        )
        assert agree / len(good) > 0.75  # a real model on real rows: most arrests released

        letters = {d["message_id"]: d for d in await _take(channel, q["dead"], len(faults))}
        assert set(letters) == {f"a{i}" for i in faults}
        for i, (field, rule) in faults.items():
            err = letters[f"a{i}"]["errors"][0]
            assert (err["field"], err["rule"]) == (field, rule)
            assert letters[f"a{i}"]["rows"] == [rows[i]]  # the input itself, to send again

        # real labels (the raw 'Yes'/'No') through a labels queue join as feedback
        await _publish(channel, q["lab"], [
            (f"l{i}", orjson.dumps({"message_id": f"a{i}", "label": labels[i]})) for i in good[:40]
        ])  # fmt: skip
        runner = StreamRunner(
            server,
            StreamOptions(name="arrests", model="arrests", idle_exit_s=1.0),
            source=open_broker(parse_endpoint(url["in"], source=True)),
            sink=open_broker(parse_endpoint(url["out"], source=False)),
            labels=open_broker(parse_endpoint(url["lab"], source=True)),
            metrics=runner.metrics,
        )
        assert (await runner.run()).labels == 40
        feedback = read_log(str(home / "artifacts"), "feedback", "arrests")
        assert set(feedback["prediction_id"]) == {scores[j]["prediction_id"] for j in range(40)}
        logged = read_log(str(home / "artifacts"), "predictions", "arrests")
        ours = logged.filter(pl.col("prediction_id").is_in([s["prediction_id"] for s in scores]))
        assert ours.height == len(good)  # each once (the comparison's HTTP call logged its own)
    finally:
        for name in q.values():
            await channel.queue_delete(name)
        await conn.close()
        await server.stop()
