"""ONNX graphs as model versions: the "onnx" artifact format and a wrapper that answers pandas
frames like a fitted scikit-learn model, so training, monitoring and serving use it as they use
a Pipeline.

The artifact's bytes are the .onnx file itself (hash-checked on load like every artifact).

Inputs, in this order of rules:

1. **By name**: every graph input is named after a column of the frame; each gets its column,
   shaped [N, 1] (rank-2 input) or [N] (rank 1), in the input's element type (float, double,
   int64, int32, bool or string).
2. **One tensor**: the graph has a single numeric input of rank 2; it gets all the frame's
   columns in their order (the contract's feature order) as one [N, F] tensor.

Outputs: a classifier gives probabilities, either as a [N, classes] float tensor (the output
whose name contains "prob" if there are several) or as a ZipMap (sequence of maps); a graph
without one is a regressor, whose value is its first float output of shape [N] or [N, 1].
The classes are read from the graph (the ZipMap's or a classifier node's labels) when it names
them, else they are the column numbers 0..K-1. Probability columns are put in keel's class order
(labels sorted by their text), the order keel's training encodes targets in.

Graphs whose tensors live in external files are refused (loading them would read other files
from disk), as are graphs that fail `onnx.checker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from keel.store import UnsafeArtifactError

FORMAT = "onnx"
_NUMPY = {
    1: np.float32,
    11: np.float64,
    7: np.int64,
    6: np.int32,
    9: np.bool_,
    8: np.object_,
}
"""ONNX element types keel feeds, by TensorProto number: float, double, int64, int32, bool, string."""
_TYPE_NAMES = {1: "float", 11: "double", 7: "int64", 6: "int32", 9: "bool", 8: "string"}


@dataclass(frozen=True)
class GraphInput:
    """One input of the graph: its name, element type (TensorProto number) and rank."""

    name: str
    elem_type: int
    rank: int
    width: int | None  # the last dimension when fixed (rank 2), else None

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES.get(self.elem_type, f"type {self.elem_type}")


class OnnxModel:
    """An ONNX graph answering pandas frames; a regressor (`predict` only).

    Built by `load_onnx`, which returns an `OnnxClassifier` when the graph gives probabilities.
    """

    format = FORMAT

    def __init__(self, data: bytes, proto: Any) -> None:
        import onnxruntime as ort

        self.data = data
        options = ort.SessionOptions()
        # one thread per call: serving batches requests itself and runs several workers
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own kinds for unsupported graphs
            msg = f"onnxruntime cannot run this ONNX graph ({type(exc).__name__}: {str(exc)[:300]}); it was refused."
            raise UnsafeArtifactError(msg) from exc
        self.inputs = [_graph_input(i) for i in proto.graph.input if not _is_initializer(proto, i)]
        self.output_names = [o.name for o in proto.graph.output]
        self._value_output = _value_output(proto)

    def feeds(self, x: pd.DataFrame) -> dict[str, np.ndarray]:
        """The graph's inputs from a frame, by the rules of this module's docstring.

        Raises:
            KeyError: naming the graph inputs the frame has no column for.
        """
        columns = list(x.columns)
        if all(i.name in columns for i in self.inputs):
            return {i.name: _column(x[i.name], i) for i in self.inputs}
        if len(self.inputs) == 1 and self.inputs[0].rank == 2:
            only = self.inputs[0]
            dtype = _NUMPY.get(only.elem_type, np.float32)
            return {only.name: x.to_numpy(dtype=np.float64).astype(dtype)}
        missing = [i.name for i in self.inputs if i.name not in columns]
        msg = f"The ONNX graph's inputs {missing} are not columns of the frame {columns}."
        raise KeyError(msg)

    def run(self, x: pd.DataFrame) -> list[Any]:
        return list(self._session.run(None, self.feeds(x)))

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        assert self._value_output is not None  # load_onnx made a classifier otherwise
        out = self.run(x)[self.output_names.index(self._value_output)]
        return np.asarray(out, dtype=np.float64).reshape(len(x))


class OnnxClassifier(OnnxModel):
    """An ONNX graph that gives class probabilities; `classes_` in keel's order."""

    def __init__(self, data: bytes, proto: Any, proba: str, labels: list[Any] | None) -> None:
        super().__init__(data, proto)
        self._proba = proba
        self._labels = labels
        self.classes_: np.ndarray = np.asarray(
            sorted(labels, key=str) if labels is not None else [], dtype=object
        )

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        out = self.run(x)[self.output_names.index(self._proba)]
        if isinstance(out, list):  # ZipMap: one {label: probability} per row
            labels = self._labels or sorted(out[0], key=str) if out else []
            proba = np.asarray([[row[c] for c in labels] for row in out], dtype=np.float64)
        else:
            proba = np.asarray(out, dtype=np.float64).reshape(len(x), -1)
            labels = self._labels if self._labels is not None else list(range(proba.shape[1]))
        if self._labels is None:
            self.classes_ = np.asarray(sorted(labels, key=str), dtype=object)
        order = sorted(range(len(labels)), key=lambda j: str(labels[j]))
        return proba[:, order]

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        proba = self.predict_proba(x)
        return np.asarray(self.classes_[proba.argmax(axis=1)])


