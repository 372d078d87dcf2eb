"""Redis Streams through redis-py's asyncio client: a consumer group as the source, XADD as
the sink. The JSON sits in each entry's `data` field, in and out.

A consumer first reads its own pending entries (delivered before a crash, never acknowledged:
they are redeliveries), then new ones. The lag is the group's entries not yet delivered plus
those delivered and not acknowledged (`XINFO GROUPS`: lag + pending).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from keel.stream.brokers import BrokerError, Delivery
from keel.stream.endpoints import Endpoint

__all__ = ["RedisStreams"]


class RedisStreams:
    """A Redis stream as a source (consumer group) and a sink."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._client: Any = None
        # our own pending entries come first after a (re)start, read from this id on
        self._backlog: str | None = "0"

    async def connect(self, *, reading: bool, max_inflight: int) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError, ResponseError

        e = self.endpoint
        self._client = aioredis.Redis(
            host=e.host, port=e.port, db=e.db, socket_connect_timeout=5, health_check_interval=30
        )
        try:
            await self._client.ping()
            if reading:
                try:
                    await self._client.xgroup_create(e.name, str(e.group), id="0", mkstream=True)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
        except RedisError as exc:
            await self.close()
            msg = f"Redis at {e.shown} refused the connection or the group: {exc}"
            raise BrokerError(msg) from exc

    async def read(self, max_messages: int, wait_ms: float) -> list[Delivery]:
        e = self.endpoint
        if self._backlog is not None:
            got = await self._client.xreadgroup(
                str(e.group), e.consumer, {e.name: self._backlog}, count=max_messages
            )
            entries = got[0][1] if got else []
            if entries:
                last = entries[-1][0]
                self._backlog = last.decode() if isinstance(last, bytes) else str(last)
                return [_delivery(i, f, True) for i, f in entries]
            self._backlog = None
        got = await self._client.xreadgroup(
            str(e.group),
            e.consumer,
            {e.name: ">"},
            count=max_messages,
            block=max(1, int(wait_ms)),
        )
        entries = got[0][1] if got else []
        return [_delivery(i, f, False) for i, f in entries]

    async def ack(self, deliveries: list[Delivery]) -> None:
        if deliveries:
            e = self.endpoint
            await self._client.xack(e.name, str(e.group), *(d.id for d in deliveries))

    async def lag(self) -> int | None:
        e = self.endpoint
        for group in await self._client.xinfo_groups(e.name):
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == e.group:
                lag = group.get("lag")
                return int(lag or 0) + int(group.get("pending") or 0)
        return None

    async def write(self, bodies: list[bytes], ids: list[str]) -> None:
        if not bodies:
            return
        pipe = self._client.pipeline(transaction=False)
        for body in bodies:
            pipe.xadd(self.endpoint.name, {"data": body})
        await pipe.execute()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _delivery(entry_id: bytes | str, fields: dict[Any, Any], redelivered: bool) -> Delivery:
    mid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms = mid.partition("-")[0]
    sent = dt.datetime.fromtimestamp(int(ms) / 1000, dt.UTC) if ms.isdigit() else None
    data = fields.get(b"data", fields.get("data"))
    if data is None:  # no data field: the loop sends it to the dead letters with this reason
        data = b"\x00no 'data' field in the stream entry; fields: " + b",".join(
            k if isinstance(k, bytes) else str(k).encode() for k in fields
        )
    body = data if isinstance(data, bytes) else str(data).encode()
    return Delivery(mid, body, redelivered, sent_at=sent)
