"""Bring your own model: register an ONNX graph trained elsewhere (PyTorch, TensorFlow, any
converter) as a model version that serving, monitoring and the loop treat like a trained one.

The graph is checked at import: `onnx.checker`, inputs that map onto the contract (by name, or
one float tensor in the contract's feature order: `keel.registry.onnx_model`), outputs that are
probabilities or one regression value, and one probe row run through onnxruntime.

With a dataset version (`data`), the graph is evaluated as a trained candidate is: holdout
metrics with intervals, segments, fairness, runtime profile, the gates of the spec, the
comparison with the current production version, and the reference profile drift is measured
against. Without one, the version is registered with `evaluated: false`: no metrics, no gates
(a spec with gates is refused), and no reference profile, so monitoring counts, logs and scores
feedback for it but reports no drift until a version with a reference replaces it.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from keel.data import Contract, DatasetStore, load_contract
from keel.registry import ModelStore, ModelVersion, OnnxModel, load_onnx
from keel.store import ConfigError, GateFailedError, ModelNotFoundError, SourceError
from keel.train.card import render_card_markdown
from keel.train.evaluation import evaluate_outputs, vs_production
from keel.train.features import default_features
from keel.train.gates import check_gates
from keel.train.prepare import Prepared, outputs, prepare
from keel.train.report import EvaluationReport, report_of
from keel.train.runtime import runtime_profile
from keel.train.spec import TrainSpec, spec_from_dict
from keel.train.trainer import code_revision

ESTIMATOR = "onnx"


def import_onnx(
    model_path: Path,
    *,
    contract_path: Path,
    name: str,
    models: ModelStore,
    datasets: DatasetStore,
    data: str | None = None,
    spec_path: Path | None = None,
    actor: str = "user",
) -> ModelVersion:
    """Register the ONNX graph at `model_path` as the next version of `name`.

    Raises:
        SourceError: a file is missing.
        UnsafeArtifactError: the file is not a self-contained ONNX graph the checker accepts.
        ConfigError: the graph's inputs or outputs do not fit the contract (the message names
            the input or column), or the spec has gates but no data to judge them on.
        GateFailedError: a gate failed on the data; nothing was registered.
    """
    try:
        raw = model_path.read_bytes()
    except FileNotFoundError as exc:
        msg = f"ONNX file {str(model_path)!r} does not exist; expected a .onnx model file."
        raise SourceError(msg) from exc
    model = load_onnx(raw)
    contract = load_contract(contract_path)
    spec = _graph_spec(model, contract, _load_spec(spec_path, name))
    features = list(spec.features or ())
    probe = _probe(model, contract, features, spec.task or "regression")
    lineage: dict[str, Any] = {
        "format": "onnx",
        "imported_from": model_path.name,
        "onnx_sha256": hashlib.sha256(raw).hexdigest(),
        "graph_inputs": [i.name for i in model.inputs],
        "graph_outputs": model.output_names,
        "code_revision": code_revision(),
    }
    base = EvaluationReport(
        task=spec.task or "regression",
        estimator=ESTIMATOR,
        target=spec.target,
        features=tuple(features),
        categorical=tuple(f for f in features if contract.column(f).type in ("category", "string")),
        extra={"format": "onnx"},
    )
    dataset: dict[str, Any] = {}
    if data is None:
        report = _unevaluated(base, spec, model, probe)
    else:
        version = datasets.get(data)
        dataset = version.to_dict()
        lineage.update(
            dataset_version=version.ref,
            source_uri=version.source_uri,
            source_sha256=version.source_sha256,
            contract_sha256=version.contract_sha256,
        )
        prep = _align_classes(prepare(datasets.load(version.ref), contract, spec), model, probe)
        report = _gated(model_path, version.ref, _evaluate(model, prep, spec, models, name, base))
    return models.register(
        name,
        model,
        contract=contract,
        spec=spec.to_dict(),
        evaluation=report.to_json(),
        dataset_version=dataset.get("ref"),
        lineage=lineage,
        card_markdown=render_card_markdown(name, None, spec.to_dict(), report, dataset),
        actor=actor,
    )


def _graph_spec(model: OnnxModel, contract: Contract, spec: TrainSpec) -> TrainSpec:
    """The spec completed from the graph: its features, task and the contract's target."""
    target = _target(contract, spec)
    features = _map_inputs(model, contract, spec, target)
    task = "classification" if hasattr(model, "predict_proba") else "regression"
    if spec.task is not None and spec.task != task:
        msg = f"The spec says task {spec.task!r} but the ONNX graph is a {task} graph (outputs {model.output_names}); fix 'task' in the spec."
        raise ConfigError(msg)
    return TrainSpec(
        **{**spec.__dict__, "features": tuple(features), "task": task, "target": target}
    )


