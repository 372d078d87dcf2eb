"""Model registry: keel against MLflow's registry (SQLite backend), in one run.

Same model (LogisticRegression on 2,000 x 20), same machine: register versions, move an alias
(200 times), resolve an alias (200 times: `ModelStore.resolve`, which returns version, sha256 and
URI, as MLflow's `get_model_version_by_alias` returns its entity), load a model by alias (20
times: resolve, read, hash-check, skops-load, check contents). MLflow runs in its
own virtual environment (bench/.venvs/mlflow, made by bench/setup_peers.sh) with the harness in
bench/peers/registry; keel runs here.

usage: .venv/bin/python bench/registry.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def stats(xs: list[float]) -> dict[str, float]:
    a = np.array(xs) * 1000
    return {
        "n": len(xs),
        "median_ms": round(float(np.median(a)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
    }


def run_keel(workdir: Path) -> dict[str, object]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    from keel.data import contract_from_dict
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database

    x, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    model = LogisticRegression(max_iter=500).fit(x, y)
    contract = contract_from_dict(
        {
            "name": "bench",
            "columns": {
                **{f"x{i}": {"type": "float"} for i in range(20)},
                "y": {"type": "int", "role": "target"},
            },
        }
    )
    t0 = time.perf_counter()
    store = ModelStore(
        Database(f"sqlite:///{workdir / 'keel.db'}"), ArtifactStore(str(workdir / "artifacts"))
    )
    t_init = time.perf_counter() - t0
    reg = []
    for _ in range(50):
        t0 = time.perf_counter()
        store.register(
            "bench-model",
            model,
            contract=contract,
            spec={"estimator": "LogisticRegression"},
            evaluation={},
        )
        reg.append(time.perf_counter() - t0)
    set_t = []
    for k in range(200):
        t0 = time.perf_counter()
        store.set_alias("bench-model", "production", 1 + k % 50)
        set_t.append(time.perf_counter() - t0)
    store.set_alias("bench-model", "production", 20)
    get_t = []
    for _ in range(200):
        t0 = time.perf_counter()
        v = store.resolve("bench-model@production")
        get_t.append(time.perf_counter() - t0)
    assert v.version == 20
    load_t = []
    for _ in range(21):
        t0 = time.perf_counter()
        loaded = store.load_artifact(store.resolve("bench-model@production"))
        load_t.append(time.perf_counter() - t0)
    ok = bool((loaded.predict(x[:10]) == model.predict(x[:10])).all())
    return {
        "tool": "keel",
        "t_store_init_s": round(t_init, 3),
        "register": stats(reg),
        "set_alias": stats(set_t),
        "get_by_alias": stats(get_t),
        "load_first_s": round(load_t[0], 4),
        "load_by_alias": stats(load_t[1:]),
        "prediction_roundtrip_ok": ok,
    }


def run_mlflow(workdir: Path) -> dict[str, object] | None:
    python = HERE / ".venvs" / "mlflow" / "bin" / "python"
    if not python.exists():
        print("mlflow: no environment; run bash bench/setup_peers.sh", file=sys.stderr)
        return None
    out = workdir / "mlflow.jsonl"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    proc = subprocess.run(
        [
            str(python),
            str(HERE / "peers" / "registry" / "bench_mlflow.py"),
            str(workdir / "mlflow"),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
    )
    if proc.returncode != 0:
        print("mlflow failed:", proc.stderr.strip().splitlines()[-3:], file=sys.stderr)
        return None
    return json.loads(out.read_text().strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mlflow = run_mlflow(work)  # first: peak memory carries across fork/exec
        keel = run_keel(work)
    doc: dict[str, object] = {"keel": keel, "mlflow": mlflow}
    if mlflow:

        def med(d: dict[str, object], key: str) -> float:
            return float(d[key]["median_ms"])  # type: ignore[index]

        doc["alias_resolution_ratio"] = round(
            med(mlflow, "get_by_alias") / med(keel, "get_by_alias"), 2
        )
        doc["model_load_ratio"] = round(
            med(mlflow, "pyfunc_load_by_alias") / med(keel, "load_by_alias"), 2
        )
        doc["set_alias_ratio"] = round(med(mlflow, "set_alias") / med(keel, "set_alias"), 2)
        doc["register_ratio"] = round(
            med(mlflow, "register_v21_50_total") / med(keel, "register"), 2
        )
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    rows = [
        ("resolve alias", "get_by_alias", "get_by_alias"),
        ("move alias", "set_alias", "set_alias"),
        ("load by alias", "load_by_alias", "pyfunc_load_by_alias"),
        ("register a version", "register", "register_v21_50_total"),
    ]
    print(
        f"{'operation':<20}{'keel median ms':>16}{'keel p99':>10}{'MLflow median ms':>18}{'MLflow p99':>12}"
    )
    for label, k, m in rows:
        kk = keel[k]  # type: ignore[index]
        mm = mlflow[m] if mlflow else {"median_ms": float("nan"), "p99_ms": float("nan")}  # type: ignore[index]
        print(
            f"{label:<20}{kk['median_ms']:>16}{kk['p99_ms']:>10}{mm['median_ms']:>18}{mm['p99_ms']:>12}"
        )  # type: ignore[index]
    for key in ("alias_resolution_ratio", "model_load_ratio", "set_alias_ratio", "register_ratio"):
        if key in doc:
            print(f"{key:<26}{doc[key]:>8}x  (MLflow time / keel time)")


if __name__ == "__main__":
    main()
