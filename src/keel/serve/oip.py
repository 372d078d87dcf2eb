"""The Open Inference Protocol's wire format: JSON tensors and the binary tensor extension.

Pure functions from request bytes to named columns and from answers to response bytes; the
route in `routes.py` stays a thin adapter. The binary extension is what `tritonclient` sends by
default (`InferInput.set_data_from_numpy(arr)`): the body is a JSON header of
`Inference-Header-Content-Length` bytes, then each input that has
`parameters.binary_data_size` in order, as raw little-endian values (BYTES elements as a 4-byte
little-endian length and the bytes). Outputs come back the same way when asked for, per output
(`parameters.binary_data`) or for the whole request (`parameters.binary_data_output`).

Every size is checked before anything is read: the header length against the body, each
input's `binary_data_size` against what is left and against its shape times its datatype's
size, and the sizes together against the bytes after the header. A malformed body is a 400
naming the input and what was expected.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from keel.serve.bodies import check_oip_sizes, flat_data
from keel.serve.errors import RequestError

HEADER = "inference-header-content-length"
BINARY_HINT = "Binary tensors need the Inference-Header-Content-Length header."

# little-endian NumPy dtypes of the fixed-size datatypes (the extension's byte order)
_DTYPES: dict[str, str] = {
    "BOOL": "|b1",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
DATATYPES = (*_DTYPES, "BYTES")


@dataclass(frozen=True)
class Tensor:
    """One input, flattened row-major, with its declared shape."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


def split_body(body: bytes | bytearray, header_length: str | None) -> tuple[Any, bytes | bytearray]:
    """The JSON header (parsed) and the binary part after it."""
    head, binary = split_raw(body, header_length)
    return _json(head), binary


def split_raw(
    body: bytes | bytearray, header_length: str | None
) -> tuple[bytes | bytearray, bytes | bytearray]:
    """The JSON header's bytes and the binary part after it."""
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit():
        msg = f"Inference-Header-Content-Length has the value {header_length!r}; expected the length in bytes of the JSON header."
        raise RequestError(msg)
    n = int(text)
    if n == 0 or n > len(body):
        msg = f"Inference-Header-Content-Length is {n}; expected between 1 and the body's {len(body)} bytes."
        raise RequestError(msg)
    return body[:n], body[n:]


def _json(body: bytes | bytearray) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON: {exc}. {BINARY_HINT}"
        raise RequestError(msg) from exc


def decode_inputs(payload: Any, binary: bytes | bytearray, max_rows: int) -> list[Tensor]:
    """The request's inputs, JSON `data` or binary, checked against their shapes (at most
    `max_rows` rows)."""
    check_oip_sizes(payload, max_rows)
    out: list[Tensor] = []
    offset = 0
    for t in payload["inputs"]:
        name = t["name"]
        params = t.get("parameters") or {}
        if not isinstance(params, dict):
            msg = f"Input {name!r} has parameters {type(params).__name__}; expected an object."
            raise RequestError(msg)
        size = params.get("binary_data_size")
        if size is None:
            if "data" not in t:
                msg = f"Input {name!r} has neither 'data' nor parameters.binary_data_size; expected one of them."
                raise RequestError(msg)
            shape = tuple(t["shape"])
            data = flat_data(name, t["data"], t["shape"])
            out.append(Tensor(name, str(t.get("datatype", "")), shape, data))
            continue
        if "data" in t:
            msg = f"Input {name!r} has both 'data' and parameters.binary_data_size; expected one of them."
            raise RequestError(msg)
        datatype, shape = _declared(t)
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            msg = f"Input {name!r} has binary_data_size {size!r}; expected a number of bytes (an integer >= 0)."
            raise RequestError(msg)
        if offset + size > len(binary):
            msg = f"Input {name!r} declares binary_data_size {size}, but only {len(binary) - offset} bytes of binary data are left after the inputs before it."
            raise RequestError(msg)
        chunk = binary[offset : offset + size]
        offset += size
        out.append(Tensor(name, datatype, shape, _decode(name, datatype, shape, chunk)))
    if offset != len(binary):
        msg = f"The body has {len(binary)} bytes after the JSON header; the inputs' binary_data_size add up to {offset}."
        raise RequestError(msg)
    return out


def _declared(t: dict[str, Any]) -> tuple[str, tuple[int, ...]]:
    name, datatype, shape = t["name"], t.get("datatype"), t.get("shape")
    if datatype not in DATATYPES:
        msg = f"Input {name!r} has datatype {datatype!r}; expected one of {', '.join(DATATYPES)}."
        raise RequestError(msg)
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        msg = f"Input {name!r} has shape {shape!r}; expected a list of sizes (integers >= 0)."
        raise RequestError(msg)
    return str(datatype), tuple(shape)


