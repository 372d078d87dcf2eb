"""Ray parts of the scale benchmark: keel through Ray Serve, and batch scoring on Ray Data.

- `ray_serve_throughput(requests, concurrency)`: one-row predictions of the same model, the
  same load from the same client (httpx, asyncio, `concurrency` in flight), to plain
  `keel serve` (one uvicorn worker) and to keel in one Ray Serve replica (0.5 CPU) behind
  Ray Serve's HTTP proxy: requests/s, p50 and p99 in ms, and that both answered the same.
- `ray_batch_vs_local(rows)`: `keel predict`'s path on `rows` rows (Parquet), local chunks
  against Ray Data's actor pool (2 actors of 0.5 CPU): seconds each, the ratio, and that the
  output files are equal.

Both run on a local Ray cluster this script starts (4 logical CPUs, 512 MB object store,
loopback, Ray's state in a temporary folder), or on the one this process is connected to.
The client runs on the same machine as the servers and takes CPU from them: figures compare
the two servers under the same client, they are not the servers' ceilings.

bench/scale.py calls both (`--ray`); alone:

usage: .venv/bin/python bench/ray_parts.py [--json] [--requests 2000] [--concurrency 16]
       [--rows 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROW = {
    "region": "north",
    "merchant_category": "grocery",
    "amount": 12.5,
    "device": "pos",
    "distance_km": 3.0,
    "recent_tx_24h": 1,
}


def _registry(home: Path) -> None:
    """A keel home with `fraud` (logistic regression on simulated traffic) in production."""
    from keel.data import DatasetStore, infer_contract
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"bench"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=800).generate(days=20, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = spec_from_dict(
        {
            "name": "lr",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 1000},
        }
    )
    train([spec], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


def _cluster() -> None:
    """Join the Ray cluster this process is connected to, else start a local one, once: it
    stays up until the process exits (a second `ray.init` in one process after a shutdown
    timed out here), with its state in a temporary folder removed at exit."""
    import atexit
    import shutil

    import ray

    if ray.is_initialized():
        return
    root = Path(tempfile.mkdtemp(prefix="keel-ray-bench-cluster-"))
    keep = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR")}
    os.environ.update({"HOME": str(root), "RAY_TMPDIR": str(root / "rt")})
    try:
        for attempt in (1, 2):  # under load the raylet may miss Ray's fixed 30 s start
            try:
                ray.init(
                    address="local",
                    num_cpus=4,
                    object_store_memory=512 * 1024**2,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    logging_level="warning",
                    log_to_driver=False,
                )
                break
            except Exception:
                ray.shutdown()
                if attempt == 2:
                    raise
    finally:
        for k, v in keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    atexit.register(shutil.rmtree, root, True)
    atexit.register(ray.shutdown)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{url} was not ready in {seconds} s")


async def _load(url: str, requests: int, concurrency: int) -> dict[str, Any]:
    """`requests` one-row predictions, `concurrency` at a time; after 200 of warm-up."""
    import httpx

    body = json.dumps({"rows": [ROW]}).encode()
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def run(n: int, latencies: list[float]) -> int:
            failed = 0
            queue = iter(range(n))

            async def worker() -> None:
                nonlocal failed
                for _ in queue:
                    t0 = time.perf_counter()
                    r = await client.post("/v1/models/fraud/predict", content=body, headers=headers)
                    latencies.append(time.perf_counter() - t0)
                    failed += r.status_code != 200

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return failed

        await run(200, [])
        latencies: list[float] = []
        t0 = time.perf_counter()
        failed = await run(requests, latencies)
        seconds = time.perf_counter() - t0
        answer = (await client.post("/v1/models/fraud/predict", json={"rows": [ROW]})).json()
    ms = np.asarray(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "failed": failed,
        "seconds": round(seconds, 3),
        "rps": round(requests / seconds, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "probabilities": answer.get("probabilities"),
    }


def ray_serve_throughput(requests: int = 2000, concurrency: int = 16) -> dict[str, Any]:
    """keel serve (uvicorn, 1 worker) and keel in 1 Ray Serve replica, the same model and load."""
    with tempfile.TemporaryDirectory(prefix="keel-ray-bench-") as tmp:
        root = Path(tmp)
        home = root / "keel"
        home.mkdir()
        _registry(home)
        env = {**os.environ, "KEEL_HOME": str(home), "KEEL_OPEN_PREDICT": "true"}
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(f"http://127.0.0.1:{port}")
            plain = asyncio.run(_load(f"http://127.0.0.1:{port}", requests, concurrency))
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=60)
        on_ray = _through_ray_serve(home, requests, concurrency)
    same = np.allclose(plain.pop("probabilities"), on_ray.pop("probabilities"), rtol=0, atol=0)
    return {
        "keel_serve": plain,
        "ray_serve": on_ray,
        "same_answer": bool(same),
        "rps_ratio_ray_over_plain": round(on_ray["rps"] / plain["rps"], 3),
        "setup": "1 uvicorn worker vs 1 Ray Serve replica (num_cpus 0.5) + Ray's HTTP proxy; "
        "httpx client on the same machine",
    }


def _through_ray_serve(home: Path, requests: int, concurrency: int) -> dict[str, Any]:
    from ray import serve

    from keel.serve import RayScaling, ray_deployment
    from keel.store import load_settings

    _cluster()
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        t0 = time.perf_counter()
        serve.run(
            ray_deployment(
                ["fraud"],
                settings=load_settings(home=home, open_predict=True),
                scaling=RayScaling(num_cpus=0.5),
            ),
            name="keel",
            route_prefix="/",
            blocking=False,
        )
        _wait_ready(f"http://127.0.0.1:{port}")
        started = time.perf_counter() - t0
        result = asyncio.run(_load(f"http://127.0.0.1:{port}", requests, concurrency))
    finally:
        serve.shutdown()
    result["replica_start_s"] = round(started, 1)
    return result


def ray_batch_vs_local(rows: int = 1_000_000) -> dict[str, Any]:
    """`keel predict` of `rows` rows: local chunks against Ray Data's actor pool."""
    import polars as pl

    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import load_settings
    from keel.train import score_file, score_file_ray

    with tempfile.TemporaryDirectory(prefix="keel-ray-bench-") as tmp:
        root = Path(tmp)
        home = root / "keel"
        home.mkdir()
        _registry(home)
        base = TransactionSimulator(seed=7, n_customers=2000).generate(days=25, per_day=2000)
        frame = pl.concat([base] * (rows // base.height + 1)).head(rows)
        source = root / "rows.parquet"
        frame.write_parquet(source)
        settings = load_settings(home=home)
        models = ModelStore.open(settings)
        t0 = time.perf_counter()
        local = score_file("fraud", source, root / "local.parquet", models=models)
        local_s = time.perf_counter() - t0
        _cluster()
        t0 = time.perf_counter()
        on_ray = score_file_ray(
            "fraud",
            source,
            root / "ray.parquet",
            models=models,
            settings=settings,
            actors=2,
            num_cpus=0.5,
        )
        ray_s = time.perf_counter() - t0
        same = pl.read_parquet(root / "local.parquet").equals(pl.read_parquet(root / "ray.parquet"))
        models.db.dispose()
    return {
        "rows": rows,
        "rows_scored": local.rows_scored,
        "local_s": round(local_s, 2),
        "ray_s": round(ray_s, 2),
        "ray_over_local": round(ray_s / local_s, 2),
        "same_output": bool(same and on_ray.rows_scored == local.rows_scored),
        "setup": "local: 50,000-row chunks in this process; ray: 2 actors of 0.5 CPU, "
        "50,000-row blocks, on a local 4-logical-CPU Ray cluster (cluster start not counted)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", choices=["serve", "batch"], default=None)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.only in (None, "serve"):
        out["ray_serve"] = ray_serve_throughput(args.requests, args.concurrency)
    if args.only in (None, "batch"):
        out["ray_batch"] = ray_batch_vs_local(args.rows)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for part, figures in out.items():
        print(part)
        for k, v in figures.items():
            print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
