"""The loop's watch after a production move away from an ONNX graph imported without data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from keel.data import DatasetStore, contract_from_dict
from keel.loop import Loop, LoopPolicy
from keel.registry import ModelStore, load_onnx
from keel.store import ArtifactStore, Database, Settings

pytestmark = pytest.mark.integration  # on-disk SQLite and artifacts


def _graph() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["a"], ["probabilities"], axis=1)],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_watch_without_a_holdout_figure_of_the_previous_version_keeps_watching(
    tmp_path: Path,
) -> None:
    """When the previous production version has no holdout metric (imported without --data)
    and never had judged live windows, the watch still works: the previous version is scored
    on the rows the new one answers, and with no rows yet the loop keeps watching instead of
    failing on the missing figure."""
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    models, datasets = ModelStore(db, art), DatasetStore(db, art, b"k")
    contract = contract_from_dict(
        {"name": "c", "columns": {"a": {"type": "float"}, "y": {"type": "int", "role": "target"}}}
    )
    base = {"task": "classification", "features": ["a"], "classes": ["0", "1"], "gates": []}
    model = load_onnx(_graph())
    for evaluation in (
        {**base, "evaluated": False, "metrics": {}},
        {**base, "evaluated": True, "metrics": {"roc_auc": {"value": 0.9}}},
    ):
        models.register("m", model, contract=contract, spec={}, evaluation=evaluation)
    models.set_alias("m", "production", 1)
    models.set_alias("m", "production", 2)
    now = db.clock.now()
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'k.db'}")
    loop = Loop(settings, models, datasets, policy=LoopPolicy(min_watch_rows=1))

    decision = loop.step("m", now=now + dt.timedelta(minutes=1), dry_run=True)[-1]

    assert decision.action == "wait"
    assert decision.reason.startswith("watching m@2 (production since ")
    assert decision.numbers["previous"] == 1
