"""`keel serve` for real on loopback: protocols, errors, auth, feedback, log, hot swap."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import polars as pl
import pytest
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
from keel.registry import ModelStore
from keel.serve import Client
from keel.serve.predlog import PREDICTION_SCHEMA, ParquetAppender
from keel.store import ArtifactStore, Database

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
    assert a["classes"] == ["0", "1"]
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
    assert r.json() == {"accepted": 3, "unknown_ids": ["nope"]}


def _served_within_a_second(client: httpx.Client, role: str, version: int) -> None:
    t0 = time.monotonic()
    while True:
        fraud = next(m for m in client.get("/v1/models").json()["models"] if m["name"] == "fraud")
        if fraud["versions"].get(role) == version:
            return
        assert time.monotonic() - t0 < 1.0, (role, version, fraud)
        time.sleep(0.02)


def test_admin_needs_the_admin_scope_and_moves_are_followed(server: Server) -> None:
    """Admin calls: 401 without a token, 403 without the scope; a move is served within a second."""
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
        t0 = time.monotonic()
        while anon.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()["version"] != 2:
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.02)
        back = admin.post("/v1/models/fraud/rollback", json={"reason": "test over"})
        assert back.json()["version"] == 1
        _served_within_a_second(anon, "production", 1)
        canary = admin.post("/v1/models/fraud/aliases/canary", json={"version": 2, "weight": 0.5})
        assert canary.status_code == 200
        _served_within_a_second(anon, "canary", 2)
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
    """Answered predictions reach the Parquet log within the flush interval, with features."""
    with server.client() as c:
        ids = c.post("/v1/models/fraud/predict", json={"rows": rows(7)}).json()["prediction_ids"]
    time.sleep(1.0)

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
    assert bad.status_code == 400
    assert "X-Keel-Time" in bad.json()["error"]
    time.sleep(1.0)

    db = Database(f"sqlite:///{home / 'keel.db'}")
    windows = [
        w
        for w in read_windows(db, "fraud", since=dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        if w.start < dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    ]
    db.dispose()

    assert [(w.start.hour, w.rows) for w in windows] == [(10, 40), (11, 30)]
    first = windows[0].profile
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
        assert r.status_code == 200
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            mixed = c.post("/v1/models/fraud/predict", json={"rows": [west, north]}).json()
            if "versions" in mixed:
                break
            time.sleep(0.1)
        alone = {
            v: c.post(f"/v1/models/fraud@{alias}/predict", json={"rows": [west]}).json()
            for v, alias in ((1, "production"), (2, "production:west"))
        }
        bad = c.post("/v1/models/fraud/predict", json={"rows": [north, {**west, "amount": "x"}]})
        c.delete("/v1/models/fraud/aliases/production:west", headers=admin)
        refused = c.post("/v1/models/fraud/aliases/prod-west", json={"version": 2}, headers=admin)

    assert mixed["versions"] == [2, 1]
    assert mixed["probabilities"][0] == alone[2]["probabilities"][0]
    assert alone[1]["version"] == 1
    assert alone[1]["probabilities"][0] != alone[2]["probabilities"][0]
    assert bad.status_code == 422
    assert bad.json()["details"][0]["row"] == 1
    assert refused.status_code == 400


def test_python_client(server: Server) -> None:
    """keel.Client: frames in, frames out; feedback; errors raised with the server's message."""
    with Client(server.url, token=ADMIN) as client:
        out = client.predict("fraud", pl.DataFrame(rows(3)))
        fb = client.feedback("fraud", {out["prediction_id"][0]: 1})
        with pytest.raises(Exception, match=r"HTTP 422: Input does not fit"):
            client.predict("fraud", [{"region": "mars"}])

    assert out.columns == ["prediction_id", "prediction", "p_0", "p_1", "version"]
    assert fb == {"accepted": 1, "unknown_ids": []}


def test_moving_production_under_load_fails_nothing(home: Path, tmp_path: Path) -> None:
    """Load from 16 threads while production moves twice: zero failures; the switch shows fast."""
    server = start_server(home)
    failures: list[int] = []
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

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
                    seen.append((time.monotonic(), r.json()["version"]))

    threads = [threading.Thread(target=load) for _ in range(16)]
    try:
        for th in threads:
            th.start()
        time.sleep(1.0)
        with server.client(ADMIN) as admin:
            moved_at = time.monotonic()
            admin.post(
                "/v1/models/fraud/aliases/production", json={"version": 2, "reason": "under load"}
            )
            time.sleep(1.5)
            admin.post("/v1/models/fraud/rollback", json={"reason": "back"})
        time.sleep(1.0)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=30)
        stop_server(server)

    assert failures == []
    first_v2 = min(t for t, v in seen if v == 2)
    assert first_v2 - moved_at < 1.0
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
    time.sleep(0.6)  # at least two flush intervals after the last answer
    stop_server(server, hard=True)

    appender = ParquetAppender(str(home / "artifacts"), "predictions", schema=PREDICTION_SCHEMA)
    for f in appender.files("fraud"):
        pl.read_parquet(f)  # every file reads: no torn file
    logged = set(appender.read("fraud")["prediction_id"].to_list())

    assert {i for _, i in answered} <= logged


def test_a_version_that_fails_to_load_is_refused_with_an_alert(tmp_path: Path) -> None:
    """Production moves to a version whose file was changed: the server refuses it once, with a
    stored alert and a metric, and the version before keeps answering every request."""
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
        with server.client(ADMIN) as admin:
            moved = admin.post(
                "/v1/models/fraud/aliases/production",
                json={"version": 2, "reason": "the file was changed on disk"},
            )
        time.sleep(1.0)  # five polls of the follower
        with server.client() as c:
            versions = [
                c.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()["version"]
                for _ in range(20)
            ]
            metrics = c.get("/metrics").text
    finally:
        stop_server(server)
    assert moved.status_code == 200  # the registry moved; the server would not follow
    assert versions == [1] * 20
    assert 'keel_version_load_failures_total{model="fraud"} 1.0' in metrics
    alerts = AlertStore(db).list("fraud")
    db.dispose()
    assert [a.rule for a in alerts] == ["version_refused"]  # once, not at every poll
    assert alerts[0].severity == "critical"
    assert "fraud@2" in alerts[0].message
    assert "fraud@1 keeps serving" in alerts[0].message
    assert "changed" in alerts[0].evidence["error"]


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