def _decode(
    name: str, datatype: str, shape: tuple[int, ...], chunk: bytes | bytearray
) -> list[Any]:
    n = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes(name, n, shape, chunk)
    dtype = np.dtype(_DTYPES[datatype])
    if len(chunk) != n * dtype.itemsize:
        msg = f"Input {name!r} ({datatype}, shape {list(shape)}) needs {n} x {dtype.itemsize} = {n * dtype.itemsize} bytes; binary_data_size is {len(chunk)}."
        raise RequestError(msg)
    if datatype == "BOOL" and any(b > 1 for b in chunk):
        msg = f"Input {name!r} (BOOL) has a byte other than 0 or 1; expected one byte per element, 0 or 1."
        raise RequestError(msg)
    values: list[Any] = np.frombuffer(chunk, dtype=dtype).tolist()
    return values


def _decode_bytes(name: str, n: int, shape: tuple[int, ...], chunk: bytes | bytearray) -> list[Any]:
    values: list[Any] = []
    pos = 0
    while pos < len(chunk):
        if pos + 4 > len(chunk):
            msg = f"Input {name!r} (BYTES): element {len(values)} starts at byte {pos} but fewer than 4 bytes are left for its length; expected a 4-byte little-endian length before each element."
            raise RequestError(msg)
        (length,) = struct.unpack_from("<I", chunk, pos)
        pos += 4
        if pos + length > len(chunk):
            msg = f"Input {name!r} (BYTES): element {len(values)} declares {length} bytes but only {len(chunk) - pos} are left in its binary_data_size."
            raise RequestError(msg)
        raw = chunk[pos : pos + length]
        pos += length
        try:
            values.append(raw.decode())
        except UnicodeDecodeError as exc:
            msg = f"Input {name!r} (BYTES): element {len(values)} is not UTF-8 text ({exc.reason}); expected text for a keel model's string and category fields."
            raise RequestError(msg) from exc
        if len(values) > n:
            break
    if len(values) != n:
        msg = f"Input {name!r} (BYTES, shape {list(shape)}) needs {n} elements; its binary data holds {len(values)}{' or more' if len(values) > n else ''}."
        raise RequestError(msg)
    return values


def requested_outputs(payload: dict[str, Any], available: list[str]) -> list[tuple[str, bool]]:
    """(name, binary) per output to answer: those asked for, else all, in order."""
    params = payload.get("parameters") or {}
    default = params.get("binary_data_output", False) if isinstance(params, dict) else False
    if not isinstance(default, bool):
        msg = f"parameters.binary_data_output has the value {default!r}; expected true or false."
        raise RequestError(msg)
    asked = payload.get("outputs")
    if asked is None:
        return [(name, default) for name in available]
    if not isinstance(asked, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in asked
    ):
        msg = "'outputs' must be a list of {'name': ..., 'parameters': {...}}."
        raise RequestError(msg)
    out = []
    for o in asked:
        if o["name"] not in available:
            msg = f"Output {o['name']!r} is not one of this model's outputs {available}."
            raise RequestError(msg)
        p = o.get("parameters") or {}
        binary = p.get("binary_data", default) if isinstance(p, dict) else default
        if not isinstance(binary, bool):
            msg = f"Output {o['name']!r} has parameters.binary_data {binary!r}; expected true or false."
            raise RequestError(msg)
        out.append((o["name"], binary))
    return out


def encode_response(
    head: dict[str, Any], outputs: list[dict[str, Any]], binary: set[str]
) -> tuple[bytes, int | None]:
    """The response body and, when some outputs are binary, the length of its JSON header."""
    parts: list[bytes] = []
    shown = []
    for o in outputs:
        if o["name"] not in binary:
            shown.append(o)
            continue
        raw = _encode(o["datatype"], o["data"])
        parts.append(raw)
        shown.append(
            {k: v for k, v in o.items() if k != "data"}
            | {"parameters": {"binary_data_size": len(raw)}}
        )
    header = orjson.dumps({**head, "outputs": shown}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not parts:
        return header, None
    return header + b"".join(parts), len(header)


def _encode(datatype: str, data: list[Any]) -> bytes:
    if datatype == "BYTES":
        out = bytearray()
        for x in data:
            raw = x if isinstance(x, bytes) else str(x).encode()
            out += struct.pack("<I", len(raw)) + raw
        return bytes(out)
    return np.asarray(data, dtype=_DTYPES[datatype]).tobytes()
