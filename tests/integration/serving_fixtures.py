"""A real `keel serve` on loopback over a freshly trained model, for the serving tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from keel.data import DatasetStore, infer_contract, with_column
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database
from keel.train import spec_from_dict, train

ROW = {
    "region": "north",
    "merchant_category": "grocery",
    "amount": 12.5,
    "device": "pos",
    "distance_km": 3.0,
    "recent_tx_24h": 1,
}
ADMIN = "admin-token"
FEEDER = "feedback-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_registry(
    home: Path,
    *,
    database_url: str | None = None,
    artifacts: str | None = None,
    days: int = 20,
    quick: bool = False,
) -> None:
    """Two registered versions of 'fraud' (logistic, HGB; `quick`: two logistic ones),
    production -> 1, in the home's SQLite file and artifact folder, or the ones named."""
    db = Database(database_url or f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(artifacts or str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=800).generate(days=days, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    # inferred contracts keep unseen categories; these tests pin refused ones (region 'mars',
    # a customer_sex that is not one of the seen values)
    for name in ("region", "customer_sex"):
        contract = with_column(contract, replace(contract.column(name), unseen="refuse"))
    ref = ds.ingest(frame, contract, "tx").version.ref
    specs = [
        spec_from_dict(
            {
                "name": "lr",
                "estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 1000},
            }
        ),
        spec_from_dict(
            {
                "name": "hgb",
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "params": {"max_iter": 30},
            }
            if not quick
            else {
                "name": "lr2",
                "estimator": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 1000, "C": 0.5},
            }
        ),
    ]
    train(specs, ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    port: int

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def start_server(
    home: Path,
    *,
    flush_interval_s: float = 0.3,
    env: dict[str, str | None] | None = None,
    model: str | list[str] = "fraud",
) -> Server:
    """`keel serve` on a free loopback port; `env` adds to the defaults (None removes one)."""
    port = free_port()
    extra = env or {}
    merged = {
        **os.environ,
        "KEEL_HOME": str(home),
        "KEEL_OPEN_PREDICT": "true",
        "KEEL_TOKENS": f'{{"{ADMIN}": ["admin", "predict", "feedback"], "{FEEDER}": ["feedback"]}}',
        "KEEL_POLL_INTERVAL_S": "0.2",
        "KEEL_FLUSH_INTERVAL_S": str(flush_interval_s),
        "KEEL_MAX_BODY_BYTES": "200000",
        "KEEL_REPLAY_TIME": "true",
        **extra,
    }
    child_env = {k: v for k, v in merged.items() if v is not None}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "keel",
            "serve",
            *([model] if isinstance(model, str) else model),
            "--port",
            str(port),
        ],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            msg = f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url, home, proc, port)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    msg = "server did not become ready in 90 s"
    raise RuntimeError(msg)


def stop_server(server: Server, *, hard: bool = False) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGKILL if hard else signal.SIGINT)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)
    if server.process.stderr is not None:
        server.process.stderr.close()


def running(home: Path) -> Iterator[Server]:
    server = start_server(home)
    try:
        yield server
    finally:
        stop_server(server)
