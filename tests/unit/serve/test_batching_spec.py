"""MicroBatcher's specification, for both ways a model runs (on the event loop, `inline`, and
in the worker thread):

- a lone request goes to the model at once: no window, no timer;
- requests that arrive while the model works on a batch form the next batch, in arrival
  order, and each caller gets exactly its own slice;
- a model error reaches the callers of the batch it failed on, and only them; the batcher
  goes on serving;
- `close()` resolves every caller: the batch in flight, the queue, and any later request.

Every step waits on events (the model entered, a gate opened) or on a bounded number of turns
of the event loop, whose clock is frozen: a timer never fires, so a batcher that waited for a
window, or a deadline, would fail these tests instead of passing them slowly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from keel.serve.batching import BatcherClosedError, MicroBatcher

TURNS = 20
"""Loop turns a step may take (each `asyncio.sleep(0)`, no wall time)."""
WAIT_S = 30
"""Safety net for a thread's event that never comes (a hung test fails, it does not block)."""

MODES = [pytest.param(True, id="inline"), pytest.param(False, id="thread")]


class FrozenLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock never moves: `call_later`/`call_at` never come due."""

    def time(self) -> float:
        return 0.0


def run(test: Callable[[], Awaitable[Any]]) -> Any:
    """Run `test` on a frozen loop; a caller left hanging fails it after WAIT_S seconds."""

    async def guarded() -> Any:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        assert task is not None
        watchdog = threading.Timer(WAIT_S, loop.call_soon_threadsafe, (task.cancel,))
        watchdog.start()
        try:
            return await test()
        except asyncio.CancelledError:
            pytest.fail(f"a caller was still waiting after {WAIT_S} s")
        finally:
            watchdog.cancel()

    with asyncio.Runner(loop_factory=FrozenLoop) as runner:
        return runner.run(guarded())


async def turns(done: Callable[[], bool]) -> None:
    """Turn the loop until `done()`, at most TURNS times."""
    for _ in range(TURNS):
        if done():
            return
        await asyncio.sleep(0)
    assert done(), f"not done after {TURNS} turns of the event loop"


async def until(event: threading.Event) -> None:
    """Wait for the model's thread to set `event` without blocking the loop."""
    assert await asyncio.to_thread(event.wait, WAIT_S), "the model thread never got there"


