"""Large bodies are parsed and counted in a separate process; what the server gets back is the
rows, or the refusal; a parsing process that dies is replaced."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest

from keel.serve.app import status_of
from keel.serve.bodies import INLINE_PARSE_BYTES
from keel.serve.errors import RequestError
from keel.serve.parsing import BodyParser

ROWS = [{"amount": i * 0.5, "region": "north", "note": "x" * 200} for i in range(500)]


@pytest.fixture
def parser() -> Iterator[BodyParser]:
    executor = ThreadPoolExecutor(1)
    parser = BodyParser(max_rows=1000, workers=1, executor=executor)
    yield parser
    parser.close()
    executor.shutdown()


def _run(parser: BodyParser, *calls: Any) -> list[Any]:
    """Start the parser and run the calls in order on one event loop (results or errors)."""

    async def go() -> list[Any]:
        await parser.start()
        out: list[Any] = []
        for fn, *args in calls:
            try:
                out.append(await fn(*args))
            except RequestError as exc:
                out.append(exc)
        return out

    return asyncio.run(go())


def test_a_large_body_is_parsed_in_the_child_and_rows_come_back_whole(
    parser: BodyParser,
) -> None:
    """Over INLINE_PARSE_BYTES the rows come back from the parsing process, the same rows."""
    body = orjson.dumps({"rows": ROWS, "on_error": "skip"})
    assert len(body) > INLINE_PARSE_BYTES

    (found,) = _run(parser, (parser.rows, body, "keel"))

    assert found.rows == ROWS
    assert found.on_error == "skip"


def test_too_many_rows_are_refused_by_the_child(parser: BodyParser) -> None:
    """The count is made where the body is parsed: the server never holds the rows."""
    body = orjson.dumps({"columns": {"a": list(range(20_000))}})

    (error,) = _run(parser, (parser.rows, body, "keel"))

    assert isinstance(error, RequestError)
    assert status_of(error) == 413
    assert "20,000 rows" in str(error)


def test_bad_json_and_bad_shapes_are_400_from_the_child(parser: BodyParser) -> None:
    """The same messages as a small body would get."""
    bad_json = b'{"rows": [' + b"1," * 40_000 + b"}"
    bad_shape = orjson.dumps({"instances": 3, "pad": "x" * INLINE_PARSE_BYTES})

    a, b = _run(parser, (parser.rows, bad_json, "keel"), (parser.rows, bad_shape, "mlflow"))

    assert status_of(a) == 400
    assert str(a).startswith("The body is not valid JSON")
    assert status_of(b) == 400
    assert "'instances' has the value 3" in str(b)


def test_oip_bodies_are_checked_in_the_child_then_parsed(parser: BodyParser) -> None:
    """An OIP header is checked there (ragged data refused), then parsed by the server."""
    good = {"inputs": [{"name": "a", "shape": [5000], "datatype": "FP64", "data": [1.0] * 5000}]}
    ragged = {"inputs": [{"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[1.0], 2.0]}]}
    ragged["pad"] = "x" * INLINE_PARSE_BYTES  # type: ignore[assignment]

    payload, error = _run(
        parser,
        (parser.payload, orjson.dumps(good), "oip"),
        (parser.payload, orjson.dumps(ragged), "oip"),
    )

    assert payload == good
    assert status_of(error) == 400
    assert "does not fit its shape [2, 1]" in str(error)


def test_a_dead_parsing_process_is_503_once_then_replaced(parser: BodyParser) -> None:
    """If the child dies (out of memory, killed) the request in flight gets 503 with
    Retry-After; the next one is parsed by a new child."""
    body = orjson.dumps({"rows": ROWS})

    async def kill() -> None:
        parser._all[0].process.kill()
        parser._all[0].process.wait()

    _, failed, found = _run(
        parser, (kill,), (parser.rows, body, "keel"), (parser.rows, body, "keel")
    )

    assert isinstance(failed, RequestError)
    assert status_of(failed) == 503
    assert failed.retry_after_s == 1
    assert found.rows == ROWS


def test_without_workers_large_bodies_are_parsed_in_the_executor() -> None:
    """parse_workers = 0: the same answers, from a thread of the server."""
    executor = ThreadPoolExecutor(1)
    parser = BodyParser(max_rows=100, workers=0, executor=executor)
    try:
        ok, too_many = _run(
            parser,
            (parser.rows, orjson.dumps({"rows": ROWS[:100]}), "keel"),
            (parser.rows, orjson.dumps({"rows": ROWS}), "keel"),
        )
    finally:
        executor.shutdown()

    assert ok.rows == ROWS[:100]
    assert status_of(too_many) == 413