def _unevaluated(
    base: EvaluationReport, spec: TrainSpec, model: OnnxModel, probe: int
) -> EvaluationReport:
    """The report of a graph imported without data: no metrics, no gates, no reference."""
    if spec.gates:
        msg = f"The spec has gates {list(spec.gates)} but no --data to judge them on; pass --data DATASET or drop the gates."
        raise ConfigError(msg)
    classes = [str(c) for c in getattr(model, "classes_", [])] or [str(i) for i in range(probe)]
    return replace(
        base,
        classes=tuple(classes) if base.task == "classification" else (),
        evaluated=False,
        note="not evaluated: imported without --data, so no holdout metrics, gates or reference profile (no drift monitoring).",
    )


def _gated(model_path: Path, dataset: str, report: EvaluationReport) -> EvaluationReport:
    """The report, once every gate passed; GateFailedError naming the first that did not."""
    failed = [g for g in report.gates if not g.passed]
    if failed:
        g = failed[0]
        msg = (
            f"ONNX model {model_path.name!r} failed gate '{g.name}' on dataset {dataset!r}: "
            f"got {g.value if g.value is None else round(g.value, 6)}, threshold {g.op} {g.threshold:g}. "
            "It was not registered."
        )
        raise GateFailedError(msg)
    return report


def _load_spec(path: Path | None, name: str) -> TrainSpec:
    """The gates file: a spec without an estimator (it is the graph), or nothing."""
    if path is None:
        return TrainSpec(estimator=ESTIMATOR, name=name)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        msg = f"Spec file {str(path)!r} does not exist; expected YAML with 'gates: [...]'."
        raise SourceError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"Spec file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}."
        raise ConfigError(msg) from exc
    if not isinstance(data, dict):
        msg = f"Spec file {str(path)!r} holds {data!r}; expected a mapping like 'gates: [\"holdout.roc_auc >= 0.8\"]'."
        raise ConfigError(msg)
    if data.get("estimator", ESTIMATOR) != ESTIMATOR or "params" in data:
        msg = f"Spec file {str(path)!r} names an estimator or params; an imported ONNX graph takes neither. Keep gates, split, target, task, features."
        raise ConfigError(msg)
    return spec_from_dict(
        {**data, "estimator": ESTIMATOR, "name": name}, where=f"spec {str(path)!r}"
    )


def _target(contract: Contract, spec: TrainSpec) -> str | None:
    if spec.target is not None:
        contract.column(spec.target)  # raises naming the known columns
        return spec.target
    targets = contract.with_role("target")
    return targets[0].name if targets else None


def _map_inputs(
    model: OnnxModel, contract: Contract, spec: TrainSpec, target: str | None
) -> list[str]:
    """The features the graph takes, in the contract's order, checked against its inputs."""
    names = [i.name for i in model.inputs]
    by_name = [n for n in names if n in contract.names]
    if by_name and len(by_name) == len(names):
        if target in names:
            msg = f"ONNX input {target!r} is the contract's target; a model cannot take its own label as input."
            raise ConfigError(msg)
        for i in model.inputs:
            ctype = contract.column(i.name).type
            text = ctype in ("category", "string")
            if text != (i.type_name == "string") or ctype == "datetime":
                msg = f"ONNX input {i.name!r} takes {i.type_name} but contract column {i.name!r} is {ctype}; expected a string input for a category or string column and a number input otherwise."
                raise ConfigError(msg)
        return [c for c in contract.names if c in names]
    if by_name or len(names) != 1 or model.inputs[0].rank != 2:
        missing = [n for n in names if n not in contract.names]
        msg = (
            f"ONNX inputs {missing} are not columns of contract {contract.name!r} (its columns: "
            f"{contract.names}). Name each graph input after its column, or give the graph one "
            "float tensor input [N, features] fed in the contract's feature order."
        )
        raise ConfigError(msg)
    only = model.inputs[0]
    features = (
        list(spec.features)
        if spec.features is not None
        else (default_features(contract, target) if target else _all_features(contract))
    )
    words = [f for f in features if contract.column(f).type in ("category", "string", "datetime")]
    if words or only.type_name == "string":
        msg = f"ONNX input {only.name!r} is one {only.type_name} tensor, but features {words} are not numbers; name the graph's inputs after the columns to feed categories as strings."
        raise ConfigError(msg)
    if only.width is not None and only.width != len(features):
        msg = f"ONNX input {only.name!r} takes {only.width} columns, but the contract has {len(features)} features {features}; list the graph's columns in order under 'features' in the spec."
        raise ConfigError(msg)
    return features


