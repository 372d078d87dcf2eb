"""Isolation and client errors on a real `keel serve` on loopback: max_rows on every path, big
requests answered like small ones, a byte budget that answers 503 while probes still answer,
client mistakes as 4xx (never 500), crafted artifacts refused while the old version serves."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures import (
    ADMIN,
    ROW,
    Server,
    build_registry,
    free_port,
    start_server,
    stop_server,
)

from keel.registry import ModelStore
from keel.serve import KeelServer
from keel.store import ArtifactStore, Database, Settings, tables as t

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MAX_ROWS = 300
LIMITS = {
    "KEEL_MAX_ROWS": str(MAX_ROWS),
    "KEEL_MAX_BODY_BYTES": "100000",
    "KEEL_MAX_INFLIGHT_BYTES": "150000",
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("isolation")
    build_registry(home)
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    server = start_server(home, env=LIMITS)
    try:
        yield server
    finally:
        stop_server(server)


def rows(n: int, pad: int = 0) -> list[dict[str, Any]]:
    """n valid rows; `pad` characters in a field no model reads (to make bodies large)."""
    rng = np.random.default_rng(n)
    cats = ["grocery", "travel", "electronics", "fuel"]
    out = [
        {
            **ROW,
            "amount": round(float(rng.uniform(1, 900)), 2),
            "merchant_category": cats[i % 4],
            "recent_tx_24h": int(i % 5),
        }
        for i in range(n)
    ]
    if pad:
        for r in out:
            r["note"] = "x" * pad
    return out


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _csv(data: list[dict[str, Any]]) -> bytes:
    lines = [",".join(data[0])] + [",".join(str(v) for v in r.values()) for r in data]
    return "\n".join(lines).encode()


def _oip(data: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": k, "shape": [len(data)], "datatype": "BYTES", "data": [r[k] for r in data]}
            for k in ROW
        ]
    }


OVER = rows(MAX_ROWS + 1)
PATHS: list[tuple[str, str, dict[str, Any]]] = [
    ("predict rows", "/v1/models/fraud/predict", {"json": {"rows": OVER}}),
    ("predict columns", "/v1/models/fraud/predict", {"json": {"columns": {k: [r[k] for r in OVER] for k in ROW}}}),
    ("predict by version", "/v1/models/fraud@1/predict", {"json": {"rows": OVER}}),
    ("explain", "/v1/models/fraud/explain", {"json": {"rows": OVER}}),
    ("oip", "/v2/models/fraud/infer", {"json": _oip(OVER)}),
    ("mlflow instances", "/invocations", {"json": {"instances": OVER}}),
    ("mlflow split", "/invocations", {"json": {"dataframe_split": {"columns": list(ROW), "data": [list(r.values()) for r in OVER]}}}),
    ("mlflow csv", "/invocations", {"content": _csv(OVER), "headers": {"content-type": "text/csv"}}),
    ("large body", "/v1/models/fraud/predict", {"json": {"rows": rows(MAX_ROWS + 1, pad=120)}}),
]  # fmt: skip


@pytest.mark.parametrize(("label", "path", "request_"), PATHS, ids=[p[0] for p in PATHS])
def test_more_than_max_rows_is_413_naming_the_limit_and_the_count(
    server: Server, label: str, path: str, request_: dict[str, Any]
) -> None:
    """Every predict, explain, Open Inference Protocol and MLflow path counts rows, small
    bodies on the spot and large ones (over 64 KiB) in the parsing process."""
    with server.client() as c:
        r = c.post(path, **request_)

    assert r.status_code == 413, r.text
    assert "The request has 301 rows; this server answers at most 300 rows per request" in r.text


def test_explain_takes_at_most_max_explain_rows(server: Server) -> None:
    """SHAP holds the interpreter: explanations are bounded well below max_rows (default 100)."""
    with server.client() as c:
        over = c.post("/v1/models/fraud/explain", json={"rows": rows(101)})
        ok = c.post("/v1/models/fraud/explain", json={"rows": rows(3)})

    assert over.status_code == 413, over.text
    assert "101 rows to explain; at most 100 per request (max_explain_rows)" in over.text
    assert over.json()["details"] == {"field": "rows", "value": 101, "expected": "at most 100 rows"}
    assert ok.status_code == 200, ok.text


def test_a_large_request_is_answered_as_its_rows_would_be_one_by_one(server: Server) -> None:
    """300 rows in one 70 KB body (parsed in the parsing process, checked and predicted in the
    bulk thread) get the answers they get in small requests on the inline path."""
    data = rows(MAX_ROWS, pad=120)
    with server.client() as c:
        big = c.post("/v1/models/fraud/predict", json={"rows": data})
        small = [
            c.post("/v1/models/fraud/predict", json={"rows": data[i : i + 50]}).json()
            for i in range(0, MAX_ROWS, 50)
        ]

    assert big.status_code == 200, big.text
    answer = big.json()
    assert len(big.content) < len(json.dumps({"rows": data}))
    assert answer["predictions"] == [p for s in small for p in s["predictions"]]
    # the same numbers up to the last bits BLAS may round differently for another batch size
    expected = [p for s in small for p in s["probabilities"]]
    assert np.allclose(answer["probabilities"], expected, rtol=0, atol=1e-12)
    assert len(set(answer["prediction_ids"])) == MAX_ROWS


def test_a_large_request_skips_its_bad_rows_in_request_order(server: Server) -> None:
    """on_error=skip on the bulk path: refused rows answered null and listed by index."""
    data = rows(200)
    data[5]["region"] = "mars"
    data[150]["amount"] = "lots"

    with server.client() as c:
        r = c.post("/v1/models/fraud/predict", json={"rows": data, "on_error": "skip"})

    answer = r.json()
    assert r.status_code == 200, r.text
    assert [e["row"] for e in answer["errors"]] == [5, 150]
    assert answer["predictions"][5] is None
    assert answer["predictions"][150] is None
    assert sum(p is not None for p in answer["predictions"]) == 198


def _held_request(port: int, body: bytes, sent: int) -> socket.socket:
    """A predict request whose body stops after `sent` bytes: the server holds its budget."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = (
        "POST /v1/models/fraud/predict HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:sent])
    return sock


