"""Request bodies: rows out of every format, bounded by max_rows; bad shapes are 4xx naming the
field, the value and what was expected; bodies held under a byte budget."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from keel.serve.app import status_of
from keel.serve.bodies import (
    INLINE_PARSE_BYTES,
    RESERVED,
    BodyBudget,
    check_oip_sizes,
    columns_to_rows,
    feedback_rows,
    flat_data,
    keel_rows,
    mlflow_rows,
    receive_body,
)
from keel.serve.errors import RequestError


def _error(fn: Any, *args: Any) -> RequestError:
    with pytest.raises(RequestError) as info:
        fn(*args)
    return info.value


class TestKeelRows:
    def test_rows_and_columns_give_the_same_records(self) -> None:
        """`rows` and `columns` are two spellings of the same records."""
        rows = keel_rows({"rows": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}, 10)
        columns = keel_rows({"columns": {"a": [1, 2], "b": ["x", "y"]}}, 10)

        assert rows.rows == columns.rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
        assert rows.on_error == "fail"

    def test_more_rows_than_max_rows_is_413_naming_limit_and_count(self) -> None:
        """The limit and the count are both in the message."""
        error = _error(keel_rows, {"rows": [{}] * 11}, 10)

        assert status_of(error) == 413
        assert str(error) == (
            "The request has 11 rows; this server answers at most 10 rows per request "
            "(max_rows). Send them in requests of at most 10 rows."
        )

    def test_columns_are_counted_before_records_are_built(self) -> None:
        """100,000 values per column are refused without building 100,000 dicts."""
        error = _error(columns_to_rows, {"a": [0] * 100_000}, 10_000)

        assert status_of(error) == 413
        assert "100,000 rows" in str(error)

    @pytest.mark.parametrize(
        ("payload", "fragment"),
        [
            ([1, 2], "The body is a JSON list; expected an object with 'rows' or 'columns'."),
            ({"rows": 3}, "'rows' has the value 3; expected a list of records"),
            ({"columns": [1]}, "'columns' has the value [1]; expected an object of name: [values]"),
            ({"columns": {"a": 1}}, "'columns' column 'a' has the value 1; expected a list"),
            ({"columns": {"a": [1], "b": [1, 2]}}, "have different lengths: {'a': 1, 'b': 2}"),
            ({"rows": [], "on_error": []}, "'on_error' has the value []; expected 'fail'"),
            ({"nothing": 1}, "The body has the keys ['nothing']; expected 'rows' or 'columns'."),
        ],
    )
    def test_malformed_bodies_are_400_naming_field_and_value(
        self, payload: Any, fragment: str
    ) -> None:
        """Each malformed shape names the field, the value it had and what was expected."""
        error = _error(keel_rows, payload, 10)

        assert status_of(error) == 400
        assert fragment in str(error)


class TestMlflowRows:
    @pytest.mark.parametrize(
        ("payload", "fragment"),
        [
            ({"instances": 3}, "'instances' has the value 3; expected a list of records or an object"),
            ({"inputs": 3}, "'inputs' has the value 3; expected a list of records or an object"),
            ({"instances": "abc"}, "'instances' has the value 'abc'; expected a list"),
            ({"dataframe_split": 3}, "'dataframe_split' has the value 3; expected an object with 'columns'"),
            ({"dataframe_records": 3}, "'dataframe_records' has the value 3; expected a list of records"),
            ({"dataframe_records": {"a": 1}}, "'dataframe_records' has the value {'a': 1}; expected a list"),
            ({"dataframe_split": {"columns": 3, "data": 3}}, "'dataframe_split.columns' has the value 3"),
            ({"dataframe_split": {"columns": [[1]], "data": [[1]]}}, "expected a list of column names"),
            ({"dataframe_split": {"columns": ["a"], "data": [3]}}, "'dataframe_split.data' row 0 has the value 3; expected a list of 1 values"),
            ({"dataframe_split": {"columns": ["a"], "data": 3}}, "'dataframe_split.data' has the value 3"),
            ({"inputs": {"a": 3}}, "'inputs' column 'a' has the value 3; expected a list of values"),
            (3, "The body is a JSON int; expected an object with one of dataframe_split"),
        ],
    )  # fmt: skip
    def test_scalars_and_wrong_shapes_are_400_not_500(self, payload: Any, fragment: str) -> None:
        """What used to be a TypeError (a 500) is a 400 naming the field and the value."""
        error = _error(mlflow_rows, payload, 10)

        assert status_of(error) == 400
        assert fragment in str(error)

    def test_every_format_gives_the_same_records(self) -> None:
        """dataframe_split, dataframe_records, instances and inputs (records or columns)."""
        records = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
        payloads = [
            {"dataframe_split": {"columns": ["a", "b"], "data": [[1, "x"], [2, "y"]]}},
            {"dataframe_records": records},
            {"instances": records},
            {"inputs": {"a": [1, 2], "b": ["x", "y"]}},
        ]

        assert all(mlflow_rows(p, 10).rows == records for p in payloads)

    def test_over_max_rows_is_413(self) -> None:
        """Every MLflow format counts its rows against max_rows."""
        split = {"dataframe_split": {"columns": ["a"], "data": [[1]] * 11}}

        assert status_of(_error(mlflow_rows, split, 10)) == 413
        assert status_of(_error(mlflow_rows, {"instances": [{}] * 11}, 10)) == 413


def test_feedback_labels_are_counted() -> None:
    """Feedback bodies are bounded by max_rows like predictions."""
    labels = {"labels": [{"prediction_id": "p", "label": 1}] * 3}

    assert len(feedback_rows(labels, 3).rows) == 3
    assert status_of(_error(feedback_rows, labels, 2)) == 413
    assert status_of(_error(feedback_rows, {"labels": [{"label": 1}]}, 2)) == 400


class TestOipData:
    def test_flat_and_nested_data_give_the_same_elements(self) -> None:
        """Data flat in row-major order, or nested by the shape."""
        assert flat_data("x", [1, 2, 3, 4, 5, 6], [2, 3]) == [1, 2, 3, 4, 5, 6]
        assert flat_data("x", [[1, 2, 3], [4, 5, 6]], [2, 3]) == [1, 2, 3, 4, 5, 6]

    @pytest.mark.parametrize(
        ("data", "shape", "fragment"),
        [
            ([[1.0], 2.0], [2, 1], "has nested data that does not fit its shape [2, 1]"),
            ([[1, 2, 3], [4, 5]], [2, 3], "has nested data that does not fit its shape [2, 3]"),
            ([1.0, [2.0, [3.0]]], [2], "has nested data that does not fit its shape [2]"),
            ([1], [3], "has shape [3] (3 elements) but its data holds 1"),
            ({"a": 1}, [1], "has data {'a': 1}; expected a list of 1 elements"),
        ],
    )
    def test_ragged_or_mismatched_data_is_400(
        self, data: Any, shape: list[int], fragment: str
    ) -> None:
        """Irregular nesting, or a count that is not the shape's, names the input and shape."""
        error = _error(flat_data, "amount", data, shape)

        assert status_of(error) == 400
        assert str(error).startswith("Input 'amount' ")
        assert fragment in str(error)

    def test_data_nested_a_thousand_deep_is_400_not_a_recursion_error(self) -> None:
        """Nesting is walked level by level, never recursively."""
        deep: Any = 1.0
        for _ in range(1000):
            deep = [deep]

        assert status_of(_error(flat_data, "amount", [deep], [1])) == 400

    @pytest.mark.parametrize(
        ("payload", "status", "fragment"),
        [
            ({"inputs": []}, 400, "Expected {'inputs'"),
            ({"id": 5, "inputs": [{"name": "a", "shape": [1], "data": [1]}]}, 400, "'id' has the value 5"),
            ({"inputs": [{"name": "a", "shape": [1], "data": [1]}] * 2}, 400, "Input 'a' is given twice"),
            ({"inputs": [{"name": "a", "shape": "x", "data": [1]}]}, 400, "Input 'a' has shape 'x'"),
            ({"inputs": [{"name": "a", "shape": [11], "data": [1] * 11}]}, 413, "has 11 rows"),
            ({"inputs": [3]}, 400, "An input has the value 3"),
        ],
    )  # fmt: skip
    def test_request_sizes_are_checked_before_anything_is_built(
        self, payload: Any, status: int, fragment: str
    ) -> None:
        """Names once each, shapes of sizes, at most max_rows rows, data that fits."""
        error = _error(check_oip_sizes, payload, 10)

        assert status_of(error) == status
        assert fragment in str(error)


