"""MicroBatcher: what a caller can count on (batching, errors, closing, the queue's bounds).

A gated model (it waits in its worker thread until the test opens the gate) makes "while the
model is busy" an event the test controls; no test sleeps.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from keel.serve.app import error_response
from keel.serve.batching import BatcherClosedError, MicroBatcher
from keel.store import OverloadedError


class GatedModel:
    """Doubles its inputs; each call waits for the gate while `gated`; records batches."""

    def __init__(self, *, gated: bool = True, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.fail_on = fail_on

    def __call__(self, rows: list[int]) -> list[int]:
        self.batches.append(list(rows))
        self.entered.set()
        self.gate.wait(timeout=30)
        if self.fail_on is not None and self.fail_on in rows:
            msg = f"cannot score {self.fail_on}"
            raise ValueError(msg)
        return [2 * r for r in rows]


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(test())  # type: ignore[arg-type]


async def until(event: threading.Event) -> None:
    """Wait for a thread's event without blocking the loop."""
    await asyncio.to_thread(event.wait, 30)


def test_a_lone_request_goes_at_once() -> None:
    """With nothing else waiting, a request is a batch of its own, without a timer."""
    model = GatedModel(gated=False)

    async def go() -> list[int]:
        batcher = MicroBatcher(model, max_wait_ms=60_000)
        try:
            return await batcher.submit([1, 2])
        finally:
            await batcher.close()

    assert run(go) == [2, 4]
    assert model.batches == [[1, 2]]


def test_requests_arriving_during_a_call_form_the_next_batch() -> None:
    """Requests queued while the model works go together, each caller gets its own slice."""
    model = GatedModel()

    async def go() -> list[list[int]]:
        batcher = MicroBatcher(model, max_batch_size=100)
        first = asyncio.ensure_future(batcher.submit([1]))
        await until(model.entered)
        rest = [asyncio.ensure_future(batcher.submit(rows)) for rows in ([2], [3, 4], [5])]
        await asyncio.sleep(0)  # let them queue
        assert batcher.queue_depth == 3
        assert batcher.queued_rows == 4
        model.gate.set()
        out = [await first, *[await r for r in rest]]
        await batcher.close()
        return out

    assert run(go) == [[2], [4], [6, 8], [10]]
    assert model.batches == [[1], [2, 3, 4, 5]]


def test_a_batch_holds_at_most_max_batch_size_rows() -> None:
    """Waiting requests are split into batches of at most max_batch_size rows."""
    model = GatedModel()

    async def go() -> None:
        batcher = MicroBatcher(model, max_batch_size=2)
        first = asyncio.ensure_future(batcher.submit([0]))
        await until(model.entered)
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        model.gate.set()
        await asyncio.gather(first, *rest)
        await batcher.close()

    run(go)
    assert model.batches == [[0], [1, 2], [3]]


def test_a_failed_batch_fails_only_its_own_callers() -> None:
    """The model's error reaches the callers of the batch it failed on; the others get answers."""
    model = GatedModel(fail_on=3)

    async def go() -> list[Any]:
        batcher = MicroBatcher(model, max_batch_size=2)
        first = asyncio.ensure_future(batcher.submit([1]))
        await until(model.entered)
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3, 4, 5)]
        await asyncio.sleep(0)
        model.gate.set()
        out = await asyncio.gather(first, *rest, return_exceptions=True)
        await batcher.close()
        return out

    one, two, three, four, five = run(go)
    assert (one, four, five) == ([2], [8], [10])
    assert model.batches == [[1], [2, 3], [4, 5]]
    assert isinstance(two, ValueError)
    assert isinstance(three, ValueError)
    assert str(three) == "cannot score 3"


def test_close_answers_every_caller_in_flight_and_waiting() -> None:
    """close() leaves no caller hanging: the batch in flight and the queue get an error."""
    model = GatedModel()

    async def go() -> list[Any]:
        batcher = MicroBatcher(model)
        futures = [asyncio.ensure_future(batcher.submit([1]))]
        await until(model.entered)
        futures += [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3)]
        await asyncio.sleep(0)
        await batcher.close()
        results = await asyncio.gather(*futures, return_exceptions=True)
        with pytest.raises(BatcherClosedError):
            await batcher.submit([4])
        model.gate.set()
        return results

    results = run(go)
    assert len(results) == 3
    assert all(isinstance(r, BatcherClosedError) for r in results)
    assert "retry" in str(results[0])


