"""The stream runner in process over the real NATS JetStream on 127.0.0.1:4222 (durable pull
consumers): scores keep the subject's order, the canary takes the messages the traffic policy
gives it (sticky by message id), refused rows reach the dead letters with their reasons, the lag
gauge follows the consumer, and a labels subject feeds feedback."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from stream_helpers import ROW, build_small_registry, unique

from keel.monitor import read_log
from keel.registry import ModelStore
from keel.serve import KeelServer
from keel.store import load_settings
from keel.stream import (
    StreamMetrics,
    StreamOptions,
    StreamRunner,
    open_broker,
    parse_endpoint,
    prediction_id_of,
)

nats = pytest.importorskip("nats")

pytestmark = [pytest.mark.integration, pytest.mark.brokers]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stream_nats")
    build_small_registry(path, versions=2)
    return path


async def _drain(js: Any, subject: str, stream: str, n: int) -> list[dict[str, Any]]:
    """The first n messages of a subject, in stream order (an ephemeral ordered read)."""
    sub = await js.pull_subscribe(subject, stream=stream)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        msgs = await sub.fetch(n - len(out), timeout=5)
        for m in msgs:
            await m.ack()
            out.append(orjson.loads(m.data))
    await sub.unsubscribe()
    return out


def _runner(server: KeelServer, options: StreamOptions, urls: dict[str, str], metrics: Any,
            labels: str | None = None) -> StreamRunner:  # fmt: skip
    return StreamRunner(
        server, options,
        source=open_broker(parse_endpoint(urls["src"], source=True)),
        sink=open_broker(parse_endpoint(urls["out"], source=False)),
        dead=open_broker(parse_endpoint(urls["dead"], source=False)),
        labels=open_broker(parse_endpoint(labels, source=True)) if labels else None,
        metrics=metrics,
    )  # fmt: skip


def test_nats_order_canary_dead_letters_lag_and_labels(home: Path) -> None:
    asyncio.run(_scenario(home))


async def _scenario(home: Path) -> None:
    models = ModelStore.open(load_settings(home=home))
    models.set_alias("fraud", "canary", 2, weight=0.5)
    settings = load_settings(home=home, flush_interval_s=0.3)
    server = KeelServer(settings, models, ["fraud"])
    await server.start()
    nc = await nats.connect("nats://127.0.0.1:4222")
    js = nc.jetstream()
    s = {k: unique(k).replace("keeltest_", "KT") for k in ("in", "out", "dead", "lab")}
    urls = {
        "src": f"nats://127.0.0.1:4222?subject={s['in']}&stream={s['in']}&durable=d",
        "out": f"nats://127.0.0.1:4222?subject={s['out']}&stream={s['out']}",
        "dead": f"nats://127.0.0.1:4222?subject={s['dead']}&stream={s['dead']}",
        "lab": f"nats://127.0.0.1:4222?subject={s['lab']}&stream={s['lab']}&durable=d",
    }
    try:
        await js.add_stream(name=s["in"], subjects=[s["in"]])
        bad = {5, 41, 77}
        rows_in = 0
        for i in range(90):
            row = {**ROW, "amount": float(i), "region": "mars" if i in bad else "east"}
            body = {"rows": [row, {**ROW, "amount": 1.0}]} if i % 10 == 3 else row
            rows_in += 2 if i % 10 == 3 else 1
            await js.publish(s["in"], orjson.dumps(body), stream=s["in"])
        await js.publish(s["in"], b"[not a row]", stream=s["in"])  # message 91

        metrics = StreamMetrics(server.metrics.registry, "nt")
        lag = lambda: server.metrics.registry.get_sample_value(  # noqa: E731
            "keel_stream_lag_messages", {"stream": "nt"}
        )
        opts = dict(name="nt", model="fraud", batch_size=16, max_wait_ms=5, lag_interval_s=0)
        first = await _runner(server, StreamOptions(**opts, max_messages=30), urls, metrics).run()
        assert (first.read, first.acked) == (30, 30)
        assert lag() == 61  # the lag moves: 91 published, 30 acknowledged
        rest = await _runner(server, StreamOptions(**opts, max_messages=61), urls, metrics).run()
        assert (rest.read, rest.acked) == (61, 61)
        assert lag() == 0

        identity = parse_endpoint(urls["src"], source=True).identity
        scores = await _drain(js, s["out"], s["out"], rows_in - len(bad))
        seqs = [int(x["message_id"]) for x in scores]
        assert seqs == sorted(seqs)  # the subject's order
        assert set(seqs) == set(range(1, 91)) - {i + 1 for i in bad}
        for x in scores:  # each message answered by the version the traffic policy gives its id
            assert x["version"] == server.runtime("fraud", x["message_id"]).resolved.version
        assert {x["version"] for x in scores} == {1, 2}
        letters = await _drain(js, s["dead"], s["dead"], len(bad) + 1)
        by_id = {d["message_id"]: d for d in letters}
        assert set(by_id) == {str(i + 1) for i in bad} | {"91"}
        assert by_id["91"]["errors"][0]["rule"] == "json"
        assert by_id["6"]["errors"][0]["field"] == "region"
        assert "one of" in by_id["6"]["errors"][0]["expected"]

        # the log: each prediction once, by the role that answered, ids from the message ids
        await asyncio.to_thread(server.log.flush)
        logged = read_log(str(home / "artifacts"), "predictions", "fraud")
        assert logged.height == len(scores)
        assert set(logged["prediction_id"]) == {x["prediction_id"] for x in scores}
        assert set(logged["role"]) == {"production", "canary"}
        assert scores[0]["prediction_id"] == prediction_id_of(identity, scores[0]["message_id"], 0)

        # labels: by message id or prediction id; unknown ids and bad labels to the dead letters
        await js.add_stream(name=s["lab"], subjects=[s["lab"]])
        good = [x for x in scores if x["message_id"] not in ("4", "14")][:5]
        for x in good[:3]:
            await js.publish(s["lab"], orjson.dumps({"message_id": x["message_id"], "label": 1}))
        for x in good[3:]:
            await js.publish(
                s["lab"], orjson.dumps({"prediction_id": x["prediction_id"], "label": "0"})
            )
        await js.publish(s["lab"], orjson.dumps({"prediction_id": "f" * 32, "label": 1}))
        await js.publish(s["lab"], orjson.dumps({"message_id": "1", "label": "banana"}))
        labelled = await _runner(
            server, StreamOptions(**opts, idle_exit_s=1.5), urls, metrics, labels=urls["lab"]
        ).run()
        assert (labelled.labels, labelled.labels_refused) == (5, 2)
        feedback = read_log(str(home / "artifacts"), "feedback", "fraud")
        assert set(feedback["prediction_id"]) == {x["prediction_id"] for x in good}
        more = await _drain(js, s["dead"], s["dead"], len(bad) + 3)
        reasons = " ".join(d["reason"] for d in more[len(bad) + 1 :])
        assert "not in the log" in reasons
        assert "is_fraud" in reasons  # the target's rules refused "banana"
    finally:
        for name in s.values():
            with contextlib.suppress(Exception):  # never made (the test failed before)
                await js.delete_stream(name)
        await nc.close()
        await server.stop()
