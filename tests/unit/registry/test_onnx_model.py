"""The "onnx" artifact format: graphs checked on load, inputs fed by name or as one tensor,
probabilities in keel's class order, and refusals that name what is wrong."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper

from keel.registry import OnnxClassifier, dump_model, load_model, load_onnx
from keel.store import UnsafeArtifactError


def _graph(
    inputs: list[tuple[str, int, list[int | None]]],
    nodes: list[onnx.NodeProto],
    outputs: list[tuple[str, int, list[int | None]]],
    initializers: list[onnx.TensorProto] | None = None,
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        initializer=initializers or [],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _weights(name: str, values: list[list[float]]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float32), name)


def test_regressor_by_name_answers_a_frame_and_round_trips_as_its_own_bytes() -> None:
    """Inputs named after columns get those columns; the artifact holds the graph's bytes."""
    data = _graph(
        [("credit-score", TensorProto.FLOAT, [None, 1]), ("num of loans", TensorProto.FLOAT, [None, 1])],
        [helper.make_node("Sub", ["credit-score", "num of loans"], ["value"])],
        [("value", TensorProto.FLOAT, [None, 1])],
    )  # fmt: skip
    frame = pd.DataFrame({"num of loans": [1.0, 2.0], "credit-score": [700.0, 650.0]})

    model = load_onnx(data)
    artifact, trusted = dump_model(model)

    assert trusted == []
    assert load_model(artifact).data == data
    assert zipfile.ZipFile(io.BytesIO(artifact)).read("model.onnx") == data
    assert model.predict(frame).tolist() == [699.0, 648.0]
    assert not hasattr(model, "predict_proba")


def test_single_tensor_classifier_gets_columns_in_order_and_numbered_classes() -> None:
    """One [N, F] input gets the frame's columns in order; a [N, 2] output is probabilities."""
    data = _graph(
        [("input", TensorProto.FLOAT, [None, 2])],
        [
            helper.make_node("MatMul", ["input", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        [("probabilities", TensorProto.FLOAT, [None, 2])],
        [_weights("w", [[1.0, 0.0], [0.0, 1.0]])],
    )
    frame = pd.DataFrame({"a": [3.0, 0.0], "b": [0.0, 3.0]})

    model = load_onnx(data)

    assert isinstance(model, OnnxClassifier)
    proba = model.predict_proba(frame)
    assert proba.argmax(axis=1).tolist() == [0, 1]
    assert np.allclose(proba.sum(axis=1), 1)
    assert model.classes_.tolist() == [0, 1]


def test_graph_with_external_tensors_is_refused() -> None:
    """A tensor kept in an external file (a read of another file on load) is refused."""
    model = onnx.load_from_string(
        _graph(
            [("x", TensorProto.FLOAT, [None, 2])],
            [helper.make_node("MatMul", ["x", "w"], ["y"])],
            [("y", TensorProto.FLOAT, [None, 1])],
            [_weights("w", [[1.0], [2.0]])],
        )
    )
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "/etc/passwd"

    with pytest.raises(UnsafeArtifactError, match=r"keeps tensors \['w'\] in external files"):
        load_onnx(model.SerializeToString())


def test_graph_without_a_readable_output_names_its_outputs() -> None:
    """A graph giving only an int64 tensor is refused, listing its outputs and what is expected."""
    data = _graph(
        [("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_node("ArgMax", ["x"], ["label"], axis=1, keepdims=0)],
        [("label", TensorProto.INT64, [None])],
    )

    with pytest.raises(UnsafeArtifactError) as exc:
        load_onnx(data)

    assert "no output keel can read: [('label', 'int64[N]')]" in str(exc.value)
    assert "expected probabilities [N, classes]" in str(exc.value)


def test_bytes_that_are_not_onnx_are_refused() -> None:
    """Garbage that starts like a protobuf is refused as an unreadable ONNX model."""
    with pytest.raises(UnsafeArtifactError, match="not a readable ONNX model"):
        load_onnx(b"\x08\xff\xff\xff")