def test_a_request_beyond_the_queue_bound_is_refused_with_retry_after() -> None:
    """max_queue_rows bounds the rows waiting; the refused caller gets 503 + Retry-After."""
    model = GatedModel()

    async def go() -> tuple[Any, ...]:
        batcher = MicroBatcher(model, max_queue_rows=3, max_wait_ms=2_000)
        first = asyncio.ensure_future(batcher.submit([1]))  # in flight: not in the queue
        await until(model.entered)
        second = asyncio.ensure_future(batcher.submit([2, 3]))
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError) as refused:
            await batcher.submit([4, 5])  # 2 waiting + 2 > 3
        third = asyncio.ensure_future(batcher.submit([6]))  # 2 + 1 = 3: fits
        await asyncio.sleep(0)
        model.gate.set()
        out = (await first, await second, await third, refused.value)
        await batcher.close()
        return out

    first, second, third, error = run(go)
    assert (first, second, third) == ([2], [4, 6], [12])
    assert model.batches == [[1], [2, 3, 6]]  # the refused rows never reach the model
    assert str(error) == (
        "The model is busy: 2 rows are waiting and this request adds 2; at most "
        "max_queue_rows = 3 may wait. Retry later."
    )
    response = error_response(error)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"


def test_a_request_alone_in_the_queue_goes_whatever_its_size() -> None:
    """The bound never starves a big request: with nothing waiting, it is taken."""
    model = GatedModel(gated=False)

    async def go() -> list[int]:
        batcher = MicroBatcher(model, max_queue_rows=2, max_batch_size=2)
        out = await batcher.submit([1, 2, 3, 4, 5])
        await batcher.close()
        return out

    assert run(go) == [2, 4, 6, 8, 10]
    assert model.batches == [[1, 2, 3, 4, 5]]


def test_a_request_that_waits_too_long_for_a_busy_model_is_refused() -> None:
    """After max_wait_ms in the queue the caller gets 503; the busy batch still answers, and
    the refused rows never reach the model."""
    model = GatedModel()

    async def go() -> tuple[Any, Any]:
        batcher = MicroBatcher(model, max_wait_ms=20)
        first = asyncio.ensure_future(batcher.submit([1]))
        await until(model.entered)
        with pytest.raises(OverloadedError) as waited:
            await batcher.submit([2])
        assert batcher.queue_depth == 0
        assert batcher.queued_rows == 0
        model.gate.set()
        answer = await first
        await batcher.close()
        return answer, waited.value

    answer, error = run(go)
    assert answer == [2]
    assert model.batches == [[1]]
    assert "waited max_wait_ms = 20 ms" in str(error)
    assert error_response(error).headers["retry-after"] == "1"


def test_a_caller_that_goes_away_leaves_the_queue() -> None:
    """A cancelled caller's rows are not sent to the model."""
    model = GatedModel()

    async def go() -> list[int]:
        batcher = MicroBatcher(model)
        first = asyncio.ensure_future(batcher.submit([1]))
        await until(model.entered)
        gone = asyncio.ensure_future(batcher.submit([2]))
        kept = asyncio.ensure_future(batcher.submit([3]))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
        model.gate.set()
        await first
        out = await kept
        await batcher.close()
        return out

    assert run(go) == [6]
    assert model.batches == [[1], [3]]


def test_inline_models_run_on_the_loop_and_batch_what_arrived() -> None:
    """A fast (inline) model answers each caller too."""
    calls: list[list[int]] = []

    def fast(rows: list[int]) -> list[int]:
        calls.append(list(rows))
        return [r + 1 for r in rows]

    async def go() -> list[list[int]]:
        batcher = MicroBatcher(fast, inline=True)
        out = await asyncio.gather(*(batcher.submit([i]) for i in range(5)))
        await batcher.close()
        return list(out)

    assert run(go) == [[1], [2], [3], [4], [5]]
    assert sum(len(c) for c in calls) == 5