def _all_features(contract: Contract) -> list[str]:
    return [
        c.name
        for c in contract.columns
        if c.role in ("feature", "segment") and c.type != "datetime" and c.anonymize is None
    ]


def _probe(model: OnnxModel, contract: Contract, features: list[str], task: str) -> int:
    """Run one made-up row; the number of probability columns (0 for a regressor)."""
    row: dict[str, Any] = {}
    for f in features:
        col = contract.column(f)
        if col.type in ("category", "string"):
            row[f] = [col.categories[0] if col.categories else ""]
        else:
            low = col.min if isinstance(col.min, int | float) else 0.0
            row[f] = [float(low)]
    x = pd.DataFrame(row)
    try:
        out = outputs(model, x, task)
    except Exception as exc:  # onnxruntime's own kinds: shapes, types
        msg = f"The ONNX graph fails on one row of the contract's features {features}: {type(exc).__name__}: {str(exc)[:300]}"
        raise ConfigError(msg) from exc
    if task == "regression":
        return 0
    if out.ndim != 2 or out.shape[1] < 2:
        msg = f"The ONNX graph's probabilities have shape {out.shape} for one row; expected [1, classes] with at least two classes."
        raise ConfigError(msg)
    return int(out.shape[1])


def _align_classes(prep: Prepared, model: OnnxModel, n_classes: int) -> Prepared:
    """The data's classes matched to the graph's probability columns.

    Both are in keel's order (by text). Graph labels 0..K-1 with K data classes of other names
    are the column numbers of keel's own encoding (how `keel models export` writes them)."""
    if prep.task != "classification":
        return prep
    graph = [str(c) for c in getattr(model, "classes_", [])] or [str(i) for i in range(n_classes)]
    data = [str(c) for c in prep.classes]
    if graph == data:
        return prep
    numbered = graph == sorted((str(i) for i in range(len(graph))), key=str)
    if numbered and len(data) == len(graph) and len(graph) <= 10:
        return prep  # column i is the i-th class in keel's order, as keel encodes targets
    msg = f"The ONNX graph's classes {graph} do not match the data's classes {data} in target {prep.target!r}; export the graph with the data's labels."
    raise ConfigError(msg)


def _evaluate(
    model: OnnxModel,
    prep: Prepared,
    spec: TrainSpec,
    models: ModelStore,
    name: str,
    base: EvaluationReport,
) -> EvaluationReport:
    """The graph measured as a trained candidate is, and its gates checked."""
    xtr, xte = prep.x.iloc[prep.train_idx], prep.x.iloc[prep.test_idx]
    out_tr = outputs(model, xtr, prep.task)
    out_te = outputs(model, xte, prep.task)
    # the graph was trained elsewhere: the "training" rows are not its training rows, so no
    # overfit gap is claimed
    measured = evaluate_outputs(prep, spec, out_tr, out_te, overfit=False)
    try:
        prod_version, prod_model = models.load(f"{name}@production")
        vs = vs_production(prep, (prod_model, report_of(prod_version)), measured["metrics"])
    except ModelNotFoundError:
        vs = None
    report = replace(
        base,
        evaluated=True,
        **measured,
        fit_warnings=(),
        explanations={},  # SHAP needs the model's own structure; /explain answers 400
        note="an imported ONNX graph: no SHAP explanations, no overfit gap (trained elsewhere)",
        runtime=runtime_profile(
            model,
            xte.reset_index(drop=True),
            size_bytes=len(model.data),
            cpu_hour_usd=float(spec.cost.get("cpu_hour_usd", 0.05)),
        ),
        vs_production=vs,
    )
    return replace(report, gates=tuple(check_gates(spec.gates, report)))
