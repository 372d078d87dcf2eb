"""`keel serve` for real on loopback: protocols, errors, auth, feedback, log, hot swap."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures import (
    ADMIN,
    FEEDER,
    ROW,
    Server,
    build_registry,
    running,
    start_server,
    stop_server,
)

from keel.monitor import AlertStore, read_windows
from keel.monitor.appender import ParquetAppender
from keel.monitor.logfiles import PREDICTION_SCHEMA
from keel.registry import ModelStore
from keel.serve import Client, create_app
from keel.store import ArtifactStore, Database, Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]
COLUMNS = list(ROW)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("serve")
    build_registry(home)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    yield from running(home)


def rows(n: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(n)
    cats = ["grocery", "travel", "electronics", "fuel"]
    return [
        {
            **ROW,
            "amount": float(rng.uniform(1, 900)),
            "merchant_category": cats[i % 4],
            "recent_tx_24h": int(i % 5),
        }
        for i in range(n)
    ]


def test_predict_rows_and_columns_agree(server: Server) -> None:
    """The two JSON shapes give the same answer, with probabilities in the order of classes."""
    data = rows(5)
    with server.client() as c:
        a = c.post("/v1/models/fraud/predict", json={"rows": data}).json()
        b = c.post(
            "/v1/models/fraud/predict", json={"columns": {k: [r[k] for r in data] for k in COLUMNS}}
        ).json()

    assert a["model"] == "fraud"
    assert a["version"] == 1
    assert a["classes"] == [0, 1]  # the int label's type, not "0"/"1"
    assert set(a["predictions"]) <= {0, 1}
    assert a["probabilities"] == b["probabilities"]
    assert all(abs(sum(p) - 1) < 1e-9 for p in a["probabilities"])
    assert len(set(a["prediction_ids"])) == 5


def test_mlflow_formats_give_the_same_predictions(server: Server) -> None:
    """dataframe_split, dataframe_records, instances, inputs and CSV all answer like /predict."""
    data = rows(4)
    with server.client() as c:
        ours = c.post("/v1/models/fraud/predict", json={"rows": data}).json()["predictions"]
        bodies = [
            {
                "dataframe_split": {
                    "columns": COLUMNS,
                    "data": [[r[k] for k in COLUMNS] for r in data],
                }
            },
            {"dataframe_records": data},
            {"instances": data},
            {"inputs": {k: [r[k] for r in data] for k in COLUMNS}},
        ]
        answers = [c.post("/invocations", json=b).json()["predictions"] for b in bodies]
        csv = pl.DataFrame(data).write_csv()
        answers.append(
            c.post("/invocations", content=csv, headers={"content-type": "text/csv"}).json()[
                "predictions"
            ]
        )
        assert c.get("/ping").status_code == 200

    assert answers == [ours] * 5


def test_open_inference_protocol_with_tritonclient(server: Server) -> None:
    """The real tritonclient talks to keel unchanged: metadata, readiness and infer."""
    import tritonclient.http as tc

    data = rows(3)
    client = tc.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    meta = client.get_model_metadata("fraud")
    assert [i["name"] for i in meta["inputs"]] == COLUMNS
    inputs = []
    for name in COLUMNS:
        values = [r[name] for r in data]
        if isinstance(values[0], str):
            arr = np.array(values, dtype=object).reshape(-1, 1)
            t = tc.InferInput(name, arr.shape, "BYTES")
        else:
            arr = np.array(values, dtype=np.float64).reshape(-1, 1)
            t = tc.InferInput(name, arr.shape, "FP64")
        t.set_data_from_numpy(arr, binary_data=False)
        inputs.append(t)
    result = client.infer(
        "fraud", inputs, outputs=[tc.InferRequestedOutput("predict_proba", binary_data=False)]
    )
    proba = result.as_numpy("predict_proba")
    with server.client() as c:
        ours = c.post("/v1/models/fraud/predict", json={"rows": data}).json()["probabilities"]

    assert np.allclose(proba.reshape(3, 2), np.array(ours), atol=1e-12)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{not json", 400, "The body is not valid JSON"),
        (b'{"rows": []}', 400, "The request has no rows"),
        (b'{"rowz": [1]}', 400, "expected 'rows' or 'columns'"),
        (
            b'{"rows": [{"region": "mars"}]}',
            422,
            "field 'region' has value 'mars'; expected one of central, east, north, south, west",
        ),
        (
            b'{"rows": [{"region": "north", "merchant_category": "fuel", "amount": "lots", "device": "pos", "distance_km": 1, "recent_tx_24h": 0}]}',
            422,
            "field 'amount' has value 'lots'; expected a number (float)",
        ),
        (
            b'{"rows": [{"region": "north", "merchant_category": "fuel", "amount": 5, "device": "pos", "distance_km": 1}]}',
            422,
            "the field 'recent_tx_24h' (int)",
        ),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    server: Server, body: bytes, status: int, message: str
) -> None:
    """Client mistakes are 4xx with a message naming the field, value and expectation."""
    with server.client() as c:
        r = c.post(
            "/v1/models/fraud/predict", content=body, headers={"content-type": "application/json"}
        )
        after = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})

    assert r.status_code == status
    assert message in r.json()["error"]
    assert after.status_code == 200  # the server keeps serving


def test_unknown_model_and_oversized_body(server: Server) -> None:
    """Unknown model 404 listing the served ones; a body over the limit 413."""
    with server.client() as c:
        missing = c.post("/v1/models/nope/predict", json={"rows": [ROW]})
        big = c.post("/v1/models/fraud/predict", json={"rows": [ROW] * 5000})

    assert missing.status_code == 404
    assert missing.json()["error"] == "Model 'nope' is not served here; served models: ['fraud']."
    assert big.status_code == 413


def test_feedback_counts_known_and_lists_unknown_ids(server: Server) -> None:
    """Labels for answered predictions are accepted; unknown ids come back, nothing dropped silently."""
    with server.client() as c:
        ids = c.post("/v1/models/fraud/predict", json={"rows": rows(3)}).json()["prediction_ids"]
        denied = c.post(
            "/v1/models/fraud/feedback", json={"labels": [{"prediction_id": ids[0], "label": 1}]}
        )
    with server.client(FEEDER) as c:
        r = c.post(
            "/v1/models/fraud/feedback",
            json={
                "labels": [{"prediction_id": i, "label": 0} for i in ids]
                + [{"prediction_id": "nope", "label": 1}]
            },
        )

    assert denied.status_code == 401
    assert r.json() == {"accepted": 3, "unknown_ids": ["nope"], "refused": []}


def _served(client: httpx.Client, role: str) -> int | None:
    fraud = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "fraud")
    version: int | None = fraud["versions"].get(role)
    return version


def test_admin_needs_the_admin_scope_and_moves_are_followed(server: Server) -> None:
    """Admin calls: 401 without a token, 403 without the scope; a move is served by the time
    the admin call answers (the server follows it before it says 200)."""
    with server.client() as anon, server.client(FEEDER) as feeder, server.client(ADMIN) as admin:
        assert (
            anon.post("/v1/models/fraud/aliases/production", json={"version": 2}).status_code == 401
        )
        forbidden = feeder.post("/v1/models/fraud/aliases/production", json={"version": 2})
        assert forbidden.status_code == 403
        assert "this call needs 'admin'" in forbidden.json()["error"]
        moved = admin.post(
            "/v1/models/fraud/aliases/production", json={"version": 2, "reason": "test"}
        )
        assert moved.status_code == 200
        assert anon.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()["version"] == 2
        back = admin.post("/v1/models/fraud/rollback", json={"reason": "test over"})
        assert back.json()["version"] == 1
        assert _served(anon, "production") == 1
        canary = admin.post("/v1/models/fraud/aliases/canary", json={"version": 2, "weight": 0.5})
        assert canary.status_code == 200
        assert _served(anon, "canary") == 2
        versions = {
            anon.post(
                "/v1/models/fraud/predict",
                json={"rows": [ROW]},
                headers={"X-Request-Key": f"user{i}"},
            ).json()["version"]
            for i in range(40)
        }
        sticky = {
            anon.post(
                "/v1/models/fraud/predict", json={"rows": [ROW]}, headers={"X-Request-Key": "user7"}
            ).json()["version"]
            for _ in range(10)
        }
        assert admin.delete("/v1/models/fraud/aliases/canary").status_code == 200

    assert versions == {1, 2}
    assert len(sticky) == 1


def test_probes_metrics_and_docs(server: Server) -> None:
    """Health, readiness, Prometheus text, the OpenAPI document and a docs page."""
    with server.client() as c:
        c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json() == {"status": "ready"}
        text = c.get("/metrics").text
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200

    assert 'keel_requests_total{endpoint="predict",model="fraud",status="200"' in text
    assert "keel_batch_size_bucket" in text
    assert "/v2/models/{name}/infer" in spec["paths"]


def test_prediction_log_holds_every_answer(server: Server, home: Path) -> None:
    """Answered predictions reach the Parquet log (written now by the admin flush), with
    features."""
    with server.client() as c, server.client(ADMIN) as admin:
        ids = c.post("/v1/models/fraud/predict", json={"rows": rows(7)}).json()["prediction_ids"]
        flushed = admin.post("/v1/admin/flush")
    assert flushed.status_code == 200

    logged = ParquetAppender(str(home / "artifacts"), "predictions", schema=PREDICTION_SCHEMA).read(
        "fraud"
    )

    got = logged.filter(pl.col("prediction_id").is_in(ids))
    assert got.height == 7
    assert set(got["segment"].to_list()) == {"north"}
    assert '"amount"' in got["features"][0]


def test_window_profiles_count_replayed_traffic(server: Server, home: Path) -> None:
    """Rows sent with X-Keel-Time land in the profile of their window, counted exactly."""
    with server.client() as c:
        for at, n in (("2026-03-01T10:15:00+00:00", 40), ("2026-03-01T11:20:00+00:00", 30)):
            r = c.post(
                "/v1/models/fraud/predict", json={"rows": rows(n)}, headers={"X-Keel-Time": at}
            )
            assert r.status_code == 200
        bad = c.post(
            "/v1/models/fraud/predict", json={"rows": rows(1)}, headers={"X-Keel-Time": "soon"}
        )
        flushed = c.post("/v1/admin/flush", headers={"Authorization": f"Bearer {ADMIN}"})
    assert bad.status_code == 400
    assert "X-Keel-Time" in bad.json()["error"]
    assert flushed.json()["profiles_saved"] is True

    db = Database(f"sqlite:///{home / 'keel.db'}")
    windows = [
        w
        for w in read_windows(db, "fraud", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        if w.start < dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    ]
    db.dispose()

    assert [(w.start.hour, w.rows) for w in windows] == [(10, 40), (11, 30)]
    first = windows[0].profile.to_json()
    assert sum(first["columns"]["amount"]["counts"]) == 40
    assert first["columns"]["merchant_category"]["counts"] == {
        "grocery": 10, "travel": 10, "electronics": 10, "fuel": 10
    }  # fmt: skip
    assert sum(first["output"]["scores"]) == 40
    assert sum(first["latency"]["counts"]) == 40


def test_a_segment_can_have_a_version_of_its_own(server: Server) -> None:
    """`production:west` answers the rows of region west; the others get production."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    west, north = {**ROW, "region": "west"}, {**ROW, "region": "north"}
    with server.client() as c:
        r = c.post("/v1/models/fraud/aliases/production:west", json={"version": 2}, headers=admin)
        assert r.status_code == 200  # served once this answers
        mixed = c.post("/v1/models/fraud/predict", json={"rows": [west, north]}).json()
        alone = {
            v: c.post(f"/v1/models/fraud@{alias}/predict", json={"rows": [west]}).json()
            for v, alias in ((1, "production"), (2, "production:west"))
        }
        bad = c.post("/v1/models/fraud/predict", json={"rows": [north, {**west, "amount": "x"}]})
        skip = c.post(
            "/v1/models/fraud/predict",
            json={"rows": [north, {**west, "amount": "x"}, west], "on_error": "skip"},
        ).json()
        c.delete("/v1/models/fraud/aliases/production:west", headers=admin)
        refused = c.post("/v1/models/fraud/aliases/prod-west", json={"version": 2}, headers=admin)

    assert mixed["versions"] == [2, 1]
    assert mixed["probabilities"][0] == alone[2]["probabilities"][0]
    assert alone[1]["version"] == 1
    assert alone[1]["probabilities"][0] != alone[2]["probabilities"][0]
    assert bad.status_code == 422
    assert bad.json()["details"][0]["row"] == 1
    assert skip["versions"] == [1, None, 2]
    assert skip["probabilities"][2] == alone[2]["probabilities"][0]
    assert [(e["row"], e["field"]) for e in skip["errors"]] == [(1, "amount")]
    assert refused.status_code == 400


