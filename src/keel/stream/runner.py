"""The stream loop, independent of the broker: read a micro-batch, score it through the
serving core, write the scores and dead letters, make the log durable, then acknowledge.

At-least-once: a message is acknowledged only after its scores are confirmed by the sink
(and its dead letter by the dead-letter destination) and its prediction records are in the
log's files (`PredictionLog.flush`, then no store error: a batch the store refused may be in
memory only, so nothing is acknowledged until a later flush succeeds). A crash at any point
redelivers the unacknowledged messages; their prediction ids are derived from the message ids,
and a redelivered message already logged is answered from the log (`keel.stream.scoring`).

Back-pressure: at most `max_inflight` messages are read and not yet acknowledged; the loop
reads no more until a flush acknowledges some. Reading, scoring and writing are sequential, so
a slow sink slows reading (the broker holds the rest). SIGTERM (`stop`) drains: the batch in
hand is finished, flushed and acknowledged, then the connections close.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keel.monitor import LabelChecker
from keel.store import ConfigError, OverloadedError
from keel.stream.brokers import Broker, Delivery
from keel.stream.gauges import StreamMetrics
from keel.stream.messages import dead_letter, label_of, prediction_id_of
from keel.stream.scoring import score_batch

if TYPE_CHECKING:
    from keel.serve import KeelServer

__all__ = ["StreamOptions", "StreamRunner", "StreamTotals"]

log = logging.getLogger("keel.stream")


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How one `keel stream` runs (see the command's help for each)."""

    name: str
    model: str
    batch_size: int = 64
    max_wait_ms: float = 20.0
    max_inflight: int = 2048
    ack_interval_ms: float = 200.0
    max_messages: int | None = None
    idle_exit_s: float | None = None
    lag_interval_s: float = 1.0

    def __post_init__(self) -> None:
        checks = [
            ("batch_size", self.batch_size, 1 <= self.batch_size <= 10_000, "1 to 10000"),
            ("max_wait_ms", self.max_wait_ms, 0 <= self.max_wait_ms <= 60_000, "0 to 60000"),
            (
                "max_inflight",
                self.max_inflight,
                self.max_inflight >= self.batch_size,
                f"at least batch_size ({self.batch_size})",
            ),
            (
                "ack_interval_ms",
                self.ack_interval_ms,
                0 <= self.ack_interval_ms <= 60_000,
                "0 to 60000",
            ),
            (
                "max_messages",
                self.max_messages,
                self.max_messages is None or self.max_messages >= 1,
                "at least 1",
            ),
            (
                "idle_exit_s",
                self.idle_exit_s,
                self.idle_exit_s is None or self.idle_exit_s > 0,
                "a positive number of seconds",
            ),
        ]
        for field_, value, ok, expected in checks:
            if not ok:
                msg = f"StreamOptions.{field_} is {value!r}; expected {expected}."
                raise ConfigError(msg)


@dataclass
class StreamTotals:
    """What a run did, by message."""

    read: int = 0
    acked: int = 0
    scores: int = 0
    dead_letters: int = 0
    from_log: int = 0
    labels: int = 0
    labels_refused: int = 0


