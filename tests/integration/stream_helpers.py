"""Shared parts of the stream tests: `keel stream` in a subprocess, unique broker names, the
raw prediction log (every record as written, no reader's dedupe)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import polars as pl

ROW = {
    "region": "north",
    "merchant_category": "grocery",
    "amount": 12.5,
    "device": "pos",
    "distance_km": 3.0,
    "recent_tx_24h": 1,
}


def unique(prefix: str) -> str:
    return f"keeltest_{prefix}_{uuid.uuid4().hex[:10]}"


def start_stream(home: Path, args: list[str]) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KEEL_HOME": str(home),
        "KEEL_FLUSH_INTERVAL_S": "0.3",
        "KEEL_POLL_INTERVAL_S": "0.5",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "keel", "stream", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def raw_log(home: Path, model: str = "fraud") -> pl.DataFrame:
    """Every prediction record in the log's files, duplicates included."""
    files = sorted((home / "artifacts" / "predictions" / f"model={model}").glob("date=*/*.parquet"))
    if not files:
        return pl.DataFrame(schema={"prediction_id": pl.String, "role": pl.String})
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed")


def lag_of(port: int, stream: str) -> float | None:
    """`keel_stream_lag_messages` as the stream's metrics port serves it."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(f'keel_stream_lag_messages{{stream="{stream}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return None


def entry_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def build_small_registry(home: Path, versions: int = 1) -> None:
    """`versions` logistic regressions of 'fraud' on a small simulated table (production -> 1);
    the contract refuses an unseen region (e.g. 'mars'). Small: a stream test is about the
    stream, and training time is shared by every test on the machine."""
    from dataclasses import replace

    from keel.data import DatasetStore, infer_contract, with_column
    from keel.demo.simulate import TransactionSimulator
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database
    from keel.train import spec_from_dict, train

    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=300).generate(days=6, per_day=250)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        segment="region", sensitive=["customer_sex", "customer_age"],
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    contract = with_column(contract, replace(contract.column("region"), unseen="refuse"))
    ref = ds.ingest(frame, contract, "tx").version.ref
    specs = [
        spec_from_dict(
            {"name": f"lr{c}", "estimator": "sklearn.linear_model.LogisticRegression",
             "params": {"max_iter": 300, "C": c}}
        )
        for c in (1.0, 0.1)[:versions]
    ]  # fmt: skip
    train(specs, ref, datasets=ds, models=ms, register="fraud", tolerance=1.0)
    ms.set_alias("fraud", "production", 1)
    db.dispose()