def test_python_client(server: Server) -> None:
    """keel.Client: frames in, frames out; feedback; errors raised with the server's message."""
    with Client(server.url, token=ADMIN) as client:
        out = client.predict("fraud", pl.DataFrame(rows(3)))
        fb = client.feedback("fraud", {out["prediction_id"][0]: 1})
        with pytest.raises(Exception, match=r"HTTP 422: Input does not fit"):
            client.predict("fraud", [{"region": "mars"}])

    assert out.columns == ["prediction_id", "prediction", "p_0", "p_1", "version"]
    assert out["prediction"].dtype == pl.Int64
    assert fb == {"accepted": 1, "unknown_ids": [], "refused": []}


def test_python_client_skips_bad_rows_on_request(server: Server) -> None:
    """Client.predict(on_error="skip"): one row per input, null and a reason for the bad ones."""
    data = rows(3)
    data[1] = {**data[1], "amount": "lots"}
    with Client(server.url) as client:
        out = client.predict("fraud", data, on_error="skip")
        alone = client.predict("fraud", [data[0], data[2]])

    assert out.height == 3
    assert out["prediction"].to_list()[1] is None
    assert out["prediction_id"].to_list()[1] is None
    assert out["error"].to_list() == [
        None,
        "field 'amount' has value 'lots'; expected a number (float)",
        None,
    ]
    assert out["p_1"].to_list()[0::2] == alone["p_1"].to_list()


