"""The Open Inference Protocol's binary tensor extension: decoding, encoding and size checks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tritonclient.http as tc
from tritonclient.http._utils import _get_inference_request  # what infer() sends

from keel.serve.app import status_of
from keel.serve.errors import RequestError
from keel.serve.oip import decode_inputs, encode_response, requested_outputs, split_body


def triton_body(*inputs: tc.InferInput) -> tuple[bytes, str]:
    """A body and header length exactly as tritonclient's infer() builds them."""
    body, json_size = _get_inference_request(inputs, "", None, 0, False, False, 0, None, None)
    return body, str(json_size)


def triton_input(name: str, arr: np.ndarray, datatype: str) -> tc.InferInput:
    t = tc.InferInput(name, list(arr.shape), datatype)
    t.set_data_from_numpy(arr)  # tritonclient's default: binary_data=True
    return t


@pytest.mark.parametrize(
    ("datatype", "arr"),
    [
        ("FP32", np.array([[1.5], [-2.25]], dtype=np.float32)),
        ("FP64", np.array([[0.1], [1e300]], dtype=np.float64)),
        ("FP16", np.array([[0.5], [2.0]], dtype=np.float16)),
        ("INT8", np.array([[-128], [127]], dtype=np.int8)),
        ("INT16", np.array([[-3], [30000]], dtype=np.int16)),
        ("INT32", np.array([[-3], [2**31 - 1]], dtype=np.int32)),
        ("INT64", np.array([[-(2**40)], [7]], dtype=np.int64)),
        ("UINT8", np.array([[0], [255]], dtype=np.uint8)),
        ("UINT16", np.array([[0], [65535]], dtype=np.uint16)),
        ("UINT32", np.array([[0], [2**32 - 1]], dtype=np.uint32)),
        ("UINT64", np.array([[0], [2**63]], dtype=np.uint64)),
        ("BOOL", np.array([[True], [False]])),
        ("BYTES", np.array([["north"], ["é-ü"]], dtype=object)),
    ],
)
def test_binary_inputs_decode_to_the_values_tritonclient_sent(
    datatype: str, arr: np.ndarray
) -> None:
    """Every datatype sent by set_data_from_numpy decodes to the same values, row-major."""
    body, length = triton_body(triton_input("x", arr, datatype))

    payload, binary = split_body(body, length)
    (tensor,) = decode_inputs(payload, binary, 10_000)

    expected = (
        [str(v) for v in arr.reshape(-1)] if datatype == "BYTES" else arr.reshape(-1).tolist()
    )
    assert tensor.shape == (2, 1)
    assert tensor.data == expected
    assert [type(v) for v in tensor.data] == [type(v) for v in expected]


def test_json_and_binary_inputs_mix_in_one_request() -> None:
    """A JSON input beside binary ones keeps the binary offsets of the inputs after it."""
    a = triton_input("a", np.array([[1.0], [2.0]]), "FP64")
    b = tc.InferInput("b", [2, 1], "BYTES")
    b.set_data_from_numpy(np.array([["x"], ["y"]], dtype=object), binary_data=False)
    c = triton_input("c", np.array([[3], [4]], dtype=np.int32), "INT32")

    payload, binary = split_body(*triton_body(a, b, c))
    tensors = decode_inputs(payload, binary, 10_000)

    assert [(t.name, t.data) for t in tensors] == [
        ("a", [1.0, 2.0]),
        ("b", ["x", "y"]),
        ("c", [3, 4]),
    ]


def _raw(inputs: list[dict[str, object]], binary: bytes, length: int | None = None) -> str:
    head = json.dumps({"inputs": inputs}).encode()
    payload, rest = split_body(head + binary, str(length if length is not None else len(head)))
    with pytest.raises(RequestError) as info:
        decode_inputs(payload, rest, 10_000)
    assert status_of(info.value) == 400
    return str(info.value)


