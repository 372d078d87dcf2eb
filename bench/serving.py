"""HTTP serving: keel against MLflow's `models serve` and BentoML with adaptive batching.

One-row JSON requests, loaded with wrk on loopback; server pinned to CPU 0, wrk to CPU 1;
concurrency 1, 16, 64; 3 s warm-up + 10 s measured per point; a HistGradientBoosting and a
100-tree RandomForest on 20 numeric features. The peers run from the harness copied from
`shared/bench/peers/serving` (their own virtual environments, made by
`bash bench/setup_peers.sh --serving`); keel serves the very same fitted models (the harness's
joblib files, registered in a fresh keel home), so every server must answer the same
probability for the same row before it is measured.

Model `keel-hgb` is the path users take: the harness's rows written to CSV, `keel data infer`
(contract inferred, target `y`), `keel data ingest`, `keel train` with a spec of the harness's
estimator (HistGradientBoostingClassifier, max_iter 100), `keel models promote`, `keel serve`.
Its answer for row 0 must equal its own pipeline's `predict_proba` on the row as the contract
types it. The peers serve the harness's `hgb` (the same estimator on the same rows), so its
ratios are taken against their `hgb` points.

`--priority N` (root only) runs the whole measurement (every server and wrk alike) in its own
scheduling group at nice N (`/proc/self/autogroup`): on a machine that others share, it keeps
their load from deciding the latency figures; say so beside any figure it gave.

usage: .venv/bin/python bench/serving.py [--json] [--tools keel,mlflow,bentoml]
       [--models hgb,rf,keel-hgb] [--priority -15]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("PEERS_DIR", HERE / ".peers-serving"))
KEEL_HOME = PEERS / "keel_home"
TRAIN_HOME = PEERS / "keel_train_home"  # the keel-train model's own home, made once
PORT = 18600
SERVED = {  # bench model -> (keel home, registered name); peers serve the harness model
    "hgb": (KEEL_HOME, "hgb"),
    "rf": (KEEL_HOME, "rf"),
    "keel-hgb": (TRAIN_HOME, "trained"),
}
PEER_MODEL = {"hgb": "hgb", "rf": "rf", "keel-hgb": "hgb"}
TRAIN_SPEC = """name: hgb
estimator: sklearn.ensemble.HistGradientBoostingClassifier
params: {max_iter: 100}
"""


def prepare() -> None:
    """Models, bodies and expected answers (the harness's steps 1-2), and keel's registry."""
    if not (PEERS / "venv-base").exists():
        (PEERS / "venv-base").symlink_to(HERE.parent / ".venv")
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
    expected["keel-hgb"] = train_in_keel(x, row)
    (PEERS / "results" / "expected.json").write_text(json.dumps(expected))


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


def train_in_keel(x: object, row: dict[str, float]) -> float:
    """The path users take, through keel's command line: infer a contract from the harness's
    rows, ingest them, train the spec, promote. Made once (TRAIN_HOME); returns the trained
    pipeline's probability of class 1 for `row`, typed as the served model types it."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import make_classification

    from keel.registry import ModelStore
    from keel.serve.runtime import ModelRuntime
    from keel.store import ArtifactStore, Database

    work = PEERS / "keel_train"
    stamp = work / "trained.json"
    if not (stamp.exists() and json.loads(stamp.read_text()).get("spec") == TRAIN_SPEC):
        shutil.rmtree(TRAIN_HOME, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        # the harness's rows and labels (scripts/train.py: the same call, X saved as X.npy)
        features, labels = make_classification(n_samples=50000, n_features=20, random_state=0)
        assert np.array_equal(features, np.asarray(x))
        frame = pd.DataFrame(features, columns=[f"f{i}" for i in range(20)]).assign(y=labels)
        frame.to_csv(work / "rows.csv", index=False, float_format="%.17g")
        (work / "hgb.yaml").write_text(TRAIN_SPEC)
        keel = [str(HERE.parent / ".venv/bin/keel")]
        steps = [
            ["data", "infer", "rows.csv", "--target", "y", "--name", "bench", "-o", "bench.yaml"],
            ["data", "ingest", "rows.csv", "--contract", "bench.yaml", "--name", "bench"],
            ["train", "--data", "bench", "--spec", "hgb.yaml", "--register", "trained"],
            ["models", "promote", "trained", "1", "--to", "production", "--reason", "bench"],
        ]
        env = {**os.environ, "KEEL_HOME": str(TRAIN_HOME)}
        for step in steps:
            done = subprocess.run(keel + step, cwd=work, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"keel {' '.join(step)} failed:\n{done.stdout}{done.stderr}")
        stamp.write_text(json.dumps({"spec": TRAIN_SPEC}))
    store = ModelStore(
        Database(f"sqlite:///{TRAIN_HOME / 'keel.db'}"),
        ArtifactStore(str(TRAIN_HOME / "artifacts")),
    )
    try:
        resolved = store.resolve("trained@production")
        runtime = ModelRuntime.load(store, resolved)
        proba = runtime.pipeline.predict_proba(runtime.frame([row]))
    finally:
        store.db.dispose()
    return float(proba[0, 1])


def bench_keel(model: str, tag: str, run_all: Any, variant: str = "keel") -> None:
    """Start `keel serve MODEL` pinned to CPU 0 and measure it with the harness's wrk driver.

    Variant `keel-nomon` runs the same server without window profiles (monitoring's cost)."""
    home, name = SERVED[model]
    env = {**os.environ, "KEEL_HOME": str(home)}
    if variant == "keel-nomon":
        env["KEEL_PROFILES"] = "false"
    log = open(PEERS / "results" / f"keel_{model}.log", "w")  # noqa: SIM115 - lives as long as the server
    cmd = [
        "taskset",
        "-c",
        "0",
        str(HERE.parent / ".venv/bin/keel"),
        "serve",
        name,
        "--port",
        str(PORT),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{PORT}/v1/models/{name}/predict"
        body = str(PEERS / "bodies" / "keel_1row.json")
        ready = run_all.wait_ready(base, body, proc)
        _, resp = run_all.post(base, body)
        got = float(resp["probabilities"][0][1])
        ok = abs(got - run_all.EXPECTED[model]) < 1e-9
        run_all.record(
            {
                "tag": tag,
                "kind": "server",
                "tool": "keel",
                "model": model,
                "ready_s": round(ready, 1),
            }
        )
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
        )
        if not ok:
            raise RuntimeError("keel answered a different probability")
        for c in run_all.CONCS:
            r = run_all.run_wrk(base, body, c)
            run_all.record(
                dict(
                    {"tag": tag, "kind": "load", "variant": variant, "model": model, "conc": c}, **r
                )
            )
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tools", default="keel,mlflow,bentoml")
    ap.add_argument("--models", default="hgb,rf,keel-hgb")
    ap.add_argument("--priority", type=int, default=0)
    args = ap.parse_args()
    if args.priority and os.environ.get("KEEL_BENCH_GROUP") is None:
        # a session of its own gets a scheduling group of its own; nice it for the whole run
        env = {**os.environ, "KEEL_BENCH_GROUP": "1"}
        sys.exit(subprocess.run(["setsid", "-w", sys.executable, *sys.argv], env=env).returncode)
    if args.priority:
        Path("/proc/self/autogroup").write_text(str(args.priority))
    if not PEERS.exists():
        shutil.copytree(HERE / "peers" / "serving", PEERS)
    prepare()
    os.environ["PEERS_DIR"] = str(PEERS)
    sys.path.insert(0, str(PEERS / "scripts"))
    import run_all  # type: ignore[import-not-found]  # the harness's driver: wrk pinned to CPU 1, flock, recording

    run_all.PORT = PORT
    if args.priority:
        same_group(run_all, args.priority)
    run_all.EXPECTED.update(json.loads((PEERS / "results" / "expected.json").read_text()))
    tag = time.strftime("keel-%Y%m%dT%H%M%S")
    models = args.models.split(",")
    for tool in args.tools.split(","):
        keel = tool in ("keel", "keel-nomon")
        # a peer serves the harness model (once for hgb and keel-hgb)
        for model in models if keel else sorted({PEER_MODEL[m] for m in models}):
            try:
                if keel:
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
    summarize(tag, models, args.json, args.priority)


def same_group(run_all: Any, priority: int) -> None:
    """Give a peer's processes the run's priority once it answers: BentoML's worker starts a
    session of its own (`setsid`), which would leave it at the machine's default."""
    wait_ready = run_all.wait_ready

    def ready_in_group(url: str, body: str, proc: Any, limit: int = 240) -> float:
        took: float = wait_ready(url, body, proc, limit)
        for pid in [proc.pid, *run_all.descendants(proc.pid)]:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/autogroup").write_text(str(priority))
        return took

    run_all.wait_ready = ready_in_group


def summarize(tag: str, models: list[str], as_json: bool, priority: int = 0) -> None:
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
    out: dict[str, object] = {"tag": tag, "priority": priority, "points": {}}
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
            m: round(points[m]["c64"]["keel"]["rps"] / points[PEER_MODEL[m]]["c64"][peer]["rps"], 2)
            for m in models
            if peer in points.get(PEER_MODEL[m], {}).get("c64", {})
            and "keel" in points.get(m, {}).get("c64", {})
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