def test_a_full_byte_budget_is_503_with_retry_after_and_probes_still_answer(
    server: Server,
) -> None:
    """Bodies in flight are held to max_inflight_bytes: past it a request gets 503 with
    Retry-After instead of the process growing; /healthz, /readyz and a one-row prediction
    are answered meanwhile; when the held body completes, the budget is free again."""
    body = json.dumps({"rows": rows(250, pad=200)}).encode()
    assert 75_000 < len(body) < 100_000  # two of them do not fit 150,000 bytes
    held = _held_request(server.port, body, 1000)
    try:
        with server.client() as c:
            for _ in range(200):  # until the held request has reserved its bytes
                refused = c.post("/v1/models/fraud/predict", content=body)
                if refused.status_code == 503:
                    break
            health = c.get("/healthz")
            ready = c.get("/readyz")
            one = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
        held.sendall(body[1000:])
        answer = held.recv(200)
    finally:
        held.close()
    with server.client() as c:
        after = c.post("/v1/models/fraud/predict", content=body)

    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "max_inflight_bytes" in refused.json()["error"]
    assert (health.status_code, ready.status_code, one.status_code) == (200, 200, 200)
    assert answer.startswith(b"HTTP/1.1 200")
    assert after.status_code == 200


def _nested_json(depth: int, leaf: str = '"x"') -> str:
    """JSON text of a value nested `depth` lists deep (json.dumps would recurse too deep)."""
    return "[" * depth + leaf + "]" * depth


