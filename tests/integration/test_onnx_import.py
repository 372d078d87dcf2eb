"""Bring your own model: ONNX graphs made outside keel, imported with `keel models import`,
served by `keel serve` with onnxruntime's answers, promoted and rolled back; on real data
(scikit-learn's breast cancer set, whose columns have spaces in their names)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from serving_fixtures import free_port
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from keel.cli import main
from keel.data import contract_from_dict
from keel.train.features import build_pipeline
from keel.train.onnx_export import pipeline_to_onnx

pytestmark = [pytest.mark.integration, pytest.mark.slow]
FEATURES = ["mean radius", "mean texture", "mean-smoothness", "worst area", "worst concavity"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _frame() -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    x = data.data.rename(columns={"mean smoothness": "mean-smoothness"})[FEATURES]
    x = x.astype(np.float32).astype(np.float64)
    return x.assign(diagnosis=data.target.to_numpy())


def _tensor_graph(x: pd.DataFrame, y: np.ndarray) -> bytes:
    """A plain scikit-learn model as a graph with one float tensor input and a ZipMap."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x.to_numpy(), y)
    types = [("input", FloatTensorType([None, x.shape[1]]))]
    return bytes(convert_sklearn(model, initial_types=types).SerializeToString())


def _named_graph(x: pd.DataFrame, y: np.ndarray) -> bytes:
    """keel's own pipeline (HistGradientBoosting) as a graph with one input per column."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    columns: dict[str, Any] = {f: {"type": "float"} for f in FEATURES}
    contract = contract_from_dict({"name": "c", "columns": columns})
    pipe = build_pipeline(contract, FEATURES, HistGradientBoostingClassifier(max_iter=20))
    pipe.fit(x, y)
    return pipeline_to_onnx(pipe, FEATURES, set())


def _ort_proba(data: bytes, x: pd.DataFrame) -> np.ndarray:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if names == ["input"]:
        feeds = {"input": x.to_numpy(dtype=np.float32)}
    else:
        feeds = {f: x[[f]].to_numpy(dtype=np.float32) for f in names}
    out = session.run(None, feeds)[1]
    if isinstance(out, list):
        return np.asarray([[row[0], row[1]] for row in out])
    return np.asarray(out)


def _serve(home: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "KEEL_HOME": str(home), "KEEL_POLL_INTERVAL_S": "0.2"}
    env["KEEL_OPEN_PREDICT"] = "true"
    env["KEEL_TOKENS"] = '{"adm": ["admin", "predict", "feedback"]}'
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", name, "--port", str(port)],
        env=env,
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
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # readiness probe: there is no event to await from another process
    proc.kill()
    msg = "server did not become ready in 90 s"
    raise RuntimeError(msg)


def _predict_until(url: str, rows: list[dict[str, float]], version: int) -> dict[str, Any]:
    """Predict until the answer comes from `version` (the server follows alias moves)."""
    deadline = time.monotonic() + 30
    while True:
        body = httpx.post(f"{url}/v1/models/bc/predict", json={"rows": rows}, timeout=30).json()
        if body.get("version") == version or time.monotonic() > deadline:
            return dict(body)
        time.sleep(0.1)  # the alias follower polls every 0.2 s; nothing to await across processes


def test_imported_onnx_graphs_are_served_promoted_and_rolled_back(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two graphs made outside keel (one tensor input; inputs named after spaced and hyphenated
    columns) import with evaluation and gates, serve onnxruntime's exact answers, promote and
    roll back, and answer as a canary; a third without --data registers as not evaluated and
    is monitored without drift."""
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(home))
    monkeypatch.setenv("KEEL_SECRET_KEY", "k")
    frame = _frame()
    frame.to_csv(tmp_path / "bc.csv", index=False)
    x, y = frame[FEATURES], frame["diagnosis"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = [_tensor_graph(x, y), _named_graph(x, y)]
    for i, g in enumerate(graphs, 1):
        (tmp_path / f"m{i}.onnx").write_bytes(g)
    (tmp_path / "gates.yaml").write_text("gates: ['holdout.roc_auc >= 0.9']\n")
    assert run(capsys, "data", "infer", "bc.csv", "-o", "c.yaml", "--target", "diagnosis")[0] == 0
    assert run(capsys, "data", "ingest", "bc.csv", "-c", "c.yaml", "-n", "bc")[0] == 0

    imported = []
    for i in (1, 2):
        code, out, err = run(
            capsys, "models", "import", f"m{i}.onnx", "--contract", "c.yaml", "--name", "bc",
            "--data", "bc", "--spec", "gates.yaml", "--json",
        )  # fmt: skip
        assert code == 0, err
        imported.append(json.loads(out))
    code, out, err = run(
        capsys, "models", "import", "m1.onnx", "--contract", "c.yaml", "--name", "bc", "--json"
    )
    assert code == 0, err
    bare = json.loads(out)

    for v in imported:
        assert v["format"] == "onnx"
        assert v["evaluation"]["evaluated"] is True
        assert v["evaluation"]["metrics"]["roc_auc"]["value"] >= 0.9
        assert v["evaluation"]["reference"]["columns"].keys() == set(FEATURES)
        assert v["evaluation"]["gates"][0]["passed"] is True
    assert imported[0]["evaluation"]["features"] == FEATURES
    assert bare["evaluation"]["evaluated"] is False
    assert bare["evaluation"]["gates"] == []
    assert "reference" not in bare["evaluation"]
    assert bare["evaluation"]["classes"] == ["0", "1"]
    assert run(capsys, "models", "card", "bc@3", "-o", "card.html")[0] == 0
    assert "Not evaluated" in (tmp_path / "card.html").read_text()

    assert run(capsys, "models", "promote", "bc", "1", "--to", "production")[0] == 0
    proc, url = _serve(home, "bc")
    try:
        sample = x.iloc[::37]
        rows = [{k: float(v) for k, v in r.items()} for r in sample.to_dict(orient="records")]
        first = _predict_until(url, rows, 1)
        assert first["classes"] == [0, 1]  # an int target: labels keep their type
        assert (
            np.abs(np.asarray(first["probabilities"]) - _ort_proba(graphs[0], sample)).max() < 1e-6
        )

        assert run(capsys, "models", "promote", "bc", "2", "--to", "production")[0] == 0
        second = _predict_until(url, rows, 2)
        assert (
            np.abs(np.asarray(second["probabilities"]) - _ort_proba(graphs[1], sample)).max() < 1e-6
        )

        assert run(capsys, "models", "rollback", "bc")[0] == 0
        back = _predict_until(url, rows, 1)
        assert back["probabilities"] == first["probabilities"]

        explain = httpx.post(f"{url}/v1/models/bc/explain", json={"rows": rows[:1]}, timeout=30)
        assert explain.status_code == 400
        assert "not available for bc@1: it is an imported ONNX graph" in explain.json()["error"]

        # the version imported without --data: production only by force; monitored, no drift
        code, _, err = run(capsys, "models", "promote", "bc", "3", "--to", "production")
        assert code == 1
        assert "has no dataset version to re-check its gates on" in err
        promoted = run(
            capsys,
            "models",
            "promote",
            "bc",
            "3",
            "--to",
            "production",
            "--force",
            "--reason",
            "byo",
        )
        assert promoted[0] == 0
        assert _predict_until(url, rows, 3)["probabilities"] == first["probabilities"]
        headers = {"Authorization": "Bearer adm"}
        assert httpx.post(f"{url}/v1/admin/flush", headers=headers, timeout=30).status_code == 200
        code, out, err = run(capsys, "monitor", "status", "bc", "--json")
        assert code == 0, err
        status = json.loads(out)
        assert status["version"] == 3
        assert sum(w["rows"] for w in status["windows"]) == len(rows)
        assert all(w["drifted"] == [] for w in status["windows"])

        # a canary taking all traffic answers with its own graph
        canary = run(capsys, "models", "promote", "bc", "2", "--to", "canary", "--weight", "1")
        assert canary[0] == 0, canary[2]
        assert _predict_until(url, rows, 2)["probabilities"] == second["probabilities"]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()


def test_import_names_the_graph_input_that_fits_no_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A graph whose input is named after no contract column is refused, naming the input and
    the contract's columns, and nothing is registered."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    frame = _frame()
    frame.to_csv(tmp_path / "bc.csv", index=False)
    x, y = frame[FEATURES], frame["diagnosis"].to_numpy()
    model = LogisticRegression(max_iter=500).fit(x.to_numpy()[:, :2], y)
    types = [("radius", FloatTensorType([None, 1])), ("texture", FloatTensorType([None, 1]))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        two = pd.DataFrame({"radius": x.iloc[:, 0], "texture": x.iloc[:, 1]})
        pipe = Pipeline(
            [
                ("prep", ColumnTransformer([("n", "passthrough", ["radius", "texture"])])),
                ("m", model),
            ]
        ).fit(two, y)
        (tmp_path / "bad.onnx").write_bytes(
            convert_sklearn(pipe, initial_types=types).SerializeToString()
        )
    assert run(capsys, "data", "infer", "bc.csv", "-o", "c.yaml", "--target", "diagnosis")[0] == 0

    code, _, err = run(
        capsys, "models", "import", "bad.onnx", "--contract", "c.yaml", "--name", "bc"
    )

    assert code == 1
    assert "ONNX inputs ['radius', 'texture'] are not columns of contract" in err
    assert "'mean radius'" in err
    assert run(capsys, "models", "list", "--json")[1].strip() == "[]"


def test_regression_graph_imports_with_evaluation_and_refuses_gates_without_data(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A regressor exported by keel (HistGradientBoosting, double output) imports by column name
    on the diabetes data with holdout metrics and its gate; gates without --data are refused."""
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_SECRET_KEY", "k")
    data = load_diabetes(as_frame=True)
    x = data.data.astype(np.float32).astype(np.float64).rename(columns={"s1": "total-chol"})
    x.assign(progression=data.target.to_numpy()).to_csv(tmp_path / "d.csv", index=False)
    features = list(x.columns)
    columns: dict[str, Any] = {f: {"type": "float"} for f in features}
    pipe = build_pipeline(
        contract_from_dict({"name": "c", "columns": columns}),
        features,
        HistGradientBoostingRegressor(max_iter=30),
    ).fit(x, data.target.to_numpy())
    (tmp_path / "r.onnx").write_bytes(pipeline_to_onnx(pipe, features, set()))
    (tmp_path / "gates.yaml").write_text("gates: ['holdout.r2 >= 0.2']\n")
    assert run(capsys, "data", "infer", "d.csv", "-o", "c.yaml", "--target", "progression")[0] == 0
    assert run(capsys, "data", "ingest", "d.csv", "-c", "c.yaml", "-n", "d")[0] == 0

    refused = run(
        capsys, "models", "import", "r.onnx", "--contract", "c.yaml", "--name", "r",
        "--spec", "gates.yaml",
    )  # fmt: skip
    code, out, err = run(
        capsys, "models", "import", "r.onnx", "--contract", "c.yaml", "--name", "r",
        "--data", "d", "--spec", "gates.yaml", "--json",
    )  # fmt: skip

    assert refused[0] == 1
    assert "has gates ['holdout.r2 >= 0.2'] but no --data to judge them on" in refused[2]
    assert code == 0, err
    ev = json.loads(out)["evaluation"]
    assert ev["task"] == "regression"
    assert ev["features"] == features
    assert ev["metrics"]["r2"]["value"] >= 0.2
    assert ev["gates"] == [{**ev["gates"][0], "name": "holdout.r2 >= 0.2", "passed": True}]
    assert ev["reference"]["columns"]["total-chol"]["kind"] != "categorical"
