"""RabbitMQ (AMQP 0-9-1) through aio-pika: a durable queue as the source (manual acks, a
prefetch of the in-flight bound), publisher-confirmed persistent messages as the sink. The
JSON is the message body.

A message's id is its `message_id` property when the producer set one (keel's sink sets it);
without it, a redelivered message cannot be recognised and gets new prediction ids (the
docs say so). The lag is the queue's ready messages plus those delivered and not acknowledged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

from keel.stream.brokers import BrokerError, Delivery
from keel.stream.endpoints import Endpoint

__all__ = ["AmqpQueue"]


class AmqpQueue:
    """An AMQP queue as a source and a sink."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._conn: Any = None
        self._channel: Any = None
        self._queue: Any = None
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._unacked = 0

    async def connect(self, *, reading: bool, max_inflight: int) -> None:
        import aio_pika
        from aio_pika.exceptions import AMQPError

        e = self.endpoint
        try:
            self._conn = await aio_pika.connect(e.amqp_url(), timeout=10)
            self._channel = await self._conn.channel(publisher_confirms=True)
            self._queue = await self._channel.declare_queue(e.name, durable=True)
            if reading:
                await self._channel.set_qos(prefetch_count=max(max_inflight, 1))
                await self._queue.consume(self._inbox.put, no_ack=False)
        except (TimeoutError, AMQPError, OSError) as exc:
            await self.close()
            msg = f"RabbitMQ at {e.shown} refused the connection or the queue: {exc!r}"
            raise BrokerError(msg) from exc

    async def read(self, max_messages: int, wait_ms: float) -> list[Delivery]:
        out: list[Delivery] = []
        try:
            first = await asyncio.wait_for(self._inbox.get(), max(wait_ms, 1) / 1000)
        except TimeoutError:
            return out
        out.append(_delivery(first))
        while len(out) < max_messages and not self._inbox.empty():
            out.append(_delivery(self._inbox.get_nowait()))
        self._unacked += len(out)
        return out

    async def ack(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            await d.handle.ack()
        self._unacked -= len(deliveries)

    async def lag(self) -> int | None:
        declared = await self._channel.declare_queue(self.endpoint.name, passive=True)
        ready = int(declared.declaration_result.message_count or 0)
        return ready + self._inbox.qsize() + self._unacked

    async def write(self, bodies: list[bytes], ids: list[str]) -> None:
        import aio_pika

        exchange = self._channel.default_exchange
        sends = [
            exchange.publish(
                aio_pika.Message(
                    body,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    message_id=mid,
                ),
                routing_key=self.endpoint.name,
            )
            for body, mid in zip(bodies, ids, strict=True)
        ]
        for chunk in range(0, len(sends), 256):  # publisher confirms, 256 at a time
            await asyncio.gather(*sends[chunk : chunk + 256])

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()


def _delivery(message: Any) -> Delivery:
    mid = message.message_id or f"amqp-{uuid.uuid4().hex}"
    sent = message.timestamp  # set by the producer, if at all
    if sent is not None and sent.tzinfo is None:
        sent = sent.replace(tzinfo=dt.UTC)
    return Delivery(str(mid), bytes(message.body), bool(message.redelivered), message, sent)
