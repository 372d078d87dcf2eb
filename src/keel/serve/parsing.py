"""Parsing request bodies where a large one cannot stall the server.

Measured (docs/benchmarks.md, bench/isolation.py): orjson parses a 9 MB body of 75,000 rows in
~110 ms, in one C call that holds the interpreter lock whichever thread makes it; meanwhile no
probe and no one-row prediction is answered. So a body up to `INLINE_PARSE_BYTES` is parsed on
the spot (well under a millisecond), and a larger one (in its turn, `BodyBudget`) goes to a parsing process, which parses
it, checks its shape, counts its rows and refuses too many (413) before the server holds a
single parsed object, and hands accepted rows back in chunks of `CHUNK_ROWS` that the server
decodes in its bulk thread, one short C call at a time.

The process is a plain child (`python -c`, not multiprocessing: that re-imports the parent's
main script, which a script that starts a server without a `__main__` guard cannot survive),
talking over its stdin and stdout: a request is a 4-byte length, a JSON header (kind,
max_rows) and the body; an answer is an 8-byte length and a pickle of a tuple of bytes, strings
and numbers from `prepare`. It imports this module, `keel.serve.bodies`, orjson and the errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import subprocess
import sys
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import orjson

from keel.serve.bodies import EXTRACT, INLINE_PARSE_BYTES, Rows, check_oip_sizes, loads
from keel.serve.errors import REQUEST_ERRORS, RequestError, RetryLaterError

CHUNK_ROWS = 256
"""Rows per chunk handed back by the parsing process (each decodes in ~0.3 ms)."""


def prepare(body: bytes | bytearray, kind: str, max_rows: int) -> tuple[Any, ...]:
    """Parse, check, and say what the server needs.

    ("rows", on_error, [chunk bytes]) for the row formats of `EXTRACT`, ("checked",) for
    others (the server parses the body itself, its sizes now known to be within bounds), or
    ("error", kind, message) with the name of the `RequestError` type. Exceptions do not cross
    the process boundary.
    """
    try:
        payload = loads(body, kind)
        if kind == "oip":
            check_oip_sizes(payload, max_rows)
            return ("checked",)
        extract = EXTRACT.get(kind)
        if extract is None:
            return ("checked",)
        rows = extract(payload, max_rows)
        del payload
        chunks = [
            orjson.dumps(rows.rows[i : i + CHUNK_ROWS])
            for i in range(0, len(rows.rows), CHUNK_ROWS)
        ]
        return ("rows", rows.on_error, chunks)
    except RequestError as exc:
        return ("error", type(exc).__name__, str(exc))
    except TypeError as exc:  # a value orjson cannot write back (an integer over 64 bits)
        return ("error", "RequestError", f"The body holds a value keel cannot use ({exc}).")


NICENESS = 10
"""The parsing process yields the CPU to the server: on a busy machine a 10 MB body's ~110 ms of
parsing waits for one-row requests, never the other way round."""


def serve() -> None:
    """The parsing process's loop: one request in, one answer out, until stdin closes."""
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        head = _read_exactly(stdin, 4)
        if head is None:
            return
        header = orjson.loads(_read_exactly(stdin, struct.unpack("<I", head)[0]) or b"{}")
        body = _read_exactly(stdin, header["size"]) or bytearray()
        answer = pickle.dumps(prepare(body, header["kind"], header["max_rows"]))
        del body
        stdout.write(struct.pack("<Q", len(answer)) + answer)
        stdout.flush()


def _read_exactly(stream: IO[bytes], n: int) -> bytearray | None:
    """n bytes into one buffer (None at end of stream)."""
    out = bytearray(n)
    view = memoryview(out)
    got = 0
    while got < n:
        read = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not read:
            return None
        got += read
    return out