def test_moving_production_under_load_fails_nothing(home: Path, tmp_path: Path) -> None:
    """Load from 16 threads while production moves and rolls back: zero failed requests, and
    each move is served (awaited by what the clients see, not by a clock)."""
    server = start_server(home)
    failures: list[int] = []
    seen: list[int] = []
    stop = threading.Event()
    answered = threading.Condition()

    def load() -> None:
        with server.client() as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
                except httpx.TransportError:
                    failures.append(-1)
                    continue
                if r.status_code != 200:
                    failures.append(r.status_code)
                else:
                    with answered:
                        seen.append(int(r.json()["version"]))
                        answered.notify_all()

    def served(version: int, after: int) -> bool:
        """Wait (bounded) until the clients get an answer from `version` after `after` answers."""
        with answered:
            return answered.wait_for(lambda: version in seen[after:], timeout=30)

    threads = [threading.Thread(target=load) for _ in range(16)]
    try:
        for th in threads:
            th.start()
        assert served(1, 0)
        with server.client(ADMIN) as admin:
            mark = len(seen)
            r = admin.post(
                "/v1/models/fraud/aliases/production", json={"version": 2, "reason": "under load"}
            )
            assert r.status_code == 200, r.text
            assert served(2, mark)
            mark = len(seen)
            r = admin.post("/v1/models/fraud/rollback", json={"reason": "back"})
            assert r.status_code == 200, r.text
            assert served(1, mark)
            after_rollback = len(seen)
            assert served(1, after_rollback + 50)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=30)
        stop_server(server)

    assert failures == []
    assert seen[-1] == 1
    assert len(seen) > 100