class Model:
    """Triples its rows and records each batch. Optionally fails on a poison row, holds each
    call until `gate` opens (thread mode), or runs `during` inside its first call."""

    def __init__(self, *, gated: bool = False, poison: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.poison = poison
        self.during: Callable[[], None] | None = None

    def __call__(self, rows: list[int]) -> list[int]:
        self.batches.append(list(rows))
        self.entered.set()
        if self.during is not None:
            during, self.during = self.during, None
            during()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        if self.poison is not None and self.poison in rows:
            msg = f"cannot score {self.poison}"
            raise ValueError(msg)
        return [3 * r for r in rows]


def batcher_for(model: Model, inline: bool, **kwargs: Any) -> MicroBatcher[int, int]:
    return MicroBatcher(model, inline=inline, max_wait_ms=60_000, **kwargs)


async def started(model: Model, inline: bool, first: asyncio.Future[Any]) -> None:
    """Until the model works on `first`'s batch."""
    if inline:
        await turns(model.entered.is_set)
    else:
        await until(model.entered)
    assert not first.done()


@pytest.mark.parametrize("inline", MODES)
def test_a_lone_request_goes_to_the_model_at_once(inline: bool) -> None:
    model = Model()

    async def go() -> list[int]:
        batcher = batcher_for(model, inline)
        request = asyncio.ensure_future(batcher.submit([1, 2]))
        if inline:
            await turns(request.done)
        else:
            await until(model.entered)
        answer = await request
        await batcher.close()
        return answer

    assert run(go) == [3, 6]
    assert model.batches == [[1, 2]]


@pytest.mark.parametrize("inline", MODES)
def test_each_lone_request_in_turn_is_its_own_batch(inline: bool) -> None:
    model = Model()

    async def go() -> list[list[int]]:
        batcher = batcher_for(model, inline)
        answers = [await batcher.submit([i]) for i in (1, 2, 3)]
        await batcher.close()
        return answers

    assert run(go) == [[3], [6], [9]]
    assert model.batches == [[1], [2], [3]]


@pytest.mark.parametrize("inline", MODES)
def test_arrivals_during_a_call_form_the_next_batch(inline: bool) -> None:
    model = Model(gated=not inline)

    async def go() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        batcher = batcher_for(model, inline, max_batch_size=100)
        later: list[asyncio.Future[list[int]]] = []

        def arrive() -> None:  # callers that come while the model works on the first batch
            for rows in ([2], [3, 4], [5]):
                later.append(asyncio.ensure_future(batcher.submit(rows), loop=loop))

        if inline:  # the model runs on the loop: the arrivals come from inside its call
            model.during = arrive
        first = asyncio.ensure_future(batcher.submit([1]))
        await started(model, inline, first)
        if not inline:
            arrive()
            await turns(lambda: batcher.queue_depth == 3)
            assert batcher.queued_rows == 4
            model.gate.set()
        answers = [await first, *[await f for f in later]]
        await batcher.close()
        return answers

    assert run(go) == [[3], [6], [9, 12], [15]]
    assert model.batches == [[1], [2, 3, 4, 5]]


@pytest.mark.parametrize("inline", MODES)
def test_an_error_reaches_only_the_callers_of_its_batch(inline: bool) -> None:
    model = Model(gated=not inline, poison=3)

    async def go() -> tuple[list[Any], list[int]]:
        loop = asyncio.get_running_loop()
        batcher = batcher_for(model, inline, max_batch_size=2)
        later: list[asyncio.Future[list[int]]] = []

        def arrive() -> None:
            for i in (2, 3, 4, 5):
                later.append(asyncio.ensure_future(batcher.submit([i]), loop=loop))

        if inline:
            model.during = arrive
        first = asyncio.ensure_future(batcher.submit([1]))
        await started(model, inline, first)
        if not inline:
            arrive()
            await turns(lambda: batcher.queue_depth == 4)
            model.gate.set()
        answers = await asyncio.gather(first, *later, return_exceptions=True)
        after = await batcher.submit([6])  # the batcher goes on serving
        await batcher.close()
        return answers, after

    answers, after = run(go)
    assert model.batches == [[1], [2, 3], [4, 5], [6]]
    one, two, three, four, five = answers
    assert (one, four, five) == ([3], [12], [15])
    assert isinstance(two, ValueError)
    assert two is three  # the batch's one error, to each of its callers
    assert str(two) == "cannot score 3"
    assert after == [18]


@pytest.mark.parametrize("inline", MODES)
def test_close_resolves_the_batch_in_flight_the_queue_and_later_callers(inline: bool) -> None:
    model = Model(gated=not inline)

    async def go() -> list[Any]:
        loop = asyncio.get_running_loop()
        batcher = batcher_for(model, inline)
        callers: list[asyncio.Future[list[int]]] = []
        closing: list[asyncio.Task[None]] = []

        def arrive_and_close() -> None:  # callers queue, then the version is unloaded
            callers.extend(asyncio.ensure_future(batcher.submit([i]), loop=loop) for i in (2, 3))
            closing.append(loop.create_task(batcher.close()))

        if inline:
            model.during = arrive_and_close
        first = asyncio.ensure_future(batcher.submit([1]))
        await started(model, inline, first)
        if not inline:  # the model is still busy (the gate is shut) when close comes
            arrive_and_close()
        await turns(lambda: bool(closing) and closing[0].done())
        everyone = [first, *callers]
        await turns(lambda: all(f.done() for f in everyone))
        with pytest.raises(BatcherClosedError):
            await batcher.submit([4])
        model.gate.set()  # let the worker thread end
        return [f.exception() for f in everyone]

    errors = run(go)
    assert len(errors) == 3
    assert all(isinstance(e, BatcherClosedError) for e in errors)
    assert model.batches == [[1]]  # the queued callers never reached the model