class TestBodyBudget:
    def test_reservations_past_the_limit_are_503_with_retry_after(self) -> None:
        """A body that would take the bytes held past the limit is refused, to retry."""
        budget = BodyBudget(100)
        first: dict[str, Any] = {}
        second: dict[str, Any] = {}
        budget.reserve(first, 60)

        error = _error(budget.reserve, second, 60)

        assert status_of(error) == 503
        assert error.retry_after_s == 1
        assert "holds 60 bytes of request bodies and this one needs 60 more" in str(error)

    def test_release_gives_back_what_a_request_reserved(self) -> None:
        """A request's reservations are released together, once."""
        budget = BodyBudget(100)
        scope: dict[str, Any] = {}
        budget.reserve(scope, 30)
        budget.reserve(scope, 30)

        budget.release(scope)
        budget.release(scope)

        assert budget.used == 0
        assert RESERVED not in scope


def _receiver(chunks: list[bytes]) -> Any:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    return receive


class TestReceiveBody:
    def test_chunks_are_joined_and_reserved(self) -> None:
        """Without a Content-Length each chunk is reserved as it comes."""
        budget = BodyBudget(1000)
        scope: dict[str, Any] = {}

        body = asyncio.run(
            receive_body(_receiver([b"ab", b"cd", b"e"]), scope, None, limit=10, budget=budget)
        )

        assert body == b"abcde"
        assert scope[RESERVED] == 5

    def test_a_declared_length_over_the_limit_is_413_before_reading(self) -> None:
        """The Content-Length is checked first; nothing is read or reserved."""
        budget = BodyBudget(1000)

        with pytest.raises(RequestError) as info:
            asyncio.run(receive_body(_receiver([b"x"]), {}, "11", limit=10, budget=budget))

        assert status_of(info.value) == 413
        assert (
            str(info.value)
            == "The body is 11 bytes; this server reads at most 10 (max_body_bytes)."
        )
        assert budget.used == 0

    def test_a_body_longer_than_the_limit_is_413(self) -> None:
        """Without a Content-Length the count stops at the limit."""
        with pytest.raises(RequestError) as info:
            asyncio.run(
                receive_body(_receiver([b"x" * 6] * 2), {}, None, limit=10, budget=BodyBudget(99))
            )

        assert status_of(info.value) == 413