def test_kill_minus_9_leaves_a_readable_log(home: Path) -> None:
    """After kill -9 mid-load every Parquet file reads, and every answer before the last flush is there."""
    server = start_server(home, flush_interval_s=0.2)
    answered: list[tuple[float, str]] = []
    with server.client() as c:
        t_end = time.monotonic() + 2.0
        while time.monotonic() < t_end:
            r = c.post("/v1/models/fraud/predict", json={"rows": rows(3)})
            answered += [(time.monotonic(), i) for i in r.json()["prediction_ids"]]
        flushed = c.post("/v1/admin/flush", headers={"Authorization": f"Bearer {ADMIN}"})
    assert flushed.status_code == 200
    stop_server(server, hard=True)

    appender = ParquetAppender(str(home / "artifacts"), "predictions", schema=PREDICTION_SCHEMA)
    for f in appender.files("fraud"):
        pl.read_parquet(f)  # every file reads: no torn file
    logged = set(appender.read("fraud")["prediction_id"].to_list())

    assert {i for _, i in answered} <= logged


def _polls(metrics: str) -> float:
    """The follower's completed polls of fraud's aliases, from the metrics text."""
    line = 'keel_alias_polls_total{model="fraud"} '
    found = [float(x[len(line) :]) for x in metrics.splitlines() if x.startswith(line)]
    return found[0] if found else 0.0


