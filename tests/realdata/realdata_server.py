"""A real `keel serve NAME` on loopback for the real-data lifecycle tests."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path, name: str, env: dict[str, str]) -> Server:
    """Start `keel serve name` and wait until it is ready (at most 90 s)."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", name, "--port", str(port)],
        env={**env, "KEEL_HOME": str(home), "KEEL_FLUSH_INTERVAL_S": "0.3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            msg = f"server exited: {err}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return Server(url, home, proc)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    msg = "server did not become ready in 90 s"
    raise RuntimeError(msg)


def stop_server(server: Server) -> None:
    """Stop the server this test started, by its PID."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=5)
    if server.process.stderr is not None:
        server.process.stderr.close()
