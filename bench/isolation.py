"""Isolation: one-row predictions while another client sends 10 MB bodies and 100k-row requests.

A real `keel serve` on loopback over a HistGradientBoosting model of the transaction simulator.
Phase 1 (idle): N one-row predictions, one at a time on a kept-alive connection, p50/p99.
Phase 2 (loaded): the same N while two other processes send, as fast as they are answered,
~9 MB bodies of 75,000 rows and 100,000-row requests in columns form (both over `max_rows`, so
each is refused with 413 after it is read and counted). `isolation_p99_ratio` = loaded p99 /
idle p99 (target <= 3). Phase 3 (loaded, accepted): the same again with a third process sending
requests of `max_rows` rows that are answered (`isolation_p99_ratio_accepted`).
Phase 4: a fresh server's peak RSS (VmHWM, the server and its parsing process) under four
concurrent maximum-size requests: `max_rows` rows padded with an ignored field to just under
`max_body_bytes` (10 MB), 3 rounds (`peak_rss_mb`, with the idle server's `baseline_rss_mb`).

Bounded in requests (N, rounds), not time. The machine has 2 cores; the load clients share
them with the server, so repeat a run before trusting a small difference.

usage: .venv/bin/python bench/isolation.py [--json] [--requests 2000] [--fresh]
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOME = HERE / ".isolation_home"
ROW = {
    "region": "north",
    "merchant_category": "grocery",
    "amount": 12.5,
    "device": "pos",
    "distance_km": 3.0,
    "recent_tx_24h": 1,
}
MAX_ROWS = 10_000
MAX_BODY = 10 * 1024 * 1024


def prepare(home: Path) -> None:
    """A registry with one HistGradientBoosting model 'fraud' in production."""
    from keel.data import DatasetStore, infer_contract
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    home.mkdir(parents=True, exist_ok=True)
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=800).generate(days=20, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        segment="region", sensitive=["customer_sex", "customer_age"],
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = spec_from_dict(
        {
            "name": "hgb",
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30},
        }
    )
    train([spec], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(home: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "KEEL_HOME": str(home),
        "KEEL_OPEN_PREDICT": "true",
        "KEEL_MAX_ROWS": str(MAX_ROWS),
        "KEEL_MAX_BODY_BYTES": str(MAX_BODY),
        "KEEL_FLUSH_INTERVAL_S": "0.5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit("the server exited while starting")
        try:
            status, _ = call(port, "GET", "/readyz")
            if status == 200:
                return proc, port
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        headers = {"content-type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def one_row_latencies(port: int, n: int) -> list[float]:
    """n one-row predictions, one at a time on one kept-alive connection (seconds each)."""
    body = json.dumps({"rows": [ROW]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out = []
    headers = {"content-type": "application/json"}
    for i in range(n + 50):
        t0 = time.perf_counter()
        conn.request("POST", "/v1/models/fraud/predict", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise SystemExit(f"one-row predict answered {response.status}")
        if i >= 50:  # the first 50 warm the connection and the server up
            out.append(elapsed)
    conn.close()
    return out


def make_body(kind: str) -> bytes:
    if kind == "10mb":  # ~9 MB of rows: 75,000 of them, over max_rows
        rows = [dict(ROW, amount=i * 0.37) for i in range(75_000)]
        return json.dumps({"rows": rows}).encode()
    if kind == "100k":  # 100,000 rows as columns (~3.4 MB)
        return json.dumps({"columns": {k: [v] * 100_000 for k, v in ROW.items()}}).encode()
    if kind == "max_rows":  # the largest request that is answered
        return json.dumps({"rows": [dict(ROW, amount=i * 0.37) for i in range(MAX_ROWS)]}).encode()
    if kind == "max_size":  # max_rows rows, padded with an ignored field to just under 10 MB
        pad = "x" * ((MAX_BODY - 200_000) // MAX_ROWS - 160)
        rows = [dict(ROW, amount=i * 0.37, note=pad) for i in range(MAX_ROWS)]
        body = json.dumps({"rows": rows}).encode()
        assert len(body) < MAX_BODY, len(body)
        return body
    raise ValueError(kind)


def loader(port: int, kind: str, stop_flag: Any, counts: Any) -> None:
    """Send one kind of big request until told to stop; count the answers by status."""
    body = make_body(kind)
    while not stop_flag.is_set():
        try:
            status, _ = call(port, "POST", "/v1/models/fraud/predict", body)
        except OSError:
            status = 0
        counts[str(status)] = counts.get(str(status), 0) + 1


def loaded(port: int, n: int, kinds: list[str]) -> tuple[list[float], dict[str, dict[str, int]]]:
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    stop_flag = manager.Event()
    counts = {k: manager.dict() for k in kinds}
    procs = [ctx.Process(target=loader, args=(port, k, stop_flag, counts[k])) for k in kinds]
    for p in procs:
        p.start()
    # wait until every loader has had one answer, so the load is on when measuring starts
    while not all(len(counts[k]) for k in kinds):
        time.sleep(0.05)
    latencies = one_row_latencies(port, n)
    stop_flag.set()
    for p in procs:
        p.join(timeout=120)
    out = {k: dict(counts[k]) for k in kinds}
    manager.shutdown()
    return latencies, out


def healthz_while(port: int, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out.extend(int(x) for x in text)
    return out


def peak_rss(home: Path, rounds: int) -> dict[str, float]:
    """A fresh server's VmHWM (main + parsing process) under four concurrent max-size requests."""
    proc, port = start(home)
    try:
        body = make_body("max_size")
        call(port, "POST", "/v1/models/fraud/predict", json.dumps({"rows": [ROW]}).encode())
        kids = children(proc.pid)
        baseline = rss_mb(proc.pid) + sum(rss_mb(k) for k in kids)  # the peak so far
        statuses: dict[str, int] = {}
        for _ in range(rounds):
            results: list[int] = []

            def send(results: list[int] = results) -> None:
                results.append(call(port, "POST", "/v1/models/fraud/predict", body)[0])

            threads = [threading.Thread(target=send) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for s in results:
                statuses[str(s)] = statuses.get(str(s), 0) + 1
        kids = children(proc.pid)
        main, parsers = rss_mb(proc.pid), sum(rss_mb(k) for k in kids)
        return {
            "peak_rss_mb": round(main + parsers, 1),
            "peak_rss_mb_server_process": round(main, 1),
            "peak_rss_mb_parsing_process": round(parsers, 1),
            "baseline_rss_mb": round(baseline, 1),
            "max_size_body_mb": round(len(body) / 1e6, 2),
            "max_size_statuses": statuses,  # type: ignore[dict-item]
        }
    finally:
        stop(proc)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def rss_only(home: Path, rounds: int) -> None:
    print(json.dumps(peak_rss(home, rounds)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fresh", action="store_true", help="train the model again")
    parser.add_argument("--no-rss", action="store_true", help="skip the peak RSS phase")
    args = parser.parse_args()
    if args.fresh and HOME.exists():
        shutil.rmtree(HOME)
    if not (HOME / "keel.db").exists():
        prepare(HOME)
    for log_dir in ("predictions",):
        shutil.rmtree(HOME / "artifacts" / log_dir, ignore_errors=True)
    proc, port = start(HOME)
    try:
        idle = one_row_latencies(port, args.requests)
        loaded_lat, counts = loaded(port, args.requests, ["10mb", "100k"])
        accepted_lat, accepted_counts = loaded(port, args.requests, ["10mb", "100k", "max_rows"])
    finally:
        stop(proc)
    rss = {} if args.no_rss else peak_rss(HOME, args.rounds)
    ms = 1000
    result = {
        "requests": args.requests,
        "idle_p50_ms": round(pct(idle, 0.5) * ms, 3),
        "idle_p99_ms": round(pct(idle, 0.99) * ms, 3),
        "loaded_p50_ms": round(pct(loaded_lat, 0.5) * ms, 3),
        "loaded_p99_ms": round(pct(loaded_lat, 0.99) * ms, 3),
        "isolation_p99_ratio": round(pct(loaded_lat, 0.99) / pct(idle, 0.99), 2),
        "loaded_statuses": counts,
        "accepted_p99_ms": round(pct(accepted_lat, 0.99) * ms, 3),
        "isolation_p99_ratio_accepted": round(pct(accepted_lat, 0.99) / pct(idle, 0.99), 2),
        "accepted_statuses": accepted_counts,
        **rss,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:32} {v}")


if __name__ == "__main__":
    main()
