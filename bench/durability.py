"""Durability of the prediction log: `kill -9` of a server under load, ten times per scenario.

A client sends one-row predictions (16 at a time) and records each acknowledged prediction id
with the time its answer arrived. After a moment the server is killed with SIGKILL; then every
Parquet file of the log is read (each on its own: an unreadable file is counted), plus any
local spill file, and the acknowledged ids missing from them are the loss. `max_lost_seconds`
is, over the kills, the age at the kill of the oldest acknowledged prediction missing (0 when
none is): the log's promise is at most two flush intervals.

Scenarios (each restarts the server on the same home, so every restart also reads what the
killed one left):

- `sqlite`: the default embedded setup, nothing wrong;
- `postgres-locked`: PostgreSQL, and from a moment before the kill another session holds
  `LOCK TABLE window_profiles IN ACCESS EXCLUSIVE MODE` (profile saves wait on it);
- `postgres-stalled`: PostgreSQL reached through a TCP proxy that black-holes it a moment
  before the kill (a network stall: bytes acknowledged, nothing forwarded).

Before the durability work, the log's flush thread also saved profiles: a kill after a 24 s
lock lost 1,360 predictions, the oldest 5 s old (issue 12).

usage: .venv/bin/python bench/durability.py [--json] [--kills 10] [--scenarios sqlite,...]
       [--src DIR]   serve with another checkout's `src` (e.g. keel before this work:
                     git archive 2d42259 src | tar -x -C /tmp/keel-before; --src /tmp/keel-before/src)
       (PostgreSQL at KEEL_TEST_POSTGRES_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
# the stalling proxy is the one the integration tests use
sys.path.insert(0, str(HERE.parent / "tests" / "integration"))
from tcp_proxy import StallingProxy  # noqa: E402

POSTGRES_URL = os.environ.get(
    "KEEL_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
FLUSH_S = 0.5
SERVER_SRC: str | None = None  # --src: the servers import keel from there
CONCURRENCY = 16
ROW = {"region": "north", "merchant_category": "grocery", "amount": 12.5, "device": "pos",
       "distance_km": 3.0, "recent_tx_24h": 1}  # fmt: skip


def build_registry(home: Path, database_url: str) -> None:
    """A small logistic regression 'fraud' in production."""
    from keel.data import DatasetStore, infer_contract
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    db = Database(database_url)
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=300).generate(days=5, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}
    train([spec_from_dict(spec)], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, database_url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "KEEL_HOME": str(home),
        "KEEL_DATABASE_URL": database_url,
        "KEEL_OPEN_PREDICT": "true",
        "KEEL_FLUSH_INTERVAL_S": str(FLUSH_S),
        "KEEL_POLL_INTERVAL_S": "1",
    }
    if SERVER_SRC:
        env["PYTHONPATH"] = SERVER_SRC
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"the server exited with {proc.returncode}"
            raise RuntimeError(msg)
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        time.sleep(0.2)
    proc.kill()
    msg = "the server did not become ready in 120 s"
    raise RuntimeError(msg)


@dataclass
class Round:
    acked: list[tuple[str, float]] = field(default_factory=list)  # (id, time.time() of answer)
    killed_at: float = 0.0
    shed: int = 0


async def load(url: str, rnd: Round, stop: asyncio.Event) -> None:
    async def worker(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                n += 1
                body = {"rows": [{**ROW, "amount": float(i * 1000 + n % 997)}]}
                try:
                    r = await client.post("/v1/models/fraud/predict", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    now = time.time()
                    rnd.acked.extend((pid, now) for pid in r.json()["prediction_ids"])
                elif r.status_code == 503:
                    rnd.shed += 1

    await asyncio.gather(*(worker(i) for i in range(CONCURRENCY)))


async def one_kill(home: Path, database_url: str, outage: Any, rng: random.Random) -> Round:
    proc, url = await asyncio.to_thread(start_server, home, database_url)
    rnd = Round()
    stop = asyncio.Event()
    task = asyncio.ensure_future(load(url, rnd, stop))
    await asyncio.sleep(0.75)  # load before the outage
    with outage():
        await asyncio.sleep(1.5 + rng.uniform(0, FLUSH_S))  # under the outage; any flush phase
        rnd.killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        stop.set()
        await task
    return rnd


def read_everything(home: Path) -> tuple[set[str], int, int]:
    """Ids in every log file and spill file; how many files were read, how many failed."""
    ids: set[str] = set()
    files = unreadable = 0
    paths = [
        *(home / "artifacts" / "predictions").glob("model=*/date=*/part-*.parquet"),
        *(home / "spill" / "predictions").glob("part-*.parquet*"),
    ]
    for path in paths:
        files += 1
        try:
            ids.update(pl.read_parquet(path, columns=["prediction_id"]).get_column("prediction_id"))
        except Exception:
            unreadable += 1
    return ids, files, unreadable


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield


def run_scenario(name: str, kills: int, workdir: Path, seed: int) -> dict[str, Any]:
    home = workdir / name
    home.mkdir()
    rng = random.Random(seed)
    schema = None
    admin = None
    proxy = None
    try:
        if name == "sqlite":
            url = f"sqlite:///{home / 'keel.db'}"
            build_registry(home, url)
            serve_url, outage = url, nothing
        else:
            schema = f"keel_bench_{uuid.uuid4().hex[:10]}"
            admin = sa.create_engine(POSTGRES_URL)
            with admin.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            base = sa.engine.make_url(POSTGRES_URL)
            url = f"{base.render_as_string(hide_password=False)}?options=-csearch_path%3D{schema}"
            build_registry(home, url)
            if name == "postgres-locked":
                serve_url = url
                locker = admin

                @contextlib.contextmanager
                def locked() -> Iterator[None]:
                    with locker.connect() as conn:
                        conn.exec_driver_sql(f'SET search_path TO "{schema}"')
                        conn.exec_driver_sql("BEGIN")
                        conn.exec_driver_sql("LOCK TABLE window_profiles IN ACCESS EXCLUSIVE MODE")
                        try:
                            yield
                        finally:
                            conn.exec_driver_sql("ROLLBACK")

                outage = locked
            elif name == "postgres-stalled":
                proxy = StallingProxy(base.port or 5432).start()
                via = base.set(port=proxy.port).render_as_string(hide_password=False)
                serve_url = f"{via}?options=-csearch_path%3D{schema}"
                stalling = proxy

                @contextlib.contextmanager
                def stalled() -> Iterator[None]:
                    stalling.stall()
                    try:
                        yield
                    finally:
                        stalling.resume()

                outage = stalled
            else:
                msg = f"unknown scenario {name!r}"
                raise SystemExit(msg)
        worst = 0.0
        acked = missing = shed = 0
        files = unreadable = 0
        for _ in range(kills):
            rnd = asyncio.run(one_kill(home, serve_url, outage, rng))
            ids, files, unreadable_now = read_everything(home)
            unreadable = max(unreadable, unreadable_now)
            lost = [t for pid, t in rnd.acked if pid not in ids]
            acked += len(rnd.acked)
            missing += len(lost)
            shed += rnd.shed
            if lost:
                worst = max(worst, rnd.killed_at - min(lost))
        return {
            "kills": kills,
            "max_lost_seconds": round(worst, 3),
            "files_unreadable": unreadable,
            "files": files,
            "acknowledged": acked,
            "missing": missing,
            "shed_503": shed,
        }
    finally:
        if proxy is not None:
            proxy.close()
        if admin is not None and schema is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument(
        "--scenarios", default="sqlite,postgres-locked,postgres-stalled", help="comma-separated"
    )
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--src", help="serve with the keel package under this folder")
    args = parser.parse_args()
    global SERVER_SRC
    SERVER_SRC = str(Path(args.src).resolve()) if args.src else None
    limit = 2 * FLUSH_S
    results: dict[str, Any] = {}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="keel-durability-") as tmp:
        for i, name in enumerate(args.scenarios.split(",")):
            results[name] = run_scenario(name, args.kills, Path(tmp), args.seed + i)
    elapsed = time.monotonic() - t0
    served = f"keel from {SERVER_SRC}" if SERVER_SRC else "keel of this checkout"
    print(
        f"kill -9 under load, {served}, flush interval {FLUSH_S} s (limit {limit} s), {elapsed:.0f} s"
    )
    print(f"{'scenario':<18} {'kills':>5} {'max_lost_seconds':>17} {'files':>6} "
          f"{'unreadable':>10} {'acknowledged':>12} {'missing':>8} {'503':>5}")  # fmt: skip
    for name, r in results.items():
        print(
            f"{name:<18} {r['kills']:>5} {r['max_lost_seconds']:>17} {r['files']:>6} "
            f"{r['files_unreadable']:>10} {r['acknowledged']:>12} {r['missing']:>8} "
            f"{r['shed_503']:>5}"
        )
    ok = all(
        r["max_lost_seconds"] <= limit and r["files_unreadable"] == 0 for r in results.values()
    )
    print("every scenario within the limit, every file readable" if ok else "NOT within the limit")
    if args.json:
        print(
            json.dumps(
                {
                    "server_src": SERVER_SRC,
                    "flush_interval_s": FLUSH_S,
                    "limit_s": limit,
                    "ok": ok,
                    "elapsed_s": round(elapsed, 1),
                    "scenarios": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