class StreamRunner:
    """Runs one stream: a source, a sink, optional dead-letter and labels brokers, over a
    started `KeelServer` (the same serving core as `keel serve`)."""

    def __init__(
        self,
        server: KeelServer,
        options: StreamOptions,
        *,
        source: Broker,
        sink: Broker,
        dead: Broker | None = None,
        labels: Broker | None = None,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.server = server
        self.options = options
        self.source, self.sink, self.dead, self.labels = source, sink, dead, labels
        # one set per stream and registry: a second runner of the same stream passes it on
        self.metrics = metrics or StreamMetrics(server.metrics.registry, options.name)
        self.totals = StreamTotals()
        self._unacked: list[Delivery] = []
        self._stopping = asyncio.Event()
        self._last_ack = time.monotonic()
        self._last_lag = 0.0

    def stop(self) -> None:
        """Drain and stop (SIGTERM): finish the batch in hand, flush, acknowledge, close."""
        self._stopping.set()

    async def run(self) -> StreamTotals:
        """Connect, run until stopped, `max_messages` read or `idle_exit_s` idle; close."""
        o = self.options
        await self.source.connect(reading=True, max_inflight=o.max_inflight)
        await self.sink.connect(reading=False, max_inflight=o.max_inflight)
        if self.dead is not None:
            await self.dead.connect(reading=False, max_inflight=o.max_inflight)
        labels_task = None
        if self.labels is not None:
            await self.labels.connect(reading=True, max_inflight=o.max_inflight)
            labels_task = asyncio.create_task(self._follow_labels())
        try:
            await self._update_lag(force=True)
            await self._consume()
            await self._settle()
        finally:
            self._stopping.set()
            if labels_task is not None:
                await labels_task
            await self._update_lag(force=True)
            for b in (self.source, self.sink, self.dead, self.labels):
                if b is not None:
                    await b.close()
        return self.totals

    async def _consume(self) -> None:
        o = self.options
        idle_since = time.monotonic()
        while not self._stopping.is_set():
            left = None if o.max_messages is None else o.max_messages - self.totals.read
            if left is not None and left <= 0:
                return
            room = o.max_inflight - len(self._unacked)
            want = min(o.batch_size, room, left if left is not None else o.batch_size)
            if want <= 0:  # the in-flight bound: acknowledge before reading more
                await self._flush_and_ack()
                continue
            batch = await self._gather(want)
            if not batch:
                await self._maybe_ack()
                await self._update_lag()
                if o.idle_exit_s is not None and time.monotonic() - idle_since >= o.idle_exit_s:
                    return
                continue
            idle_since = time.monotonic()
            self.totals.read += len(batch)
            await self._process(batch)
            await self._maybe_ack()
            await self._update_lag()

    async def _gather(self, want: int) -> list[Delivery]:
        """Up to `want` messages, waiting at most `max_wait_ms` in all once one is there."""
        wait_ms = self.options.max_wait_ms
        first_wait = max(wait_ms, 100.0)  # an idle stream is polled at most ten times a second
        out = await self.source.read(want, first_wait)
        deadline = time.monotonic() + wait_ms / 1000
        while out and len(out) < want:
            remaining_ms = (deadline - time.monotonic()) * 1000
            if remaining_ms <= 0:
                break
            more = await self.source.read(want - len(out), remaining_ms)
            if not more:
                break
            out.extend(more)
        return out

    async def _process(self, batch: list[Delivery]) -> None:
        """Score a batch and write what it produced; the log's shedding is waited out (the
        batch is tried again: nothing of it was logged)."""
        o = self.options
        while True:
            try:
                scored = await score_batch(
                    self.server, o.model, o.name, self.source.endpoint.identity, batch
                )
                break
            except OverloadedError as exc:
                self.metrics.shed.inc()
                log.warning("stream %s: the serving core shed a batch (%s); waiting", o.name, exc)
                await asyncio.sleep(min(5.0, exc.retry_after_s or 1.0))
        t0 = time.perf_counter()
        await self.sink.write(scored.scores, scored.score_ids)
        if scored.dead:
            await (self.dead or self.sink).write(scored.dead, scored.dead_ids)
        self.metrics.sink_seconds.observe(time.perf_counter() - t0)
        self.metrics.outcome("scored").inc(len(batch) - len(scored.dead))
        self.metrics.outcome("dead_letter").inc(len(scored.dead))
        self.totals.scores += len(scored.scores)
        self.totals.dead_letters += len(scored.dead)
        self.totals.from_log += scored.from_log
        self._unacked.extend(batch)
        self.metrics.inflight.set(len(self._unacked))

    async def _maybe_ack(self) -> None:
        due = (time.monotonic() - self._last_ack) * 1000 >= self.options.ack_interval_ms
        if self._unacked and (due or len(self._unacked) * 2 >= self.options.max_inflight):
            await self._flush_and_ack()

    async def _flush_and_ack(self) -> bool:
        """Flush the log; acknowledge what was scored before, if the store took it all."""
        taken = list(self._unacked)
        await asyncio.to_thread(self.server.log.flush)
        self._last_ack = time.monotonic()
        error = self.server.log.predictions.last_store_error
        if error is not None:
            log.warning(
                "stream %s: the log's store failed (%s); not acknowledging",
                self.options.name,
                error,
            )
            await asyncio.sleep(0.5)
            return False
        await self.source.ack(taken)
        del self._unacked[: len(taken)]
        self.totals.acked += len(taken)
        self.metrics.inflight.set(len(self._unacked))
        return True

    async def _settle(self) -> None:
        """At the end (drain, max_messages, idle): acknowledge everything scored."""
        for _ in range(20):
            if not self._unacked or await self._flush_and_ack():
                return
        log.error(
            "stream %s: %d messages scored but not acknowledged (the log's store failed); "
            "the broker delivers them again",
            self.options.name,
            len(self._unacked),
        )

    async def _update_lag(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_lag < self.options.lag_interval_s:
            return
        self._last_lag = now
        try:
            lag = await self.source.lag()
        except Exception as exc:  # a metric must never stop the stream
            log.warning("stream %s: could not read the lag: %r", self.options.name, exc)
            return
        if lag is not None:
            self.metrics.lag.set(lag)

    # ---- labels ------------------------------------------------------------------------------

    async def _follow_labels(self) -> None:
        assert self.labels is not None
        while not self._stopping.is_set():
            batch = await self.labels.read(self.options.batch_size, 100.0)
            if batch:
                await self._take_labels(batch)

    async def _take_labels(self, batch: list[Delivery]) -> None:
        """Labels to feedback (checked as HTTP feedback checks them); refused ones, with their
        reasons, to the dead letters; acknowledged once the feedback log is flushed."""
        assert self.labels is not None
        o, server = self.options, self.server
        identity = self.source.endpoint.identity
        pairs: list[tuple[str, object]] = []
        dead: list[bytes] = []
        dead_ids: list[str] = []
        for d in batch:
            try:
                pid, row, label, mid = label_of(d.body)
            except ValueError as exc:
                dead.append(_label_letter(o.name, d.id, str(exc)))
                dead_ids.append(d.id)
                continue
            pairs.append((pid or prediction_id_of(identity, str(mid), row), label))
        production = server.model(o.model).production
        checker = LabelChecker(
            production.contract, production.target, production.task, production.classes
        )
        accepted, refused = checker.check(pairs)
        count, unknown = await asyncio.to_thread(
            server.log.add_feedback, o.model, accepted, dt.datetime.now(dt.UTC)
        )
        for r in refused:
            dead.append(_label_letter(o.name, r.prediction_id, r.reason))
            dead_ids.append(r.prediction_id)
        for pid in unknown:
            reason = f"prediction {pid} is not in the log of model {o.model!r}"
            dead.append(_label_letter(o.name, pid, reason))
            dead_ids.append(pid)
        if dead:
            await (self.dead or self.sink).write(dead, dead_ids)
        await asyncio.to_thread(server.log.feedback.flush)
        if server.log.feedback.last_store_error is None:
            await self.labels.ack(batch)
        self.totals.labels += count
        self.totals.labels_refused += len(refused) + len(unknown)
        self.metrics.labels("accepted").inc(count)
        self.metrics.labels("refused").inc(len(refused) + len(unknown))


def _label_letter(stream: str, ref: str, reason: str) -> bytes:
    error = {"row": None, "field": "label", "value": ref, "rule": "label", "expected": reason}
    return dead_letter(
        stream=stream, message_id=ref, reason=f"label {ref}: {reason}", errors=[error]
    )
