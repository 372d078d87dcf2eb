"""What the stream loop needs of a broker, and which adapter serves a URL.

One small module per broker (`keel.stream.redis_streams`, `keel.stream.jetstream`,
`keel.stream.amqp`) implements `Broker`; each imports its client library only when opened,
so `import keel` never loads redis, nats or aio-pika.
"""

from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from keel.store import KeelError
from keel.stream.endpoints import Endpoint

__all__ = ["Broker", "BrokerError", "Delivery", "open_broker"]

_ADAPTERS = {
    "redis": ("keel.stream.redis_streams", "RedisStreams"),
    "nats": ("keel.stream.jetstream", "JetStream"),
    "amqp": ("keel.stream.amqp", "AmqpQueue"),
}


class BrokerError(KeelError, RuntimeError):
    """A broker refused or failed a call (unreachable, a missing client library...)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message read from a source: its id (stable across redeliveries), its body,
    whether the broker delivered it before, when the broker took it (if it says), and what
    acknowledging it needs."""

    id: str
    body: bytes
    redelivered: bool = False
    handle: Any = field(default=None, compare=False, repr=False)
    sent_at: dt.datetime | None = None


class Broker(Protocol):
    """A source (read, ack, lag) and a sink (write) on one stream, subject or queue."""

    endpoint: Endpoint

    async def connect(self, *, reading: bool, max_inflight: int) -> None:
        """Connect; when reading, join the consumer group / durable / queue."""

    async def read(self, max_messages: int, wait_ms: float) -> list[Delivery]:
        """Up to `max_messages`, waiting at most `wait_ms` for the first."""

    async def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge messages whose scores are in the sink and the log."""

    async def lag(self) -> int | None:
        """Messages of the source not yet acknowledged by this consumer (None: unknown)."""

    async def write(self, bodies: list[bytes], ids: list[str]) -> None:
        """Append bodies (each with an id for brokers that carry one), confirmed by the broker
        before returning."""

    async def close(self) -> None:
        """Release the connection."""


def open_broker(endpoint: Endpoint) -> Broker:
    """The adapter for an endpoint (not connected yet).

    Raises:
        BrokerError: the broker's client library is not installed.
    """
    module_name, cls = _ADAPTERS[endpoint.kind]
    try:
        module = importlib.import_module(module_name)
        broker: Broker = getattr(module, cls)(endpoint)
    except ImportError as exc:
        msg = (
            f"Streams over {endpoint.kind}:// need the client library {exc.name!r}; install "
            "keel's 'streams' extra: pip install 'keel[streams]'."
        )
        raise BrokerError(msg) from exc
    return broker