def _nested(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


OIP_900_DEEP = (
    '{"inputs": [{"name": "amount", "shape": [1], "datatype": "FP64", "data": ['
    + _nested_json(900, "1.0")
    + "]}]}"
)
SENSITIVE_1000_DEEP = (
    '{"rows": [' + json.dumps(ROW)[:-1] + ', "customer_sex": ' + _nested_json(1000) + "}]}"
)
BIG_INT = json.dumps({"rows": [{**ROW, "recent_tx_24h": 2**70}]})
CLIENT_ERRORS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("explain 0 rows", "/v1/models/fraud/explain", {"json": {"rows": []}}, 400, "The request has no rows"),
    ("explain 0 columns", "/v1/models/fraud/explain", {"json": {"columns": {}}}, 400, "The request has no rows"),
    ("oip ragged", "/v2/models/fraud/infer", {"json": {"inputs": [{"name": "amount", "shape": [2, 1], "datatype": "FP64", "data": [[1.0], 2.0]}]}}, 400, "Input 'amount' has nested data that does not fit its shape [2, 1]"),
    ("oip ragged rows", "/v2/models/fraud/infer", {"json": {"inputs": [{"name": "x", "shape": [2, 6], "datatype": "FP64", "data": [[1, 2, 3, 4, 5, 6], [1]]}]}}, 400, "does not fit its shape [2, 6]"),
    ("oip nested 900 deep", "/v2/models/fraud/infer", {"content": OIP_900_DEEP}, 400, "Input 'amount' has nested data"),
    ("oip short data", "/v2/models/fraud/infer", {"json": {"inputs": [{"name": "amount", "shape": [3], "datatype": "FP64", "data": [1.0]}]}}, 400, "has shape [3] (3 elements) but its data holds 1"),
    ("oip id not text", "/v2/models/fraud/infer", {"json": {"id": 5, **_oip([ROW])}}, 400, "'id' has the value 5; expected a string"),
    ("oip input twice", "/v2/models/fraud/infer", {"json": {"inputs": _oip([ROW])["inputs"] * 2}}, 400, "Input 'region' is given twice"),
    ("mlflow instances 3", "/invocations", {"json": {"instances": 3}}, 400, "'instances' has the value 3; expected a list of records"),
    ("mlflow inputs 3", "/invocations", {"json": {"inputs": 3}}, 400, "'inputs' has the value 3"),
    ("mlflow split 3", "/invocations", {"json": {"dataframe_split": 3}}, 400, "'dataframe_split' has the value 3"),
    ("mlflow records 3", "/invocations", {"json": {"dataframe_records": 3}}, 400, "'dataframe_records' has the value 3"),
    ("mlflow split columns 3", "/invocations", {"json": {"dataframe_split": {"columns": 3, "data": 3}}}, 400, "'dataframe_split.columns' has the value 3"),
    ("mlflow split row 3", "/invocations", {"json": {"dataframe_split": {"columns": ["a"], "data": [3]}}}, 400, "'dataframe_split.data' row 0 has the value 3"),
    ("mlflow instances text", "/invocations", {"json": {"instances": "abc"}}, 400, "'instances' has the value 'abc'"),
    ("sensitive 300 deep", "/v1/models/fraud/predict", {"json": {"rows": [{**ROW, "customer_sex": _nested(300)}]}}, 422, "field 'customer_sex' has value [[[[...]]]]; expected a single value"),
    ("sensitive 1000 deep", "/v1/models/fraud/predict", {"content": SENSITIVE_1000_DEEP}, 422, "field 'customer_sex'"),
    ("sensitive object", "/v1/models/fraud/predict", {"json": {"rows": [{**ROW, "customer_sex": {"a": {"b": 1}}}]}}, 422, "not a nested object or list"),
    ("integer over 64 bits", "/v1/models/fraud/predict", {"content": BIG_INT}, 422, "expected a whole number within 64 bits"),
    ("columns not lists", "/v1/models/fraud/predict", {"json": {"columns": {"amount": 1}}}, 400, "'columns' column 'amount' has the value 1"),
    ("body not an object", "/v1/models/fraud/predict", {"json": [1]}, 400, "The body is a JSON list"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("label", "path", "request_", "status", "fragment"),
    CLIENT_ERRORS,
    ids=[e[0] for e in CLIENT_ERRORS],
)
def test_client_mistakes_are_4xx_naming_field_value_and_expectation(
    server: Server, label: str, path: str, request_: dict[str, Any], status: int, fragment: str
) -> None:
    """Each of these was a 500 (or a prediction made and not logged); each is a 4xx now."""
    with server.client() as c:
        r = c.post(path, **request_)

    assert r.status_code == status, r.text
    assert fragment in r.json()["error"]


def test_no_request_of_this_module_was_a_server_error(server: Server) -> None:
    """After every mistake above, the server counts no 5xx but the budget's 503."""
    with server.client() as c:
        errors = {
            s.labels["status"]
            for f in text_string_to_metric_families(c.get("/metrics").text)
            for s in f.samples
            if s.name == "keel_requests_total" and s.labels["status"].startswith("5")
        }

    assert errors <= {"503"}


def test_a_deeply_nested_sensitive_field_is_refused_and_nothing_is_logged(
    server: Server,
) -> None:
    """Refused before the model: no prediction made, none logged, the refusal counted."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    with server.client() as c:
        c.post("/v1/admin/flush", headers=admin)
        logged = metric(c, "keel_predictions_logged_total")
        refused = metric(c, "keel_rows_refused_total", rule="type")

        r = c.post(
            "/v1/models/fraud/predict", json={"rows": [{**ROW, "customer_sex": _nested(300)}]}
        )
        c.post("/v1/admin/flush", headers=admin)

        assert r.status_code == 422
        assert metric(c, "keel_predictions_logged_total") == logged
        assert metric(c, "keel_rows_refused_total", rule="type") == refused + 1


def test_a_locked_database_is_a_503_naming_it_while_predictions_go_on(
    server: Server, home: Path
) -> None:
    """An admin call whose write meets a locked metadata database answers 503 with
    Retry-After and an error id, no SQL; health and predictions answer meanwhile."""
    lock = sqlite3.connect(home / "keel.db", isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")
        with server.client(ADMIN) as c:
            c.timeout = httpx.Timeout(120)  # the driver waits out its own lock timeout first
            moved = c.post(
                "/v1/models/fraud/aliases/staging", json={"version": 1, "reason": "locked"}
            )
            health = c.get("/healthz")
            one = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    body = moved.json()
    assert moved.status_code == 503
    assert moved.headers["retry-after"] == "5"
    assert body["kind"] == "DatabaseUnavailable"
    assert "metadata database is not reachable" in body["error"]
    assert body["error_id"] in body["error"]
    assert "INSERT" not in moved.text
    assert "UPDATE" not in moved.text
    assert (health.status_code, one.status_code) == (200, 200)


# ---- crafted artifacts ----------------------------------------------------------------------


def _cyclic(data: bytes, which: int = -1) -> bytes:
    """The HistGradientBoosting file with a cycle, every index in range: a split of the root's
    right subtree (the last one, by default) gets the root's right child, an ancestor of it, as
    its left child. The same arguments give the same bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    done = False
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name.endswith(".npy") and not done:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
                if arr.dtype.names and "is_leaf" in arr.dtype.names:
                    inner = np.flatnonzero(~arr["is_leaf"].astype(bool))
                    top = int(arr["right"][0])
                    if len(inner) > 2 and not arr["is_leaf"][top]:
                        arr = arr.copy()
                        arr["left"][inner[inner >= top][which]] = top
                        buf = io.BytesIO()
                        np.save(buf, arr, allow_pickle=False)
                        raw, done = buf.getvalue(), True
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), raw)
    assert done, "no tree to make a cycle in"
    return out.getvalue()