def _fp64(name: str, shape: list[int], size: int) -> dict[str, object]:
    return {
        "name": name,
        "datatype": "FP64",
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


def test_element_count_must_match_shape_times_dtype_size() -> None:
    """8 bytes for a [2, 1] FP64 input is refused, naming the input and the bytes expected."""
    message = _raw([_fp64("amount", [2, 1], 8)], struct.pack("<d", 1.0))

    assert (
        message
        == "Input 'amount' (FP64, shape [2, 1]) needs 2 x 8 = 16 bytes; binary_data_size is 8."
    )


def test_binary_sizes_must_add_up_to_the_bytes_after_the_header() -> None:
    """Bytes left over after the declared inputs are refused: they would be silently ignored."""
    message = _raw([_fp64("amount", [1, 1], 8)], struct.pack("<dd", 1.0, 2.0))

    assert (
        message
        == "The body has 16 bytes after the JSON header; the inputs' binary_data_size add up to 8."
    )


def test_a_binary_size_past_the_end_names_the_input() -> None:
    """A binary_data_size larger than what is left is refused before anything is read."""
    message = _raw(
        [_fp64("amount", [1, 1], 8), _fp64("distance_km", [1, 1], 8)], struct.pack("<d", 1.0)
    )

    assert message.startswith("Input 'distance_km' declares binary_data_size 8, but only 0 bytes")


@pytest.mark.parametrize(
    ("binary", "shape", "fragment"),
    [
        (b"\x05\x00", [1], "fewer than 4 bytes are left for its length"),
        (struct.pack("<I", 10) + b"abc", [1], "declares 10 bytes but only 3 are left"),
        (struct.pack("<I", 1) + b"a", [2], "needs 2 elements; its binary data holds 1"),
        (struct.pack("<I", 2) + b"\xff\xfe", [1], "is not UTF-8 text"),
    ],
)
def test_malformed_bytes_elements_are_refused(
    binary: bytes, shape: list[int], fragment: str
) -> None:
    """BYTES elements: the 4-byte length prefix, its length, the count and UTF-8 are checked."""
    inputs = [
        {
            "name": "region",
            "datatype": "BYTES",
            "shape": shape,
            "parameters": {"binary_data_size": len(binary)},
        }
    ]

    message = _raw(inputs, binary)

    assert message.startswith("Input 'region' (BYTES")
    assert fragment in message


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("abc", "Inference-Header-Content-Length has the value 'abc'"),
        ("9999", "Inference-Header-Content-Length is 9999; expected between 1 and the body's"),
        ("0", "Inference-Header-Content-Length is 0"),
    ],
)
def test_header_length_is_checked_against_the_body(header: str, fragment: str) -> None:
    """The JSON header's declared length must be a number within the body."""
    with pytest.raises(RequestError, match=fragment) as info:
        split_body(b'{"inputs": []}', header)

    assert status_of(info.value) == 400


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        ({"datatype": "FP128", "shape": [1]}, "has datatype 'FP128'; expected one of BOOL"),
        ({"datatype": "FP64", "shape": [-1]}, "has shape [-1]; expected a list of sizes"),
        ({"datatype": "FP64", "shape": [1], "data": [1.0]}, "has both 'data' and"),
        ({"datatype": "BOOL", "shape": [1]}, "(BOOL) has a byte other than 0 or 1"),
    ],
)
def test_declarations_are_checked(tensor: dict[str, object], fragment: str) -> None:
    """Datatype, shape, data beside binary, and BOOL bytes are refused with the input's name."""
    size = 1 if tensor["datatype"] == "BOOL" else 8
    inputs = [{"name": "x", **tensor, "parameters": {"binary_data_size": size}}]

    message = _raw(inputs, b"\x07" * size)

    assert message.startswith("Input 'x'")
    assert fragment in message


def test_outputs_in_binary_are_what_tritonclient_reads() -> None:
    """Binary outputs carry binary_data_size and follow the JSON header, in the order listed."""
    outputs = [
        {"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 1]},
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [2, 2],
            "data": [0.9, 0.1, 0.2, 0.8],
        },
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": ["no", "yes"]},
    ]

    body, length = encode_response({"model_name": "m"}, outputs, {"predict", "label"})
    result = tc.InferResult.from_response_body(body, header_length=length)

    assert result.as_numpy("predict").tolist() == [0, 1]
    assert result.as_numpy("predict").dtype == np.int64
    assert result.as_numpy("predict_proba").tolist() == [[0.9, 0.1], [0.2, 0.8]]
    assert result.as_numpy("label").tolist() == [b"no", b"yes"]
    assert json.loads(body[:length])["outputs"][0]["parameters"] == {"binary_data_size": 16}


def test_requested_outputs_follow_per_output_then_request_parameters() -> None:
    """binary_data on an output wins over binary_data_output; unknown outputs are refused."""
    payload = {
        "parameters": {"binary_data_output": True},
        "outputs": [
            {"name": "predict_proba", "parameters": {"binary_data": False}},
            {"name": "predict"},
        ],
    }

    wanted = requested_outputs(payload, ["predict", "predict_proba"])
    everything = requested_outputs({"parameters": {"binary_data_output": True}}, ["predict"])
    with pytest.raises(RequestError, match=r"Output 'score' is not one of this model's outputs"):
        requested_outputs({"outputs": [{"name": "score"}]}, ["predict"])

    assert wanted == [("predict_proba", False), ("predict", True)]
    assert everything == [("predict", True)]
