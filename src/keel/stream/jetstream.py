"""NATS JetStream through nats-py: a durable pull consumer as the source, a JetStream publish
(acknowledged by the server) as the sink. The JSON is the message body.

The stream is made when missing (its subjects: the URL's subject). A message's id is its
stream sequence (stable across redeliveries); the lag is the consumer's pending plus its
delivered-but-unacknowledged messages.
"""

from __future__ import annotations

import asyncio
from typing import Any

from keel.stream.brokers import BrokerError, Delivery
from keel.stream.endpoints import Endpoint

__all__ = ["JetStream"]

ACK_WAIT_S = 10.0
"""How long JetStream waits for an ack before delivering a message again: what a crashed
consumer's unacknowledged messages wait before the restarted one gets them (JetStream has no
"my own pending first" read like Redis). Acks come every `--ack-interval-ms` (200 ms), so a
live consumer never comes near it; a redelivery it does cause is idempotent."""


class JetStream:
    """A JetStream subject as a source (durable consumer) and a sink."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None

    async def connect(self, *, reading: bool, max_inflight: int) -> None:
        import nats
        from nats.errors import Error as NatsError
        from nats.js import api
        from nats.js.errors import NotFoundError

        e = self.endpoint
        try:
            self._nc = await nats.connect(
                f"nats://{e.host}:{e.port}", connect_timeout=5, max_reconnect_attempts=3
            )
            self._js = self._nc.jetstream()
            try:
                await self._js.stream_info(str(e.stream))
            except NotFoundError:
                await self._js.add_stream(name=str(e.stream), subjects=[e.name])
            if reading:
                config = api.ConsumerConfig(
                    ack_wait=ACK_WAIT_S,
                    max_ack_pending=max(max_inflight, 1),
                    filter_subject=e.name,
                )
                self._sub = await self._js.pull_subscribe(
                    e.name, durable=e.group, stream=e.stream, config=config
                )
        except (TimeoutError, NatsError, OSError) as exc:
            await self.close()
            msg = f"NATS JetStream at {e.shown} refused the connection, stream or consumer: {exc!r}"
            raise BrokerError(msg) from exc

    async def read(self, max_messages: int, wait_ms: float) -> list[Delivery]:
        from nats.errors import TimeoutError as NatsTimeout

        try:
            msgs = await self._sub.fetch(max_messages, timeout=max(wait_ms, 1) / 1000)
        except (TimeoutError, NatsTimeout):
            return []
        out = []
        for m in msgs:
            meta = m.metadata
            sent = meta.timestamp if getattr(meta.timestamp, "tzinfo", None) else None
            out.append(
                Delivery(str(meta.sequence.stream), m.data, meta.num_delivered > 1, m, sent_at=sent)
            )
        return out

    async def ack(self, deliveries: list[Delivery]) -> None:
        if not deliveries:
            return
        for d in deliveries[:-1]:
            await d.handle.ack()
        # the last one waits for the server's confirmation: acks of one consumer are taken in
        # order, so the batch is acknowledged when this returns (and the lag is current)
        await deliveries[-1].handle.ack_sync(timeout=10)

    async def lag(self) -> int | None:
        info = await self._sub.consumer_info()
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def write(self, bodies: list[bytes], ids: list[str]) -> None:
        e = self.endpoint
        acks = [self._js.publish(e.name, body, stream=e.stream) for body in bodies]
        for chunk in range(0, len(acks), 256):  # confirmed together, at most 256 at a time
            await asyncio.gather(*acks[chunk : chunk + 256])

    async def close(self) -> None:
        if self._nc is not None:
            nc, self._nc = self._nc, None
            # acks and publishes were flushed already; a drain would wait out the pull
            # subscription's pending fetch (up to its 30 s drain timeout)
            await nc.close()
