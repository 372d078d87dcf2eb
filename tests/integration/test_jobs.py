"""Asynchronous batch jobs on a real `keel serve`: accepted with 202, scored in a worker
thread like `keel predict`, refused rows beside the output, a signed callback on completion,
paths held inside the job roots, and a job whose server died is failed at restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from promotion_fixtures import fit_small, register
from receiver import receiver
from s3_fixtures import make_bucket, moto_server, s3_env
from serving_fixtures import ADMIN, Server, start_server, stop_server

from keel.data import DatasetStore, infer_contract, with_column
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import Settings, verify_signature

pytestmark = pytest.mark.integration

JOBS = "jobs-token"
PREDICTOR = "predict-token"
TOKENS = json.dumps({ADMIN: ["admin"], JOBS: ["jobs"], PREDICTOR: ["predict"]})


def _env(stale_s: str = "1") -> dict[str, str | None]:
    return {"KEEL_TOKENS": TOKENS, "KEEL_JOB_CHUNK_ROWS": "40", "KEEL_JOB_STALE_S": stale_s}


def _small_registry(home: Path) -> None:
    """'fraud' version 1 in production: a logistic regression on 600 rows, whose contract
    refuses regions it never saw."""
    datasets = DatasetStore.open(Settings(home=home))
    frame = TransactionSimulator(seed=5, n_customers=300).generate(days=6, per_day=100)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    contract = with_column(contract, replace(contract.column("region"), unseen="refuse"))
    dataset = datasets.ingest(frame, contract, "tx").version.ref
    models = ModelStore(datasets.db, datasets.artifacts)
    register(models, datasets, "fraud", fit_small(datasets, dataset))
    models.set_alias("fraud", "production", 1)
    datasets.db.dispose()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("jobs")
    _small_registry(home)
    data = home / "data"
    data.mkdir()
    frame = TransactionSimulator(seed=11, n_customers=200).generate(days=2, per_day=150)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 7).then(pl.lit("mars")).otherwise(pl.col("region")).alias("region")
    )  # fmt: skip
    frame.write_csv(data / "in.csv")
    pl.concat([frame] * 40).write_csv(data / "big.csv")  # long enough to be killed mid-run
    return home


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[Server]:
    s = start_server(home, env=_env())
    try:
        yield s
    finally:
        stop_server(s)


def _wait(client: httpx.Client, url: str, states: set[str], tries: int = 600) -> dict[str, Any]:
    for _ in range(tries):
        body = client.get(url).json()
        if body.get("state") in states:
            return body
        time.sleep(0.05)
    msg = f"job never reached {states}: {body}"
    raise AssertionError(msg)


def test_a_job_scores_the_file_refuses_rows_beside_it_and_calls_back(
    home: Path, server: Server
) -> None:
    """202 with an id; succeeded with counts matching the files; the callback verifies."""
    frame = pl.read_csv(home / "data" / "in.csv")
    with receiver() as rx, server.client(JOBS) as client:
        answer = client.post(
            "/v1/models/fraud/jobs",
            json={"input": "in.csv", "output": "out/scores.parquet", "callback": rx.url},
        )
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert job["state"] == "queued"
        assert job["version"] == 1
        assert answer.headers["location"] == job["status_url"]
        done = _wait(client, job["status_url"], {"succeeded", "failed"})
        for _ in range(200):  # the callback is sent after the state is stored
            if rx.received:
                break
            time.sleep(0.05)

    assert done["state"] == "succeeded", done
    refused = (frame.get_column("region") == "mars").sum()
    assert (done["rows_in"], done["rows_refused"]) == (frame.height, refused)
    assert done["rows_scored"] == frame.height - refused
    scores = pl.read_parquet(home / "data" / "out" / "scores.parquet")
    assert scores.height == done["rows_scored"]
    assert set(scores.get_column("transaction_id")) == set(
        frame.filter(pl.col("region") != "mars").get_column("transaction_id")
    )
    side = pl.read_csv(done["refused_output"])
    assert side.height == refused
    assert set(side.get_column("column")) == {"region"}
    (call,) = rx.received
    verify_signature(job["callback_secret"], call.headers, call.body, now=time.time())
    assert call.headers["webhook-id"] == f"job_{job['id']}"
    sent = json.loads(call.body)
    assert sent["type"] == "job_finished"
    assert sent["data"]["state"] == "succeeded"
    assert sent["data"]["rows_scored"] == done["rows_scored"]
    with server.client(JOBS) as client:
        stored = client.get(job["status_url"]).json()
    assert stored["callback_status"] == "HTTP 200 after 1 attempt(s)"
    assert "callback_secret" not in stored


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"input": "../keel.db", "output": "x.csv"}, "input", "a path under the job roots"),
        ({"input": "/etc/passwd", "output": "x.csv"}, "input", "a path under the job roots"),
        ({"input": "s3://bucket/in.parquet", "output": "x.csv"}, "input", "must lie under a job root"),
        ({"input": "missing.csv", "output": "x.csv"}, "input", "an existing file"),
        ({"input": "in.csv", "output": "in.csv"}, "output", "does not exist yet"),
        ({"input": "in.csv", "output": "../../escape.csv"}, "output", "under the job roots"),
        ({"input": "in.csv", "output": "x.exe"}, "output", "a file ending in one of"),
        ({"input": "in.csv", "output": "x.csv", "callback": "file:///tmp/x"}, "callback", "http"),
        ({"input": "in.csv", "output": "x.csv", "shell": "rm"}, "shell", "only the fields"),
        ({"input": "in.csv"}, "output", "a path under"),
        ({"input": "in.csv", "output": "x.csv", "callback_secret": "hunter2"}, "callback_secret", "no secret without"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused_naming_the_field(
    server: Server, body: dict[str, Any], field: str, says: str
) -> None:
    """Paths outside the roots (.., absolute, symlink), URLs, wrong kinds: 400, field named."""
    with server.client(JOBS) as client:
        answer = client.post("/v1/models/fraud/jobs", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["details"]["field"] == field
    assert says in answer.json()["error"]
    assert "hunter2" not in answer.text


def test_a_symlink_out_of_the_root_is_refused(home: Path, server: Server) -> None:
    """A link under the root that points outside it is judged by where it points."""
    link = home / "data" / "link.csv"
    link.symlink_to(home / "keel.db")
    with server.client(JOBS) as client:
        answer = client.post("/v1/models/fraud/jobs", json={"input": "link.csv", "output": "y.csv"})
    assert answer.status_code == 400
    assert "under the job roots" in answer.json()["error"]


def test_jobs_need_the_jobs_or_admin_scope(server: Server) -> None:
    """No token: 401; a predict token: 403 naming the scope; unknown job or model: 404."""
    body = {"input": "in.csv", "output": "z.csv"}
    with server.client() as anon, server.client(PREDICTOR) as pred, server.client(ADMIN) as admin:
        assert anon.post("/v1/models/fraud/jobs", json=body).status_code == 401
        refused = pred.post("/v1/models/fraud/jobs", json=body)
        unknown = admin.get("/v1/models/fraud/jobs/0123")
        no_model = admin.post("/v1/models/nosuch/jobs", json=body)
    assert refused.status_code == 403
    assert "needs 'admin'" in refused.json()["error"]
    assert unknown.status_code == 404
    assert no_model.status_code == 404


def test_a_job_running_when_its_server_dies_is_failed_at_restart(home: Path) -> None:
    """kill -9 mid-job; the restarted server marks it failed with the reason, and GET says so."""
    first = start_server(home, env=_env())
    try:
        with first.client(JOBS) as client:
            job = client.post(
                "/v1/models/fraud/jobs", json={"input": "big.csv", "output": "big.csv.out.csv"}
            ).json()
            running = _wait(client, job["status_url"], {"running", "succeeded", "failed"})
    finally:
        stop_server(first, hard=True)
    assert running["state"] == "running"
    second = start_server(home, env=_env())
    try:
        with second.client(JOBS) as client:
            failed = _wait(client, job["status_url"], {"failed", "succeeded"})
    finally:
        stop_server(second)
    assert failed["state"] == "failed"
    assert failed["error"].startswith(
        "The server running this job stopped (no heartbeat for over 1 s)"
    )


def test_a_job_reads_and_writes_under_an_object_store_root(home: Path) -> None:
    """With `s3://jobs/batch` among the job roots (moto's S3 server on loopback), a job reads
    its Parquet input there in chunks and writes its scores beside it; a URL outside that
    prefix, or with a `..` segment, is refused naming the field."""
    import fsspec

    from keel.store import configure_object_storage

    frame = pl.read_csv(home / "data" / "in.csv")
    with moto_server() as endpoint:
        make_bucket(endpoint, "jobs")
        configure_object_storage("s3://jobs", endpoint)
        with fsspec.open("s3://jobs/batch/in.parquet", "wb") as fh:
            frame.write_parquet(fh)
        env = {
            **_env(), **s3_env(endpoint),
            "KEEL_JOB_ROOTS": json.dumps([str(home / "data"), "s3://jobs/batch"]),
        }  # fmt: skip
        s = start_server(home, env=env)
        try:
            with s.client(JOBS) as client:
                for bad in ("s3://jobs/other/in.parquet", "s3://jobs/batch/../in.parquet"):
                    answer = client.post(
                        "/v1/models/fraud/jobs", json={"input": bad, "output": "s3.csv"}
                    )
                    assert answer.status_code == 400, answer.text
                    assert answer.json()["details"]["field"] == "input"
                answer = client.post(
                    "/v1/models/fraud/jobs",
                    json={"input": "s3://jobs/batch/in.parquet", "output": "s3://jobs/batch/out.parquet"},
                )  # fmt: skip
                assert answer.status_code == 202, answer.text
                done = _wait(client, answer.json()["status_url"], {"succeeded", "failed"})
                again = client.post(
                    "/v1/models/fraud/jobs",
                    json={"input": "s3://jobs/batch/in.parquet", "output": "s3://jobs/batch/out.parquet"},
                )  # fmt: skip
        finally:
            stop_server(s)
        assert done["state"] == "succeeded", done
        refused = int((frame.get_column("region") == "mars").sum())
        assert (done["rows_in"], done["rows_refused"]) == (frame.height, refused)
        with fsspec.open("s3://jobs/batch/out.parquet", "rb") as fh:
            scores = pl.read_parquet(fh)
        assert scores.height == frame.height - refused
        assert done["refused_output"] == "s3://jobs/batch/out.refused.csv"
        assert again.status_code == 400  # jobs never overwrite
        assert "does not exist yet" in again.json()["error"]
