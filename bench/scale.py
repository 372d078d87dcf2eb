"""Scale on one machine: 1 and 2 replicas, alias-follow time, profile and log write rates.

What it measures (each figure feeds docs/scaling.md's capacity model):

- `serve`: `keel serve fraud --workers N` for N = 1, 2 under the same wrk load (one-row JSON
  predictions, c=64, `--seconds` each after a 2 s warm-up). The balancer is the kernel's:
  uvicorn's workers share one listening socket on one port, and the kernel hands each new
  connection to whichever worker accepts it first (no proxy in the path).
- `follow`: two `keel serve` processes (each its own home, as on two hosts) over one
  metadata database (the SQLite file, or PostgreSQL with `--database-url`); an alias moved
  through replica A; the time until replica B answers with the new version, polled every
  5 ms; at the default `poll_interval_s` (1 s) and at 0.2 s.
- `log`: the prediction log's flush (`ParquetAppender`) of a batch of records like serving's
  (`--flush-rows`, what one process logs in one 0.5 s interval at ~8k requests/s): seconds per
  flush, bytes and objects written, to a local folder and to moto's S3 server on loopback.
- `read`: the monitor's read of one window's log files (`read_log`, the columns monitoring
  reads): seconds per object, local and moto S3.
- `profiles`: the window profiles' save (`Profiler.flush`: one upsert per changed window and
  writer) to SQLite and, with `--database-url`, PostgreSQL: upserts/s and bytes per profile.
- `ray` (with `--ray`, when bench/ray_parts.py exists): Ray Serve throughput and batch
  scoring local vs Ray Data, from that module.

`--priority N` (root only) runs the measurement (keel's servers and wrk alike) in its own
scheduling group at nice N (`/proc/self/autogroup`), as bench/serving.py does: on a machine
that others share, their load then decides less of the figures; say so beside them.

moto is an in-memory S3 on loopback: its latencies are far below a real bucket's (1-30 ms
per request); the object and byte counts carry over, the seconds do not.

usage: .venv/bin/python bench/scale.py [--json] [--seconds 8] [--database-url URL] [--ray]
       [--skip serve,follow,log,profiles] [--priority -15]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl

ROW = {"region": "north", "merchant_category": "grocery", "amount": 12.5, "device": "pos",
       "distance_km": 3.0, "recent_tx_24h": 1}  # fmt: skip
ADMIN = "scale-admin"
PRIORITY = 0  # --priority: the autogroup nice of the bench and its servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(home: Path, database_url: str | None) -> None:
    """A registry with two logistic versions of 'fraud' (production -> 1)."""
    from keel.data import DatasetStore, infer_contract
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    db = Database(database_url or f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=800).generate(days=8, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        segment="region", pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at", "customer_sex", "customer_age"],
    )  # fmt: skip
    ref = ds.ingest(frame, contract, "tx").version.ref
    specs = [
        spec_from_dict(
            {
                "name": f"lr{c}",
                "estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 1000, "C": c},
            }
        )
        for c in (1.0, 0.5)
    ]
    train(specs, ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


@contextlib.contextmanager
def serving(home: Path, env: dict[str, str], *, workers: int = 1) -> Iterator[str]:
    """`keel serve fraud` on a free port; yields its URL once ready."""
    port = free_port()
    child = {**os.environ, "KEEL_HOME": str(home), "KEEL_OPEN_PREDICT": "true",
             "KEEL_TOKENS": json.dumps({ADMIN: ["admin", "predict", "feedback"]}), **env}  # fmt: skip
    cmd = [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)] if workers > 1 else cmd,
        env=child,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    if PRIORITY:  # its own session is its own scheduling group: give it the bench's
        Path(f"/proc/{proc.pid}/autogroup").write_text(str(PRIORITY))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"keel serve exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError("keel serve did not become ready in 120 s")
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # its own group: uvicorn's workers too
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wrk(url: str, seconds: int, connections: int = 64) -> dict[str, Any]:
    """wrk POSTing one-row predictions; requests/s, latency percentiles, errors."""
    body = json.dumps({"rows": [ROW]})
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        script = fh.name
    url = f"{url}/v1/models/fraud/predict"
    subprocess.run(["wrk", "-t1", "-c16", "-d2s", "-s", script, url], capture_output=True)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = dict(re.findall(r"\s+(50|99)%\s+([\d.]+\w+)", out))
    return {"rps": round(rps), "non_2xx": int(errors.group(1)) if errors else 0,
            "p50": lat.get("50"), "p99": lat.get("99")}  # fmt: skip


def bench_serve(home: Path, seconds: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"skipped": "wrk is not installed (bash bench/setup_peers.sh installs it)"}
    out = {}
    for workers in (1, 2):
        with serving(home, {"KEEL_FLUSH_INTERVAL_S": "0.5"}, workers=workers) as url:
            out[f"replicas_{workers}"] = wrk(url, seconds)
    return out


def bench_follow(home: Path, database_url: str | None, moves: int = 4) -> dict[str, Any]:
    """Seconds from the admin call on A to B's first answer from the new version."""
    shared = {"KEEL_DATABASE_URL": database_url or f"sqlite:///{home / 'keel.db'}",
              "KEEL_ARTIFACTS": str(home / "artifacts")}  # fmt: skip
    out: dict[str, Any] = {}
    for poll in (1.0, 0.2):
        env = {**shared, "KEEL_POLL_INTERVAL_S": str(poll)}
        times = []
        with serving(home / "a", env) as a, serving(home / "b", env) as b:
            admin = httpx.Client(base_url=a, headers={"Authorization": f"Bearer {ADMIN}"})
            probe = httpx.Client(base_url=b)
            for i in range(moves):
                target = 2 if i % 2 == 0 else 1
                t0 = time.monotonic()
                r = admin.post("/v1/models/fraud/aliases/production",
                               json={"version": target, "reason": "bench", "force": True})  # fmt: skip
                r.raise_for_status()
                while (
                    probe.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()["version"]
                    != target
                ):
                    time.sleep(0.005)
                times.append(time.monotonic() - t0)
            admin.close()
            probe.close()
        out[f"poll_{poll:g}s"] = {"median_s": round(statistics.median(times), 3),
                                  "max_s": round(max(times), 3), "moves": moves}  # fmt: skip
    return out