def register_crafted(home: Path, version: int = 3, based_on: int = 2, which: int = -1) -> str:
    """Version `version` of 'fraud': version `based_on` with a cyclic tree in its artifact (as
    a registry writer could store it). Returns the crafted artifact's sha256."""
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    mv = t.model_versions
    try:
        with db.begin() as conn:
            row = dict(
                conn.execute(sa.select(mv).where(mv.c.name == "fraud", mv.c.version == based_on))
                .mappings()
                .one()
            )
            crafted = art.put_bytes(_cyclic(art.get_bytes(row["artifact_sha256"]), which))
            values = {
                **row,
                "version": version,
                "artifact_sha256": crafted.sha256,
                "artifact_uri": crafted.uri,
                "artifact_size": crafted.size,
            }
            conn.execute(mv.delete().where(mv.c.name == "fraud", mv.c.version == version))
            conn.execute(mv.insert().values(**values))
    finally:
        db.dispose()
    return crafted.sha256


def move_production(home: Path, version: int) -> None:
    db = Database(f"sqlite:///{home / 'keel.db'}")
    try:
        ModelStore(db, ArtifactStore(str(home / "artifacts"))).set_alias(
            "fraud", "production", version, reason="crafted artifact test"
        )
    finally:
        db.dispose()


def _alerts(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _until(probe: Callable[[], bool], c: httpx.Client, attempts: int = 3000) -> None:
    """Probe until true; between probes one request to /healthz (a real round trip)."""
    for _ in range(attempts):
        if probe():
            return
        c.get("/healthz")
    msg = "the probe never turned true"
    raise AssertionError(msg)


def _when_listening(proc: subprocess.Popen[bytes], url: str) -> httpx.Response:
    """The first answer from `url` once the process listens (bounded by attempts; between
    them, a wait that ends early if the process exits)."""
    for _ in range(600):
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            try:
                proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            msg = f"the server exited with {proc.returncode}"
            raise AssertionError(msg) from None
    msg = "the server never listened"
    raise AssertionError(msg)


@pytest.fixture
def crafted_home(home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("predictions", "feedback"))
    return copy


def test_a_crafted_cyclic_tree_is_refused_while_the_old_version_serves_and_sigterm_stops_it(
    crafted_home: Path,
) -> None:
    """Production moved to a version whose tree has a cycle (indices in range): the server
    refuses it (alert fired, counted), version 1 keeps answering; SIGTERM stops the server."""
    sha = register_crafted(crafted_home)
    alerts = crafted_home / "alerts.jsonl"
    server = start_server(crafted_home, env={**LIMITS, "KEEL_ALERT_FILE": str(alerts)})
    try:
        move_production(crafted_home, 3)
        with server.client() as c:
            _until(lambda: len(_alerts(alerts)) >= 1, c)
            answer = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
            failures = metric(c, "keel_version_load_failures_total", model="fraud")
    finally:
        server.process.send_signal(signal.SIGTERM)
        code = server.process.wait(timeout=60)
        stop_server(server)

    (alert,) = _alerts(alerts)
    assert alert["rule"] == "version_refused"
    assert alert["evidence"]["version"] == 3
    assert alert["evidence"]["artifact_sha256"] == sha
    assert "reached twice from the root" in alert["evidence"]["error"]
    assert "fraud@1 keeps serving" in alert["message"]
    assert answer.status_code == 200
    assert answer.json()["version"] == 1
    assert failures == 1
    assert code in (0, -signal.SIGTERM)  # uvicorn shuts down, then re-raises the signal


def test_a_server_restarted_on_a_crafted_version_is_not_ready_and_stops_on_sigterm(
    crafted_home: Path,
) -> None:
    """Started with production on the crafted version: it comes up (health answers), is not
    ready (no production version it could load), and SIGTERM stops it."""
    register_crafted(crafted_home)
    move_production(crafted_home, 3)
    port = free_port()
    env = {
        **os.environ,
        "KEEL_HOME": str(crafted_home),
        "KEEL_OPEN_PREDICT": "true",
        "KEEL_POLL_INTERVAL_S": "0.2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        health = _when_listening(proc, f"http://127.0.0.1:{port}/healthz")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)

    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["models_without_production"] == ["fraud"]
    assert code in (0, -signal.SIGTERM)  # uvicorn shuts down, then re-raises the signal


# ---- the follower, in process -----------------------------------------------------------------


def test_a_refused_version_is_tried_again_only_when_its_artifact_changes(
    crafted_home: Path,
) -> None:
    """Refusals are keyed on the artifact's hash: polls do not load the same artifact again
    (the same bytes written again change nothing); a new artifact for the version is tried,
    and refused again with a second alert."""
    register_crafted(crafted_home)
    settings = Settings(home=crafted_home, alert_file=str(crafted_home / "alerts.jsonl"))

    async def scenario() -> tuple[list[list[str]], list[float], int]:
        server = KeelServer(settings, ModelStore.open(settings), ["fraud"])
        await server.start()
        counter = server.metrics.load_failures.labels("fraud")
        results, failures = [], []
        try:
            move_production(crafted_home, 3)
            for rewrite in (None, None, -1, 0):  # then the same bytes, then other bytes
                if rewrite is not None:
                    register_crafted(crafted_home, which=rewrite)
                results.append(await server.sync("fraud"))
                failures.append(counter._value.get())
            return results, failures, server.served["fraud"].runtimes["production"].resolved.version
        finally:
            await server.stop()

    results, failures, serving = asyncio.run(scenario())

    first, again, same, other = results
    before = ["fraud@3 was refused before (its artifact is unchanged)"]
    assert first[0].startswith("refused fraud@3 for production: The model artifact holds")
    assert again == same == before
    assert other[0].startswith("refused fraud@3 for production:")
    assert failures == [1, 1, 1, 2]
    assert serving == 1
    assert len((crafted_home / "alerts.jsonl").read_text().splitlines()) == 2


def test_a_garbage_artifact_is_refused_as_unsafe_once(crafted_home: Path) -> None:
    """An artifact that is not a zip at all is an UnsafeArtifactError: refused with an alert,
    the old version serving, and not loaded again at the next polls."""
    db = Database(f"sqlite:///{crafted_home / 'keel.db'}")
    art = ArtifactStore(str(crafted_home / "artifacts"))
    mv = t.model_versions
    try:
        garbage = art.put_bytes(b"\x00not a model\xff" * 100)
        with db.begin() as conn:
            conn.execute(
                mv.update()
                .where(mv.c.name == "fraud", mv.c.version == 2)
                .values(
                    artifact_sha256=garbage.sha256,
                    artifact_uri=garbage.uri,
                    artifact_size=garbage.size,
                )
            )
    finally:
        db.dispose()
    settings = Settings(home=crafted_home, alert_file=str(crafted_home / "alerts.jsonl"))

    async def scenario() -> tuple[list[str], list[str], float, int]:
        server = KeelServer(settings, ModelStore.open(settings), ["fraud"])
        await server.start()
        try:
            move_production(crafted_home, 2)
            first = await server.sync("fraud")
            again = await server.sync("fraud")
            failures = server.metrics.load_failures.labels("fraud")._value.get()
            return (
                first,
                again,
                failures,
                server.served["fraud"].runtimes["production"].resolved.version,
            )
        finally:
            await server.stop()

    first, again, failures, serving = asyncio.run(scenario())

    (refusal,) = first
    assert "The model artifact is not a zip file" in refusal
    assert refusal.endswith("fraud@1 keeps serving")
    assert again == ["fraud@2 was refused before (its artifact is unchanged)"]
    assert failures == 1
    assert serving == 1
    (alert,) = _alerts(crafted_home / "alerts.jsonl")
    assert alert["rule"] == "version_refused"


def test_a_version_that_does_not_load_within_the_budget_is_refused(crafted_home: Path) -> None:
    """load_timeout_s bounds loading and warming up: past it the version is refused with an
    alert, the old one keeps serving; the late load, when it ends, changes nothing."""
    settings = Settings(home=crafted_home, load_timeout_s=1e-6)
    fast = Settings(home=crafted_home)

    async def scenario() -> tuple[list[str], int]:
        server = KeelServer(fast, ModelStore.open(fast), ["fraud"])
        await server.start()
        try:
            server.follower.settings = settings  # the budget the follower loads within
            move_production(crafted_home, 2)
            refusals = await server.sync("fraud")
            return refusals, server.served["fraud"].runtimes["production"].resolved.version
        finally:
            await server.stop()

    refusals, serving = asyncio.run(scenario())

    (refusal,) = refusals
    assert "took over 1e-06 s (load_timeout_s); it was given up" in refusal
    assert refusal.endswith("fraud@1 keeps serving")
    assert serving == 1
