"""A TCP proxy on loopback that can stall: what a network stall looks like to a client.

`StallingProxy(port).start()` forwards 127.0.0.1:<its port> to 127.0.0.1:<port>. `stall()`
black-holes it: connections are still accepted (the kernel acknowledges every byte, so nothing
at the TCP level tells the client), but nothing is forwarded either way; bytes read meanwhile
are held, and `resume()` forwards them and goes on, as a network does when it comes back.
It runs its own event loop in a thread, so synchronous tests drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import Future


class StallingProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0  # accepted so far
        self._loop = asyncio.new_event_loop()
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> StallingProxy:
        self._thread.start()
        self._call(self._open()).result(timeout=10)
        return self

    def stall(self) -> None:
        self._loop.call_soon_threadsafe(self._set_flowing, False)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._set_flowing, True)

    def close(self) -> None:
        self._call(self._close()).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> StallingProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ---- inside the proxy's loop -----------------------------------------------------------

    def _call(self, coro: object) -> Future[object]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]

    def _set_flowing(self, on: bool) -> None:
        assert self._flowing is not None
        if on:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _open(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._server is not None
        assert self._flowing is not None
        self._server.close()
        self._flowing.set()
        for w in list(self._writers):
            w.close()
        await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=5)
            for t in pending:
                t.cancel()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # a handler that ends by cancellation makes asyncio's stream server log an error
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(client_r, client_w)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(client_w)
        assert self._flowing is not None
        try:
            await self._flowing.wait()  # a new connection during a stall: accepted, never served
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            self._writers.discard(client_w)
            return
        self._writers.add(server_w)
        await asyncio.gather(
            self._pump(client_r, server_w), self._pump(server_r, client_w), return_exceptions=True
        )
        for w in (client_w, server_w):
            w.close()
            self._writers.discard(w)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await self._flowing.wait()  # held, not lost, while stalled
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()