_SAMPLE: list[dict[str, Any]] = []


def _records(n: int, at: dt.datetime) -> dict[str, list[Any]]:
    """`n` records like serving's: the simulator's transactions as inputs (varied amounts,
    distances, categories), answers and latencies that vary, each at its own microsecond."""
    import numpy as np

    from keel.demo.simulate import TransactionSimulator
    from keel.monitor import prediction_ids

    if not _SAMPLE:
        frame = TransactionSimulator(seed=9, n_customers=500).generate(days=2, per_day=2000)
        _SAMPLE.extend(frame.select(list(ROW)).to_dicts())
    rng = np.random.default_rng(n)
    picks = rng.integers(0, len(_SAMPLE), n)
    p = rng.random(n).round(6)
    return {
        "prediction_id": prediction_ids(n, at),
        "time": [at + dt.timedelta(microseconds=125 * i) for i in range(n)],
        "model": ["fraud"] * n, "version": [1] * n, "role": ["production"] * n,
        "segment": [_SAMPLE[i]["region"] for i in picks],
        "features": [json.dumps(_SAMPLE[i]) for i in picks],
        "prediction": ["1" if x > 0.5 else "0" for x in p],
        "probabilities": [[1 - x, x] for x in p],
        "latency_ms": rng.gamma(2.0, 0.8, n).round(3).tolist(),
    }  # fmt: skip


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server on loopback with a bucket `bench`; yields the endpoint."""
    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"})  # fmt: skip
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
    try:
        yield endpoint
    finally:
        server.stop()


def bench_log(root: str, flush_rows: int, flushes: int) -> dict[str, Any]:
    from keel.monitor import ParquetAppender, read_log
    from keel.monitor.logfiles import MONITORED, PREDICTION_SCHEMA, log_files

    appender = ParquetAppender(root, "predictions", schema=PREDICTION_SCHEMA)
    at = dt.datetime.now(dt.UTC)
    times = []
    for _ in range(flushes):
        appender.append_columns(_records(flush_rows, at))
        t0 = time.perf_counter()
        appender.flush()
        times.append(time.perf_counter() - t0)
    files = log_files(root, "predictions", "fraud")
    import fsspec

    fs, _ = fsspec.core.url_to_fs(root)
    sizes = [fs.size(f) for f in files]
    t0 = time.perf_counter()
    frame = read_log(root, "predictions", "fraud", columns=list(MONITORED))
    read_s = time.perf_counter() - t0
    assert frame.height == flush_rows * flushes
    flush_s = statistics.median(times)
    return {
        "flush_rows": flush_rows, "objects": len(files), "flush_median_s": round(flush_s, 4),
        "records_per_s": round(flush_rows / flush_s),
        "bytes_per_object": round(statistics.mean(sizes)),
        "bytes_per_record": round(sum(sizes) / frame.height, 1),
        "read_s_per_object": round(read_s / len(files), 4),
    }  # fmt: skip


def bench_profiles(home: Path, url: str, rounds: int, segments: int) -> dict[str, Any]:
    """`segments` windows changed per save (one per segment), `rounds` saves."""
    from keel.monitor import LogBatch, Profiler, ProfileSpec
    from keel.monitor.profiles import stored
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import report_of

    registry = Database(f"sqlite:///{home / 'keel.db'}")
    models = ModelStore(registry, ArtifactStore(str(home / "artifacts")))
    spec = ProfileSpec.from_evaluation(report_of(models.get("fraud@1")))
    registry.dispose()
    db = Database(url)
    profiler = Profiler(db, window_s=3600)
    profiler.register("fraud", 1, spec)
    at = dt.datetime.now(dt.UTC)
    batch = pl.concat(
        [
            pl.DataFrame(
                _records(200, at), schema_overrides={"time": pl.Datetime("us", "UTC")}
            ).with_columns(pl.lit(f"s{i}").alias("segment"))
            for i in range(segments)
        ]
    )
    times = []
    for _ in range(rounds):
        profiler.observe(LogBatch(batch))
        t0 = time.perf_counter()
        saved = profiler.flush()
        times.append(time.perf_counter() - t0)
        assert saved == segments
    size = len(json.dumps(stored(next(iter(profiler._profiles.values())))))
    db.dispose()
    per_save = statistics.median(times)
    return {"windows_per_save": segments, "save_median_s": round(per_save, 4),
            "upserts_per_s": round(segments / per_save), "profile_bytes": size}  # fmt: skip


def bench_monitor_read(
    home: Path, url: str, writers: int, windows: int, segments: int
) -> dict[str, Any]:
    """What monitoring reads per model: `windows` hourly windows, each with a row per writer
    (replica process) and segment; the time of `read_windows` (sum over writers)."""
    from keel.monitor import LogBatch, Profiler, ProfileSpec, read_windows
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import report_of

    registry = Database(f"sqlite:///{home / 'keel.db'}")
    spec = ProfileSpec.from_evaluation(
        report_of(ModelStore(registry, ArtifactStore(str(home / "artifacts"))).get("fraud@1"))
    )
    registry.dispose()
    db = Database(url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    batch = pl.concat(
        [
            pl.DataFrame(_records(50, start + dt.timedelta(hours=h)),
                         schema_overrides={"time": pl.Datetime("us", "UTC")})
            .with_columns(pl.lit(f"s{i}").alias("segment"))
            for h in range(windows) for i in range(segments)
        ]
    )  # fmt: skip
    for _ in range(writers):
        profiler = Profiler(db, window_s=3600)
        profiler.register("fraud", 1, spec)
        profiler.observe(LogBatch(batch))
        profiler.flush()
    t0 = time.perf_counter()
    got = read_windows(db, "fraud", version=1)
    took = time.perf_counter() - t0
    db.dispose()
    assert len(got) == windows
    assert got[0].rows == 50 * segments * writers
    return {"writers": writers, "windows": windows, "segments": segments,
            "rows_read": writers * windows * segments, "read_s": round(took, 3),
            "ms_per_row": round(1000 * took / (writers * windows * segments), 3)}  # fmt: skip


def bench_ray() -> dict[str, Any]:
    here = Path(__file__).resolve().parent
    if not (here / "ray_parts.py").exists():
        return {"skipped": "bench/ray_parts.py does not exist"}
    sys.path.insert(0, str(here))
    try:
        import ray_parts  # type: ignore[import-not-found]
    except ImportError as exc:
        return {"skipped": f"bench/ray_parts.py is not importable ({exc})"}
    return {
        "serve": ray_parts.ray_serve_throughput(),
        "batch": ray_parts.ray_batch_vs_local(1_000_000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--database-url", default=os.environ.get("KEEL_TEST_POSTGRES_URL"))
    parser.add_argument("--flush-rows", type=int, default=4000)
    parser.add_argument("--ray", action="store_true")
    parser.add_argument("--skip", default="")
    parser.add_argument("--priority", type=int, default=0)
    args = parser.parse_args()
    if args.priority and not os.environ.get("KEEL_BENCH_GROUP"):
        env = {**os.environ, "KEEL_BENCH_GROUP": "1"}  # a session of its own, then renice it
        sys.exit(subprocess.run(["setsid", "-w", sys.executable, *sys.argv], env=env).returncode)
    if args.priority:
        global PRIORITY
        PRIORITY = args.priority
        Path("/proc/self/autogroup").write_text(str(args.priority))
    skip = set(filter(None, args.skip.split(",")))
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m": os.getloadavg()[0],
                           "priority": args.priority}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        prepare(home, None)
        if "serve" not in skip:
            out["serve"] = bench_serve(home, args.seconds)
        if "follow" not in skip:
            out["follow_sqlite"] = bench_follow(home, None)
        if "log" not in skip:
            out["log_local"] = bench_log(str(Path(tmp) / "log"), args.flush_rows, 20)
            with moto_s3() as endpoint:
                from keel.store import configure_object_storage

                configure_object_storage("s3://bench", endpoint)
                out["log_s3_moto"] = bench_log("s3://bench/log", args.flush_rows, 20)
        if "profiles" not in skip:
            out["profiles"] = {
                "sqlite": bench_profiles(home, f"sqlite:///{home / 'keel.db'}", 20, 8)
            }
            if args.database_url:
                out["profiles"]["postgresql"] = _on_postgres(home, args.database_url)
                out["monitor_read_postgresql"] = _on_postgres(home, args.database_url, read=True)
        if args.ray:
            out["ray"] = bench_ray()
            if "skipped" in out["ray"]:
                print(f"skipped: {out['ray']['skipped']}", file=sys.stderr)
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")


def _on_postgres(home: Path, url: str, *, read: bool = False) -> dict[str, Any]:
    """The profile save on a fresh schema of the PostgreSQL server (dropped after)."""
    import sqlalchemy as sa

    schema = f"keel_bench_{os.getpid()}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    try:
        scoped = f"{url}{sep}options=-csearch_path%3D{schema}"
        if read:
            return bench_monitor_read(home, scoped, writers=20, windows=24, segments=4)
        return bench_profiles(home, scoped, 20, 8)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    main()
