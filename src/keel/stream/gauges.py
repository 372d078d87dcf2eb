"""Prometheus metrics of one stream, in the serving core's registry (so `/metrics` of the
process, or `--metrics-port`, shows them beside keel's serving metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """`keel_stream_lag_messages` and friends, labelled by the stream's name."""

    def __init__(self, registry: CollectorRegistry, stream: str) -> None:
        self.lag = Gauge(
            "keel_stream_lag_messages",
            "Messages of the source not yet acknowledged by this stream (waiting + in flight).",
            ["stream"],
            registry=registry,
        ).labels(stream)
        self.inflight = Gauge(
            "keel_stream_inflight_messages",
            "Messages read and not yet acknowledged (bounded by --max-inflight).",
            ["stream"],
            registry=registry,
        ).labels(stream)
        self._stream = stream
        self._messages = Counter(
            "keel_stream_messages_total",
            "Messages handled, by outcome (scored, dead_letter).",
            ["stream", "outcome"],
            registry=registry,
        )
        self.shed = Counter(
            "keel_stream_shed_total",
            "Batches the serving core shed (the log was full); tried again.",
            ["stream"],
            registry=registry,
        ).labels(stream)
        self.sink_seconds = Histogram(
            "keel_stream_sink_seconds",
            "Time to write one batch's scores and dead letters, confirmed.",
            ["stream"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        ).labels(stream)
        self._labels = Counter(
            "keel_stream_labels_total",
            "Labels from the labels stream, by outcome (accepted, refused).",
            ["stream", "outcome"],
            registry=registry,
        )

    def outcome(self, outcome: str) -> Counter:
        """The messages counter of one outcome."""
        return self._messages.labels(self._stream, outcome)

    def labels(self, outcome: str) -> Counter:
        """The labels counter of one outcome."""
        return self._labels.labels(self._stream, outcome)
