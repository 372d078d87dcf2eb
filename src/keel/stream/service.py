"""`keel stream` in one call: the serving core over the registry, the brokers the URLs name,
the runner, SIGTERM/SIGINT to drain, and optionally the metrics on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import signal

from keel.registry import ModelStore
from keel.serve import KeelServer
from keel.store import ModelNotFoundError, Settings
from keel.stream.brokers import open_broker
from keel.stream.endpoints import parse_endpoint
from keel.stream.runner import StreamOptions, StreamRunner, StreamTotals

__all__ = ["run_stream"]

log = logging.getLogger("keel.stream")


async def run_stream(
    settings: Settings,
    options: StreamOptions,
    *,
    source: str,
    sink: str,
    dead_letter: str | None = None,
    labels: str | None = None,
    metrics_port: int | None = None,
) -> StreamTotals:
    """Serve `options.model` from `source` to `sink` until stopped (see `StreamRunner`).

    Raises:
        StreamUrlError: a URL keel cannot use (checked before anything connects).
        ModelNotFoundError: the model has no production version.
        BrokerError: a broker refused the connection.
    """
    endpoints = {
        "source": parse_endpoint(source, source=True),
        "sink": parse_endpoint(sink, source=False),
        "dead": parse_endpoint(dead_letter, source=False) if dead_letter else None,
        "labels": parse_endpoint(labels, source=True) if labels else None,
    }
    server = KeelServer(settings, ModelStore.open(settings), [options.model])
    await server.start()
    try:
        if "production" not in server.served[options.model].runtimes:
            msg = f"Model {options.model!r} has no production version to serve; set one with keel models promote."
            raise ModelNotFoundError(msg)
        brokers = {k: open_broker(e) if e else None for k, e in endpoints.items()}
        source_b, sink_b = brokers["source"], brokers["sink"]
        assert source_b is not None
        assert sink_b is not None
        runner = StreamRunner(
            server,
            options,
            source=source_b,
            sink=sink_b,
            dead=brokers["dead"],
            labels=brokers["labels"],
        )
        if metrics_port is not None:
            from prometheus_client import start_http_server

            start_http_server(metrics_port, addr="127.0.0.1", registry=server.metrics.registry)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        try:
            return await runner.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    finally:
        await server.stop()