class _Worker:
    """One parsing process, used by one request at a time."""

    def __init__(self) -> None:
        import keel

        src = str(Path(keel.__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from keel.serve.parsing import serve; serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )

    def call(self, body: bytes | bytearray, kind: str, max_rows: int) -> tuple[Any, ...]:
        """Blocking: send one body, read its answer (run in a thread)."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if stdin is None or stdout is None:
            msg = "the parsing process has no pipes"
            raise BrokenPipeError(msg)
        header = orjson.dumps({"kind": kind, "max_rows": max_rows, "size": len(body)})
        stdin.write(struct.pack("<I", len(header)) + header)
        stdin.write(body)
        stdin.flush()
        size = _read_exactly(stdout, 8)
        answer = _read_exactly(stdout, struct.unpack("<Q", size)[0]) if size else None
        if answer is None:
            msg = "the parsing process exited"
            raise BrokenPipeError(msg)
        result: tuple[Any, ...] = pickle.loads(answer)  # our own child's answer
        return result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class BodyParser:
    """Parses request bodies: small ones on the spot, large ones in the parsing processes
    (`workers` of them; 0: in `executor` instead), rows decoded in chunks on `executor`."""

    def __init__(self, *, max_rows: int, workers: int, executor: Executor) -> None:
        self.max_rows = max_rows
        self.workers = workers
        self._executor = executor
        self._idle: asyncio.Queue[_Worker] | None = None
        self._all: list[_Worker] = []
        self._closed = False
        self._io = ThreadPoolExecutor(max(1, workers), thread_name_prefix="keel-parse-io")

    async def start(self) -> None:
        """Start the parsing processes now, so the first large body does not wait for them."""
        self._idle = asyncio.Queue()
        for _ in range(self.workers):
            worker = _Worker()
            self._all.append(worker)
            self._idle.put_nowait(worker)

    def close(self) -> None:
        self._closed = True
        for worker in self._all:
            worker.close()
        self._all.clear()
        self._io.shutdown(wait=False, cancel_futures=True)

    async def _prepare(self, body: bytes | bytearray, kind: str) -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        if not self.workers or self._idle is None:
            return await loop.run_in_executor(self._executor, prepare, body, kind, self.max_rows)
        worker = await self._idle.get()
        try:
            return await loop.run_in_executor(self._io, worker.call, body, kind, self.max_rows)
        except (OSError, ValueError):  # the process died (out of memory?): start another
            if worker in self._all:
                self._all.remove(worker)
                worker.close()
            if not self._closed:
                worker = _Worker()
                self._all.append(worker)
            msg = "The body parser stopped while reading this body; retry in a moment."
            raise RetryLaterError(msg, retry_after_s=1) from None
        finally:
            self._idle.put_nowait(worker)

    async def payload(self, body: bytes | bytearray, kind: str = "json") -> Any:
        """The parsed JSON of a body (sizes checked for `kind` "oip" when it is large)."""
        if len(body) <= INLINE_PARSE_BYTES:
            return loads(body, kind)
        _raise_if_error(await self._prepare(body, kind))
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, loads, body, kind)

    async def rows(self, body: bytes | bytearray, kind: str) -> Rows:
        """The rows of a body in a row format ("keel", "mlflow", "feedback")."""
        if len(body) <= INLINE_PARSE_BYTES:
            return EXTRACT[kind](loads(body, kind), self.max_rows)
        verdict = await self._prepare(body, kind)
        _raise_if_error(verdict)
        if verdict[0] != "rows":
            raise AssertionError(verdict[0])
        _, on_error, chunks = verdict
        loop = asyncio.get_running_loop()
        return Rows(await loop.run_in_executor(self._executor, _decode, chunks), on_error)


def _raise_if_error(verdict: tuple[Any, ...]) -> None:
    if verdict[0] == "error":
        _, kind, message = verdict
        raise REQUEST_ERRORS.get(kind, RequestError)(message)


def _decode(chunks: list[bytes]) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunks:  # one short C call each: the event loop gets the lock in between
        rows.extend(orjson.loads(chunk))
    return rows