def _await_metric(client: httpx.Client, holds: Callable[[str], bool]) -> None:
    """Scrape /metrics until `holds(text)` (bounded: the server's own pace decides, not a
    sleep of the test's)."""
    for _ in range(600):
        if holds(client.get("/metrics").text):
            return
        time.sleep(0.05)
    pytest.fail("the metric never reached the expected value")


def test_a_version_that_fails_to_load_is_refused_with_an_alert(tmp_path: Path) -> None:
    """Another process moves production to a version whose file was changed: the follower
    refuses it once, with a stored alert and a metric, and the version before keeps answering
    every request. (Over this server's own API the move is refused before it is made:
    tests/integration/test_admin_api.py.)"""
    home = tmp_path / "broken"
    home.mkdir()
    build_registry(home)
    db = Database(f"sqlite:///{home / 'keel.db'}")
    models = ModelStore(db, ArtifactStore(str(home / "artifacts")))
    path = Path(models.get("fraud@2").artifact_uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    server = start_server(home)
    try:
        # as `keel models promote --force` from another machine would (its gates need no server)
        models.set_alias("fraud", "production", 2, reason="the file was changed on disk")
        refused = 'keel_version_load_failures_total{model="fraud"} 1.0'
        with server.client() as c:
            # the refusal is awaited on the metric, however slow the load
            _await_metric(c, lambda text: refused in text)
            # then five more polls of the follower: it must not try again
            polls = _polls(c.get("/metrics").text)
            _await_metric(c, lambda text: _polls(text) >= polls + 5)
            versions = [
                c.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()["version"]
                for _ in range(20)
            ]
            metrics = c.get("/metrics").text
    finally:
        stop_server(server)
    assert versions == [1] * 20  # the registry moved; the server would not follow
    assert 'keel_version_load_failures_total{model="fraud"} 1.0' in metrics
    alerts = AlertStore(db).list("fraud")
    db.dispose()
    assert [a.rule for a in alerts] == ["version_refused"]  # once, not at every poll
    assert alerts[0].severity == "critical"
    assert "fraud@2" in alerts[0].message
    assert "fraud@1 keeps serving" in alerts[0].message
    assert "changed" in alerts[0].evidence["error"]


def requests_by_status(client: httpx.Client) -> dict[tuple[str, str, str], float]:
    """keel_requests_total from /metrics, summed per (model, endpoint, status)."""
    out: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "keel_requests_total":
                lab = sample.labels
                key = (lab["model"], lab["endpoint"], lab["status"])
                out[key] = out.get(key, 0.0) + sample.value
    return out


def refused_rows(client: httpx.Client) -> float:
    return sum(
        s.value
        for f in text_string_to_metric_families(client.get("/metrics").text)
        for s in f.samples
        if s.name == "keel_rows_refused_total" and s.labels["model"] == "fraud"
    )


def test_on_error_skip_answers_the_good_rows_and_lists_the_bad(server: Server, home: Path) -> None:
    """With on_error=skip a bad row gets null and an entry in errors; the good ones are answered,
    logged and the bad ones counted; without it the request is still a 422."""
    data = rows(4)
    data[1] = {**data[1], "amount": "lots"}
    data[3] = {k: v for k, v in data[3].items() if k != "recent_tx_24h"}
    with server.client() as c:
        before = refused_rows(c)
        skip = c.post("/v1/models/fraud/predict", json={"rows": data, "on_error": "skip"})
        good = c.post("/v1/models/fraud/predict", json={"rows": [data[0], data[2]]}).json()
        columns = c.post(
            "/v1/models/fraud/predict",
            json={"columns": {k: [data[0][k], "x"] for k in COLUMNS}, "on_error": "skip"},
        ).json()
        strict = c.post("/v1/models/fraud/predict", json={"rows": data})
        unknown = c.post("/v1/models/fraud/predict", json={"rows": data, "on_error": "ignore"})
        none_good = c.post("/v1/models/fraud/predict", json={"rows": [data[1]], "on_error": "skip"})
        after = refused_rows(c)
        c.post("/v1/admin/flush", headers={"Authorization": f"Bearer {ADMIN}"})

    body = skip.json()
    assert skip.status_code == 200
    assert body["predictions"][1] is None
    assert body["predictions"][3] is None
    assert body["probabilities"][0::2] == good["probabilities"]
    assert body["probabilities"][1] is None
    assert body["prediction_ids"][1] is None
    assert body["errors"] == [
        {"row": 1, "field": "amount", "value": "lots", "rule": "type", "expected": "a number (float)"},
        {"row": 3, "field": "recent_tx_24h", "value": None, "rule": "missing_column", "expected": "the field 'recent_tx_24h' (int)"},
    ]  # fmt: skip
    assert columns["errors"][0]["row"] == 1
    assert columns["predictions"][1] is None
    assert strict.status_code == 422
    assert unknown.status_code == 400
    assert unknown.json()["error"].startswith("'on_error' has the value 'ignore'; expected 'fail'")
    assert none_good.status_code == 200
    assert none_good.json()["predictions"] == [None]
    assert after - before == 2 + 1 + 2 + 1  # skip, columns, the 422, the all-bad request
    logged = ParquetAppender(str(home / "artifacts"), "predictions", schema=PREDICTION_SCHEMA).read(
        "fraud"
    )
    ids = [i for i in body["prediction_ids"] if i is not None]
    assert logged.filter(pl.col("prediction_id").is_in(ids)).height == 2


def test_fast_path_and_routed_endpoint_answer_alike(home: Path, tmp_path: Path) -> None:
    """The plain-ASGI hot path and the Starlette route give the same bodies, statuses and counts."""
    shutil.copytree(home, tmp_path / "home")
    settings = Settings(home=tmp_path / "home", profiles=False, flush_interval_s=60)
    app = create_app(settings, names=["fraud"])
    server = app.state.server
    data = rows(3)
    data[2] = {**data[2], "region": "mars"}
    bodies = [
        {"rows": data, "on_error": "skip"},
        {"rows": data},
        {"rows": data[:2]},
        {"rows": data, "on_error": 3},
        {"rows": []},
    ]

    async def run() -> list[list[tuple[int, object]]]:
        await server.start()
        try:
            answers = []
            for asgi in (app, app.router):  # app: through FastPredict; app.router: the route
                transport = httpx.ASGITransport(app=asgi)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    got = []
                    for b in [*bodies, None]:
                        r = await (
                            c.post("/v1/models/fraud/predict", json=b)
                            if b is not None
                            else c.post("/v1/models/nope/predict", json={"rows": data})
                        )
                        answer = r.json()
                        if isinstance(answer, dict) and "prediction_ids" in answer:
                            answer["prediction_ids"] = [i is None for i in answer["prediction_ids"]]
                        got.append((r.status_code, answer))
                    answers.append(got)
            return answers
        finally:
            await server.stop()

    fast, routed = asyncio.run(run())
    counts = {
        s.labels["status"]: s.value
        for f in text_string_to_metric_families(
            __import__("prometheus_client").generate_latest(server.metrics.registry).decode()
        )
        for s in f.samples
        if s.name == "keel_requests_total" and s.labels["endpoint"] == "predict"
    }

    assert fast == routed
    assert [status for status, _ in fast] == [200, 422, 200, 400, 400, 404]
    assert counts == {"200": 4.0, "422": 2.0, "400": 4.0, "404": 2.0}


def test_requests_total_counts_every_status(server: Server) -> None:
    """keel_requests_total is labelled by status for 2xx, 4xx from validation, auth and unknown models."""
    with server.client() as c, server.client(FEEDER) as feeder:
        before = requests_by_status(c)
        c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
        c.post("/v1/models/fraud/predict", json={"rows": [{"region": "mars"}]})
        c.post(
            "/v1/models/fraud/predict", content=b"{", headers={"content-type": "application/json"}
        )
        c.post("/v1/models/nope/predict", json={"rows": [ROW]})
        c.post("/v1/models/fraud/predict", json={"rows": [ROW] * 5000})
        c.post("/invocations", json={"dataframe_records": [{"region": "mars"}]})
        c.post("/invocations", content=b"a", headers={"content-type": "text/plain"})
        c.post("/v2/models/fraud/infer", json={"inputs": []})
        c.post("/v2/models/nope/infer", json={"inputs": []})
        c.post("/v1/models/fraud/feedback", json={"labels": []})
        feeder.post("/v1/models/fraud/aliases/production", json={"version": 1})
        after = requests_by_status(c)

    delta = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    assert delta == {
        ("fraud", "predict", "200"): 1,
        ("fraud", "predict", "422"): 1,
        ("fraud", "predict", "400"): 1,
        ("", "predict", "404"): 1,
        ("fraud", "predict", "413"): 1,
        ("fraud", "invocations", "422"): 1,  # the one model served
        ("fraud", "invocations", "415"): 1,
        ("fraud", "v2_infer", "400"): 1,
        ("", "v2_infer", "404"): 1,
        ("fraud", "feedback", "401"): 1,
        ("fraud", "set_alias", "403"): 1,
        ("", "metrics", "200"): 1,  # the first read of /metrics, seen by the second
    }


def test_tritonclient_defaults_send_and_receive_binary_tensors(server: Server) -> None:
    """tritonclient's defaults (binary inputs, binary outputs) give the JSON API's answers,
    with FP32, FP64, INT64 and BYTES inputs and the label as INT64."""
    import tritonclient.http as tc

    data = rows(5)
    kinds = {"amount": np.float32, "distance_km": np.float64, "recent_tx_24h": np.int64}
    inputs = []
    for name in COLUMNS:
        values = [r[name] for r in data]
        if name in kinds:
            arr = np.array(values, dtype=kinds[name]).reshape(-1, 1)
        else:
            arr = np.array(values, dtype=object).reshape(-1, 1)
        t = tc.InferInput(name, list(arr.shape), tc.np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)  # binary_data=True by default
        inputs.append(t)
    client = tc.InferenceServerClient(url=f"127.0.0.1:{server.port}")
    asked = client.infer(
        "fraud",
        inputs,
        outputs=[tc.InferRequestedOutput("predict_proba"), tc.InferRequestedOutput("predict")],
    )
    everything = client.infer("fraud", inputs)  # no outputs named: binary_data_output
    meta = client.get_model_metadata("fraud")
    with server.client() as c:
        ours = c.post("/v1/models/fraud/predict", json={"rows": data}).json()

    assert asked.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 5 * 2 * 8
    assert np.array_equal(asked.as_numpy("predict_proba"), np.array(ours["probabilities"]))
    assert asked.as_numpy("predict").dtype == np.int64
    assert asked.as_numpy("predict").tolist() == ours["predictions"]
    assert everything.as_numpy("predict").tolist() == ours["predictions"]
    assert np.array_equal(everything.as_numpy("predict_proba"), asked.as_numpy("predict_proba"))
    assert meta["outputs"][0]["datatype"] == "INT64"


def _binary_request(inputs: list[dict[str, object]], binary: bytes, length: int | None = None):
    head = json.dumps({"inputs": inputs}).encode()
    return head + binary, str(len(head) if length is None else length)


@pytest.mark.parametrize(
    ("case", "status", "fragment"),
    [
        ("short", 400, "Input 'amount' (FP64, shape [2, 1]) needs 2 x 8 = 16 bytes"),
        ("extra", 400, "the inputs' binary_data_size add up to 16"),
        ("header", 400, "Inference-Header-Content-Length is 100000"),
        ("bytes", 400, "Input 'region' (BYTES): element 0 declares 99 bytes"),
    ],
)
def test_malformed_binary_bodies_are_400_naming_the_input(
    server: Server, case: str, status: int, fragment: str
) -> None:
    """Size mismatches in binary bodies are refused with a 400 that says what was expected."""
    amount = {"name": "amount", "datatype": "FP64", "shape": [2, 1]}
    region = {"name": "region", "datatype": "BYTES", "shape": [1]}
    two = struct.pack("<dd", 1.0, 2.0)
    body, length = {
        "short": lambda: _binary_request(
            [{**amount, "parameters": {"binary_data_size": 8}}], two[:8]
        ),
        "extra": lambda: _binary_request(
            [{**amount, "parameters": {"binary_data_size": 16}}], two + b"\0"
        ),
        "header": lambda: _binary_request(
            [{**amount, "parameters": {"binary_data_size": 16}}], two, 100000
        ),
        "bytes": lambda: _binary_request(
            [{**region, "parameters": {"binary_data_size": 6}}], struct.pack("<I", 99) + b"ab"
        ),
    }[case]()
    with server.client() as c:
        r = c.post(
            "/v2/models/fraud/infer",
            content=body,
            headers={
                "Inference-Header-Content-Length": length,
                "content-type": "application/octet-stream",
            },
        )
        after = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})

    assert r.status_code == status
    assert fragment in r.json()["error"]
    assert after.status_code == 200


