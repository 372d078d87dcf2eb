"""Prometheus metrics of one server: requests, latency, batches, refusals, the log's backlog."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from keel.monitor import PredictionLog, Profiler


class Metrics:
    """Prometheus metrics of one app (its own registry: no module-level state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "keel_requests_total",
            "Requests by model, version, endpoint and status.",
            ["model", "version", "endpoint", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "keel_request_latency_seconds",
            "Request latency.",
            ["model", "endpoint"],
            registry=r,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.batch = Histogram(
            "keel_batch_size",
            "Rows per model call.",
            ["model", "version"],
            registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.queue = Gauge(
            "keel_queue_depth", "Requests waiting for a model.", ["model", "version"], registry=r
        )
        self.errors = Counter(
            "keel_errors_total", "Errors by model and kind.", ["model", "kind"], registry=r
        )
        self.refused = Counter(
            "keel_rows_refused_total",
            "Rows refused by a model's input contract (a 422, or null with on_error=skip), by rule.",
            ["model", "rule"],
            registry=r,
        )
        self.logged = Counter(
            "keel_predictions_logged_total", "Prediction records written to the log.", registry=r
        )
        self.dropped = Counter(
            "keel_predictions_dropped_total",
            "Prediction records that could not be written.",
            registry=r,
        )
        self.swaps = Counter(
            "keel_version_swaps_total", "Alias moves followed.", ["model", "role"], registry=r
        )
        self.load_failures = Counter(
            "keel_version_load_failures_total", "Versions refused at load.", ["model"], registry=r
        )
        self.polls = Counter(
            "keel_alias_polls_total",
            "Polls of a model's aliases by the follower that completed (a stalled or failing "
            "follower stops counting).",
            ["model"],
            registry=r,
        )
        self.shed = Counter(
            "keel_requests_shed_total",
            "Requests refused with 503 and Retry-After, by model and reason: 'queue' (the "
            "model's queue was full or the request waited max_wait_ms), 'log' (the prediction "
            "log's buffer and spill were full).",
            ["model", "reason"],
            registry=r,
        )

    def watch(self, log: PredictionLog, profiler: Profiler) -> None:
        """Expose the log's backlog and the profiles' saving, read at each scrape."""
        self.registry.register(_DurabilityCollector(log, profiler))

    def text(self) -> bytes:
        """The exposition text of every metric (what `/metrics` answers)."""
        return generate_latest(self.registry)


class _DurabilityCollector(Collector):
    """The prediction log's backlog and the window profiles' saving, read when scraped."""

    def __init__(self, log: PredictionLog, profiler: Profiler) -> None:
        self.log = log
        self.profiler = profiler

    def collect(self) -> Any:
        p = self.log.predictions
        yield GaugeMetricFamily(
            "keel_log_backlog_rows",
            "Prediction records answered and not yet in the log's files (memory + spill).",
            value=p.backlog,
        )
        yield GaugeMetricFamily(
            "keel_log_buffered_rows", "Prediction records waiting in memory.", value=p.pending()
        )
        yield GaugeMetricFamily(
            "keel_log_spilled_rows",
            "Prediction records in local spill files, waiting for the artifact store.",
            value=p.spilled_rows,
        )
        yield GaugeMetricFamily(
            "keel_log_spill_files", "Local spill files of the prediction log.", value=p.spill_files
        )
        yield CounterMetricFamily(
            "keel_log_store_failures",
            "Writes of the prediction log that the artifact store refused (spilled or retried).",
            value=p.store_failures + self.log.feedback.store_failures,
        )
        yield GaugeMetricFamily(
            "keel_profile_windows_unsaved",
            "Window profiles changed in memory and not yet saved to the database.",
            value=self.profiler.unsaved_windows,
        )
        yield CounterMetricFamily(
            "keel_profile_save_failures",
            "Saves of window profiles that failed (their windows were kept and retried).",
            value=self.profiler.failures,
        )