def load_onnx(data: bytes) -> OnnxModel:
    """An ONNX model's bytes as an `OnnxModel` (or `OnnxClassifier`), after `onnx.checker`.

    Raises:
        UnsafeArtifactError: not a readable ONNX model, tensors in external files, a graph the
            checker or onnxruntime refuses, or inputs of a type keel cannot feed.
    """
    import onnx

    try:
        proto = onnx.load_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and friends
        msg = f"The artifact is not a readable ONNX model ({type(exc).__name__}); it was refused."
        raise UnsafeArtifactError(msg) from exc
    external = [
        t.name
        for t in _tensors(proto.graph)
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data)
    ]
    if external:
        msg = f"The ONNX graph keeps tensors {external[:5]} in external files; keel stores one self-contained file. Save it with onnx.save_model(model, path, save_as_external_data=False)."
        raise UnsafeArtifactError(msg)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        msg = f"The ONNX graph fails onnx.checker: {str(exc).splitlines()[0][:300]}"
        raise UnsafeArtifactError(msg) from exc
    for i in proto.graph.input:
        if _is_initializer(proto, i):
            continue
        gi = _graph_input(i)
        if gi.elem_type not in _NUMPY:
            msg = f"ONNX input {gi.name!r} has {gi.type_name}; keel feeds {sorted(_TYPE_NAMES.values())}."
            raise UnsafeArtifactError(msg)
    proba = _proba_output(proto)
    if proba is None:
        model = OnnxModel(data, proto)
        if model._value_output is None:
            shown = [(o.name, _describe(o)) for o in proto.graph.output]
            msg = f"The ONNX graph has no output keel can read: {shown}; expected probabilities [N, classes] (or a ZipMap) for a classifier, or one float value [N] or [N, 1] for a regressor."
            raise UnsafeArtifactError(msg)
        return model
    return OnnxClassifier(data, proto, proba, _class_labels(proto))


def _tensors(graph: Any) -> list[Any]:
    out = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                out.append(attr.t)
            out.extend(attr.tensors)
            if attr.HasField("g"):
                out.extend(_tensors(attr.g))
            for g in attr.graphs:
                out.extend(_tensors(g))
    return out


def _is_initializer(proto: Any, value_info: Any) -> bool:
    return any(t.name == value_info.name for t in proto.graph.initializer)


def _graph_input(value_info: Any) -> GraphInput:
    tt = value_info.type.tensor_type
    dims = list(tt.shape.dim) if tt.HasField("shape") else []
    width = dims[-1].dim_value if len(dims) == 2 and dims[-1].HasField("dim_value") else None
    return GraphInput(value_info.name, int(tt.elem_type), len(dims), width)


def _column(s: pd.Series, gi: GraphInput) -> np.ndarray:
    dtype = _NUMPY[gi.elem_type]
    if dtype is np.object_:
        values = np.asarray(["" if v is None else str(v) for v in s.tolist()], dtype=object)
    else:
        values = s.to_numpy(dtype=np.float64).astype(dtype)
    return values.reshape(-1, 1) if gi.rank == 2 else values.reshape(-1)


def _describe(o: Any) -> str:
    t = o.type
    if t.HasField("tensor_type"):
        dims = [
            str(d.dim_value) if d.HasField("dim_value") else "N" for d in t.tensor_type.shape.dim
        ]
        return f"{_TYPE_NAMES.get(t.tensor_type.elem_type, t.tensor_type.elem_type)}[{', '.join(dims)}]"
    return "sequence" if t.HasField("sequence_type") else "other"


def _float_dims(o: Any) -> list[int | None] | None:
    t = o.type
    if not t.HasField("tensor_type") or t.tensor_type.elem_type not in (1, 11):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]


def _proba_output(proto: Any) -> str | None:
    outputs = list(proto.graph.output)
    for o in outputs:
        if o.type.HasField("sequence_type"):
            return str(o.name)  # ZipMap
    wide = [
        o
        for o in outputs
        if (dims := _float_dims(o)) is not None and len(dims) == 2 and dims[1] != 1
    ]
    named = [o for o in wide if "prob" in o.name.lower()]
    if named:
        return str(named[0].name)
    return str(wide[0].name) if len(wide) == 1 else None


def _value_output(proto: Any) -> str | None:
    for o in proto.graph.output:
        dims = _float_dims(o)
        if dims is not None and (len(dims) == 1 or (len(dims) == 2 and dims[1] == 1)):
            return str(o.name)
    return None


def _class_labels(proto: Any) -> list[Any] | None:
    """The class labels the graph names (ZipMap, or any ai.onnx.ml classifier node)."""
    for node in proto.graph.node:
        if node.op_type == "ZipMap" or (
            node.domain == "ai.onnx.ml" and node.op_type.endswith("Classifier")
        ):
            for attr in node.attribute:
                if attr.name in ("classlabels_int64s", "classlabels_ints") and attr.ints:
                    return [int(v) for v in attr.ints]
                if attr.name == "classlabels_strings" and attr.strings:
                    return [v.decode() for v in attr.strings]
    return None