def test_labels_keep_their_type_in_every_protocol(server: Server) -> None:
    """The int label comes back as an int from keel's JSON, the OIP (JSON) and MLflow's format."""
    data = rows(6)
    with server.client() as c:
        ours = c.post("/v1/models/fraud/predict", json={"rows": data}).json()
        mlflow = c.post("/invocations", json={"dataframe_records": data}).json()
        v2 = c.post(
            "/v2/models/fraud/infer",
            json={
                "inputs": [
                    {"name": k, "shape": [6, 1], "datatype": "BYTES" if isinstance(data[0][k], str) else "FP64", "data": [r[k] for r in data]}
                    for k in COLUMNS
                ]
            },
        ).json()  # fmt: skip

    predict = next(o for o in v2["outputs"] if o["name"] == "predict")
    assert all(type(p) is int for p in ours["predictions"])
    assert mlflow["predictions"] == ours["predictions"]
    assert predict["datatype"] == "INT64"
    assert predict["data"] == ours["predictions"]


def test_logged_sensitive_columns_are_checked_by_the_contract(server: Server, home: Path) -> None:
    """A sensitive column sent for the log meets the contract like a feature, else 422 naming it."""
    hostile = "<img src=x onerror=alert(1)>"
    with server.client(ADMIN) as c:
        bad = [
            c.post("/v1/models/fraud/predict", json={"rows": [{**ROW, "customer_sex": value}]})
            for value in (hostile, {"x": hostile}, [hostile])
        ]
        nested_feature = c.post(
            "/v1/models/fraud/predict", json={"rows": [{**ROW, "device": {"x": 1}}]}
        )
        ok = c.post(
            "/v1/models/fraud/predict",
            json={"rows": [{**ROW, "customer_sex": "F", "customer_age": 40}]},
        )
        c.post("/v1/admin/flush", json={})

    assert [r.status_code for r in bad] == [422, 422, 422]
    assert [r.json()["details"][0]["field"] for r in bad] == ["customer_sex"] * 3
    assert [r.json()["details"][0]["rule"] for r in bad] == ["category", "type", "type"]
    assert "field 'customer_sex'" in bad[1].json()["error"]
    assert nested_feature.status_code == 422
    assert nested_feature.json()["details"][0]["field"] == "device"
    logged = ParquetAppender(str(home / "artifacts"), "predictions", schema=PREDICTION_SCHEMA).read(
        "fraud"
    )
    assert not logged["features"].str.contains("onerror").any()
    pid = ok.json()["prediction_ids"][0]
    row = logged.filter(pl.col("prediction_id") == pid)
    assert '"customer_sex":"F"' in row["features"][0]
    assert '"customer_age":40' in row["features"][0]
