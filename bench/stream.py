"""Streams: messages/s end to end through Redis Streams and NATS JetStream at batch sizes
1..256, with message-to-score latency, beside keel's HTTP path on the same model.

One model (a logistic regression of the transaction simulator's fraud label, registered in a
fresh keel home) is served three ways, each by its own process on loopback:

- `keel stream` from a Redis stream to a Redis stream, and from a NATS JetStream subject to
  another, at `--batch-size` 1, 16, 64, 256 (`--max-wait-ms 5`, acks every 200 ms);
- `keel serve`, one-row JSON requests from 16 concurrent httpx clients (the same Python
  asyncio client side as the stream's producer and reader; bench/serving.py measures HTTP
  with wrk instead, and its figures are higher).

Per stream point: a warm-up message, then (1) throughput: `--messages` rows published as fast
as the producer goes (pipelined, 100 per round trip) while a reader takes the scores from the
sink; messages/s is the count
over the time from the first publish to the last score; (2) latency: the same count paced at
`--rate` messages/s (below every point's capacity), the time from each publish's return to the
moment the reader holds its score: p50 and p99. The producer, the reader and the server share
the machine (and its other users): figures are for comparing the paths, not absolute.

usage: .venv/bin/python bench/stream.py [--json] [--messages 3000] [--rate 200]
       [--batches 1,16,64,256] [--brokers redis,nats,http]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROW = {"region": "north", "merchant_category": "grocery", "amount": 12.5, "device": "pos",
       "distance_km": 3.0, "recent_tx_24h": 1}  # fmt: skip


def build(home: Path) -> None:
    from dataclasses import replace

    from keel.data import DatasetStore, infer_contract, with_column
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=400).generate(days=8, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        segment="region", sensitive=["customer_sex", "customer_age"],
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    contract = with_column(contract, replace(contract.column("region"), unseen="refuse"))
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = spec_from_dict({"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression",
                           "params": {"max_iter": 500}})  # fmt: skip
    train([spec], ref, datasets=ds, models=ms, register="fraud", tolerance=1.0)
    ms.set_alias("fraud", "production", 1)
    db.dispose()


def env(home: Path) -> dict[str, str]:
    return {**os.environ, "KEEL_HOME": str(home), "KEEL_FLUSH_INTERVAL_S": "0.5"}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


# ---- brokers: publish one body, read scores ---------------------------------------------


class RedisSide:
    def __init__(self) -> None:
        import redis.asyncio as aioredis

        self.r = aioredis.Redis()
        tag = uuid.uuid4().hex[:8]
        self.src, self.out = f"bench_in_{tag}", f"bench_out_{tag}"
        self.source = f"redis://127.0.0.1:6379/0?stream={self.src}&group=g"
        self.sink = f"redis://127.0.0.1:6379/0?stream={self.out}"
        self.last = "0"

    async def start(self) -> None:
        pass

    async def publish(self, body: bytes) -> str:
        return (await self.r.xadd(self.src, {"data": body})).decode()  # type: ignore[no-any-return]

    async def publish_many(self, bodies: list[bytes]) -> list[str]:
        pipe = self.r.pipeline(transaction=False)
        for body in bodies:
            pipe.xadd(self.src, {"data": body})
        return [i.decode() for i in await pipe.execute()]

    async def read(self) -> list[str]:
        got = await self.r.xread({self.out: self.last}, count=1000, block=1000)
        ids = []
        for _, entries in got or []:
            for eid, fields in entries:
                self.last = eid.decode()
                ids.append(json.loads(fields[b"data"])["message_id"])
        return ids

    async def close(self) -> None:
        await self.r.delete(self.src, self.out)
        await self.r.aclose()


class NatsSide:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.src, self.out = f"BENCHIN{tag}", f"BENCHOUT{tag}"
        self.source = f"nats://127.0.0.1:4222?subject={self.src}&stream={self.src}&durable=d"
        self.sink = f"nats://127.0.0.1:4222?subject={self.out}&stream={self.out}"

    async def start(self) -> None:
        import nats

        self.nc = await nats.connect("nats://127.0.0.1:4222")
        self.js = self.nc.jetstream()
        await self.js.add_stream(name=self.src, subjects=[self.src])
        await self.js.add_stream(name=self.out, subjects=[self.out])
        # a core subscription hears every publish to the sink subject (a JetStream push
        # consumer would stop at its max_ack_pending of unacknowledged messages)
        self.sub = await self.nc.subscribe(self.out)

    async def publish(self, body: bytes) -> str:
        return str((await self.js.publish(self.src, body, stream=self.src)).seq)

    async def publish_many(self, bodies: list[bytes]) -> list[str]:
        acks = await asyncio.gather(
            *(self.js.publish(self.src, b, stream=self.src) for b in bodies)
        )
        return [str(a.seq) for a in acks]

    async def read(self) -> list[str]:
        ids = []
        try:
            msg = await self.sub.next_msg(timeout=1)
        except Exception:
            return ids
        ids.append(json.loads(msg.data)["message_id"])
        while True:
            try:
                msg = await self.sub.next_msg(timeout=0.001)
            except Exception:
                return ids
            ids.append(json.loads(msg.data)["message_id"])

    async def close(self) -> None:
        for name in (self.src, self.out):
            await self.js.delete_stream(name)
        await self.nc.close()


async def measure_stream(
    side: Any, messages: int, rate: float | None, proc: subprocess.Popen[bytes]
) -> dict[str, float]:
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    done = asyncio.Event()

    async def reader() -> None:
        while len(got) < messages + 1:
            for mid in await side.read():
                got.setdefault(mid, time.perf_counter())
        done.set()

    task = asyncio.create_task(reader())
    body = json.dumps(ROW).encode()
    warm = await side.publish(body)
    sent[warm] = time.perf_counter()
    while warm not in got:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"keel stream exited with {proc.returncode}: {err[-2000:]}")
        await asyncio.sleep(0.005)
    t0 = time.perf_counter()
    if rate is None:  # as fast as the producer goes: pipelined, 100 a round trip
        for start in range(0, messages, 100):
            for mid in await side.publish_many([body] * min(100, messages - start)):
                sent[mid] = time.perf_counter()
    for i in range(messages if rate is not None else 0):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))  # type: ignore[operator]
        mid = await side.publish(body)
        sent[mid] = time.perf_counter()
    while not done.is_set():
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"keel stream exited with {proc.returncode}: {err[-2000:]}")
        await asyncio.sleep(0.2)
    task.cancel()
    lat = [(got[m] - sent[m]) * 1000 for m in sent if m != warm]
    end = max(got[m] for m in sent if m != warm)
    return {"messages_per_s": messages / (end - t0), "p50_ms": pct(lat, 0.5),
            "p99_ms": pct(lat, 0.99)}  # fmt: skip


def stream_point(home: Path, broker: str, batch: int, messages: int, rate: float) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        side = RedisSide() if broker == "redis" else NatsSide()
        await side.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "keel", "stream", "fraud", "--source", side.source,
             "--sink", side.sink, "--batch-size", str(batch), "--max-wait-ms", "5",
             "--max-inflight", str(max(2048, 4 * batch))],
            env=env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            burst = await measure_stream(side, messages, None, proc)
            paced = await measure_stream(side, messages // 3, rate, proc)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            await side.close()
        return {"broker": broker, "batch": batch, "messages": messages,
                "messages_per_s": round(burst["messages_per_s"], 1),
                "burst_p99_ms": round(burst["p99_ms"], 1),
                "paced_rate": rate, "paced_p50_ms": round(paced["p50_ms"], 2),
                "paced_p99_ms": round(paced["p99_ms"], 2)}  # fmt: skip

    return asyncio.run(run())


def http_point(home: Path, requests: int, rate: float) -> dict[str, Any]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "fraud", "--port", str(port)],
        env={**env(home), "KEEL_OPEN_PREDICT": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)

        async def run() -> dict[str, Any]:
            body = json.dumps({"rows": [ROW]}).encode()
            headers = {"content-type": "application/json"}
            async with httpx.AsyncClient(base_url=url, timeout=30) as c:
                await c.post("/v1/models/fraud/predict", content=body, headers=headers)
                lat: list[float] = []

                async def one() -> None:
                    t = time.perf_counter()
                    (
                        await c.post("/v1/models/fraud/predict", content=body, headers=headers)
                    ).raise_for_status()
                    lat.append((time.perf_counter() - t) * 1000)

                async def worker(n: int) -> None:
                    for _ in range(n):
                        await one()

                t0 = time.perf_counter()
                await asyncio.gather(*(worker(requests // 16) for _ in range(16)))
                rps = (requests // 16 * 16) / (time.perf_counter() - t0)
                burst_p99 = pct(lat, 0.99)
                lat.clear()
                t0 = time.perf_counter()
                tasks = []
                for i in range(requests // 3):
                    await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
                    tasks.append(asyncio.create_task(one()))
                await asyncio.gather(*tasks)
                return {"broker": "http", "batch": None, "messages": requests,
                        "messages_per_s": round(rps, 1), "burst_p99_ms": round(burst_p99, 1),
                        "paced_rate": rate, "paced_p50_ms": round(pct(lat, 0.5), 2),
                        "paced_p99_ms": round(pct(lat, 0.99), 2)}  # fmt: skip

        return asyncio.run(run())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--batches", default="1,16,64,256")
    ap.add_argument("--brokers", default="redis,nats,http")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="keel-bench-stream-"))
    try:
        build(home)
        points = []
        for broker in args.brokers.split(","):
            if broker == "http":
                points.append(http_point(home, args.messages, args.rate))
                continue
            for batch in (int(b) for b in args.batches.split(",")):
                points.append(stream_point(home, broker, batch, args.messages, args.rate))
                print(json.dumps(points[-1]), file=sys.stderr, flush=True)
        out = {"cpus": os.cpu_count(), "load_1m": os.getloadavg()[0], "points": points}
        print(json.dumps(out, indent=2) if args.json else out)
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
