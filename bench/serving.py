"""HTTP serving: keel against MLflow's `models serve` and BentoML with adaptive batching.

One-row JSON requests, loaded with wrk on loopback; server pinned to CPU 0, wrk to CPU 1;
concurrency 1, 16, 64; 3 s warm-up + 10 s measured per point; a HistGradientBoosting and a
100-tree RandomForest on 20 numeric features. The peers run from the harness copied from
`shared/bench/peers/serving` (their own virtual environments, made by
`bash bench/setup_peers.sh --serving`); keel serves the very same fitted models (the harness's
joblib files, registered in a fresh keel home), so every server must answer the same
probability for the same row before it is measured.

usage: .venv/bin/python bench/serving.py [--json] [--tools keel,mlflow,bentoml] [--models hgb,rf]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("PEERS_DIR", HERE / ".peers-serving"))
KEEL_HOME = PEERS / "keel_home"
PORT = 18600


def prepare() -> None:
    """Models, bodies and expected answers (the harness's steps 1-2), and keel's registry."""
    (PEERS / "venv-base").exists() or (PEERS / "venv-base").symlink_to(HERE.parent / ".venv")
    py = sys.executable
    if not (PEERS / "models" / "rf.joblib").exists():
        subprocess.run([py, "scripts/train.py", "models"], cwd=PEERS, check=True)
    subprocess.run(
        [py, "scripts/make_bodies.py", "models", "bodies"],
        cwd=PEERS,
        check=True,
        capture_output=True,
    )
    import joblib
    import numpy as np

    x = np.load(PEERS / "models" / "X.npy")
    expected = {
        m: float(joblib.load(PEERS / "models" / f"{m}.joblib").predict_proba(x[:1])[0, 1])
        for m in ("hgb", "rf")
    }
    (PEERS / "results").mkdir(exist_ok=True)
    (PEERS / "results" / "expected.json").write_text(json.dumps(expected))
    if not (PEERS / "mlflow" / "model_uris.json").exists() and (PEERS / "venv-mlflow").exists():
        (PEERS / "mlflow").mkdir(exist_ok=True)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{PEERS}/mlflow/mlflow.db"}
        subprocess.run(
            [
                str(PEERS / "venv-mlflow/bin/python"),
                "../scripts/mlflow_log.py",
                "../models",
                "model_uris.json",
            ],
            cwd=PEERS / "mlflow",
            env=env,
            check=True,
            capture_output=True,
        )
    register_in_keel(x)
    row = {f"f{i}": float(v) for i, v in enumerate(x[0])}
    (PEERS / "bodies" / "keel_1row.json").write_text(json.dumps({"rows": [row]}))


def register_in_keel(x: object) -> None:
    """The harness's fitted models behind keel's preprocessing (a median imputer that the
    data never trigger), registered as `hgb` and `rf` with production aliases."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from keel.data import contract_from_dict
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database

    shutil.rmtree(KEEL_HOME, ignore_errors=True)
    features = [f"f{i}" for i in range(20)]
    frame = pd.DataFrame(np.asarray(x)[:2000], columns=features)
    contract = contract_from_dict(
        {
            "name": "bench",
            "columns": {
                **{f: {"type": "float"} for f in features},
                "y": {"type": "int", "role": "target"},
            },
        }
    )
    store = ModelStore(
        Database(f"sqlite:///{KEEL_HOME / 'keel.db'}"), ArtifactStore(str(KEEL_HOME / "artifacts"))
    )
    for name in ("hgb", "rf"):
        model = joblib.load(PEERS / "models" / f"{name}.joblib")
        prep = ColumnTransformer(
            [("num", Pipeline([("fill", SimpleImputer(strategy="median"))]), features)]
        )
        prep.fit(frame)
        pipeline = Pipeline([("prep", prep), ("model", model)])
        background = frame.head(50).astype(np.float32).astype(np.float64)
        evaluation = {
            "task": "classification",
            "features": features,
            "categorical": [],
            "classes": ["0", "1"],
            "explanations": {"background": background.to_dict(orient="list")},
        }
        store.register(
            name,
            pipeline,
            contract=contract,
            spec={"estimator": type(model).__name__},
            evaluation=evaluation,
        )
        store.set_alias(name, "production", 1)
    store.db.dispose()


def bench_keel(model: str, tag: str, run_all: object, variant: str = "keel") -> None:
    """Start `keel serve MODEL` pinned to CPU 0 and measure it with the harness's wrk driver.

    Variant `keel-nomon` runs the same server without window profiles (monitoring's cost)."""
    env = {**os.environ, "KEEL_HOME": str(KEEL_HOME)}
    if variant == "keel-nomon":
        env["KEEL_PROFILES"] = "false"
    log = open(PEERS / "results" / f"keel_{model}.log", "w")  # noqa: SIM115 - lives as long as the server
    cmd = [
        "taskset",
        "-c",
        "0",
        str(HERE.parent / ".venv/bin/keel"),
        "serve",
        model,
        "--port",
        str(PORT),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{PORT}/v1/models/{model}/predict"
        body = str(PEERS / "bodies" / "keel_1row.json")
        ready = run_all.wait_ready(base, body, proc)  # type: ignore[attr-defined]
        _, resp = run_all.post(base, body)  # type: ignore[attr-defined]
        got = float(resp["probabilities"][0][1])
        ok = abs(got - run_all.EXPECTED[model]) < 1e-9  # type: ignore[attr-defined]
        run_all.record(
            {
                "tag": tag,
                "kind": "server",
                "tool": "keel",
                "model": model,
                "ready_s": round(ready, 1),
            }
        )  # type: ignore[attr-defined]
        run_all.record(
            {
                "tag": tag,
                "kind": "sanity",
                "variant": "keel",
                "model": model,
                "p1": got,
                "expected": run_all.EXPECTED[model],
                "ok": ok,
            }
        )  # type: ignore[attr-defined]
        if not ok:
            raise RuntimeError("keel answered a different probability")
        for c in run_all.CONCS:  # type: ignore[attr-defined]
            r = run_all.run_wrk(base, body, c)  # type: ignore[attr-defined]
            run_all.record(
                dict(
                    {"tag": tag, "kind": "load", "variant": variant, "model": model, "conc": c}, **r
                )
            )  # type: ignore[attr-defined]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tools", default="keel,mlflow,bentoml")
    ap.add_argument("--models", default="hgb,rf")
    args = ap.parse_args()
    if not PEERS.exists():
        shutil.copytree(HERE / "peers" / "serving", PEERS)
    prepare()
    os.environ["PEERS_DIR"] = str(PEERS)
    sys.path.insert(0, str(PEERS / "scripts"))
    import run_all  # the harness's driver: wrk pinned to CPU 1, flock, recording

    run_all.PORT = PORT
    run_all.EXPECTED.update(json.loads((PEERS / "results" / "expected.json").read_text()))
    tag = time.strftime("keel-%Y%m%dT%H%M%S")
    models = args.models.split(",")
    for tool in args.tools.split(","):
        for model in models:
            try:
                if tool in ("keel", "keel-nomon"):
                    bench_keel(model, tag, run_all, tool)
                else:
                    run_all.bench(tool, model, tag)
            except Exception as exc:  # a peer that fails is recorded, the run goes on
                run_all.record(
                    {
                        "tag": tag,
                        "kind": "failure",
                        "tool": tool,
                        "model": model,
                        "error": repr(exc),
                    }
                )
    summarize(tag, models, args.json)


def summarize(tag: str, models: list[str], as_json: bool) -> None:
    lines = [
        json.loads(line) for line in (PEERS / "results" / "results.jsonl").read_text().splitlines()
    ]
    loads = [r for r in lines if r.get("tag") == tag and r.get("kind") == "load"]
    names = {
        "keel": "keel",
        "keel-nomon": "keel-nomon",
        "mlflow": "mlflow",
        "bentoml-batch": "bentoml",
    }
    out: dict[str, object] = {"tag": tag, "points": {}}
    points: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for r in loads:
        server = names.get(r["variant"])
        if server is None:
            continue
        points.setdefault(r["model"], {}).setdefault(f"c{r['conc']}", {})[server] = {
            "rps": round(r["rps"], 1),
            "p50_ms": round(r["p50_ms"], 3),
            "p99_ms": round(r["p99_ms"], 3),
            "errors": r["err_connect"]
            + r["err_read"]
            + r["err_write"]
            + r["err_status"]
            + r["err_timeout"],
        }
    out["points"] = points
    for peer in ("mlflow", "bentoml"):
        ratios = {
            m: round(points[m]["c64"]["keel"]["rps"] / points[m]["c64"][peer]["rps"], 2)
            for m in models
            if peer in points.get(m, {}).get("c64", {}) and "keel" in points[m]["c64"]
        }
        out[f"ratio_vs_{peer}_c64"] = ratios
    out["monitoring_cost_c64"] = {
        m: round(1 - points[m]["c64"]["keel"]["rps"] / points[m]["c64"]["keel-nomon"]["rps"], 3)
        for m in models
        if {"keel", "keel-nomon"} <= set(points.get(m, {}).get("c64", {}))
    }
    if as_json:
        print(json.dumps(out, indent=2))
        return
    for model, by_c in points.items():
        print(f"\n{model}: requests/s (p50 / p99 ms, errors)")
        for c, servers in sorted(by_c.items(), key=lambda kv: int(kv[0][1:])):
            cells = "   ".join(
                f"{s} {v['rps']:.0f} ({v['p50_ms']:.1f} / {v['p99_ms']:.1f}, {v['errors']})"
                for s, v in servers.items()
            )
            print(f"  {c:<4} {cells}")
    for key in ("ratio_vs_mlflow_c64", "ratio_vs_bentoml_c64"):
        print(f"{key}: {out[key]}")


if __name__ == "__main__":
    main()