def test_rows_survive_the_round_trip_through_json() -> None:
    """The parsing process hands rows back as JSON chunks: values keep their types."""
    from keel.serve.parsing import prepare

    rows = [{"a": i, "b": f"s{i}", "c": i / 3, "d": None, "e": True} for i in range(600)]

    kind, on_error, chunks = prepare(orjson.dumps({"rows": rows, "on_error": "skip"}), "keel", 1000)

    assert (kind, on_error) == ("rows", "skip")
    assert [r for c in chunks for r in orjson.loads(c)] == rows


def test_large_bodies_take_turns_small_ones_do_not_wait() -> None:
    """A second large body waits until the first request is answered (its scope released);
    a small body meanwhile is read at once."""
    budget = BodyBudget(10**6)
    large = b"x" * (INLINE_PARSE_BYTES + 1)

    async def scenario() -> tuple[bool, bool, bool]:
        first: dict[str, Any] = {}
        await receive_body(_receiver([large]), first, None, limit=10**6, budget=budget)
        second_scope: dict[str, Any] = {}
        second = asyncio.ensure_future(
            receive_body(_receiver([large]), second_scope, None, limit=10**6, budget=budget)
        )
        small = await receive_body(_receiver([b"{}"]), {}, None, limit=10**6, budget=budget)
        for _ in range(10):  # let the loop run the waiting task as far as it can
            await asyncio.sleep(0)
        waited = not second.done()
        budget.release(first)
        await second
        budget.release(second_scope)
        return waited, small == b"{}", second.done()

    assert asyncio.run(scenario()) == (True, True, True)
