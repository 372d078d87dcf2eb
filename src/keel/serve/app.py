"""The HTTP server: keel's JSON API, the Open Inference Protocol v2, MLflow's scoring format,
feedback, admin, explanations, metrics and probes, over one set of loaded models.

Every model named is served by alias: `production` answers, `canary` takes its weight of
traffic (sticky by `X-Request-Key`), `shadow` versions get a copy of each request after the
answer has gone. A follower polls the registry; when an alias moves, the new version is loaded
and warmed up off the event loop, then swapped in; a version that fails to load is refused and
the current one keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import datetime as dt
import gc
import hashlib
import io
import logging
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson
import polars as pl
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from keel.data import RecordError
from keel.monitor import PredictionLog, Profiler, prediction_ids
from keel.monitor.alerts import Alert, AlertStore
from keel.registry import ModelStore, ResolvedVersion
from keel.serve.batching import MicroBatcher
from keel.serve.bodies import BodyBudget, Rows, receive_body, too_many_rows
from keel.serve.errors import (
    AuthError,
    LoadTimeoutError,
    RequestError,
    database_unavailable,
    error_response,
)
from keel.serve.openapi import openapi_document
from keel.serve.parsing import BodyParser
from keel.serve.runtime import ModelRuntime, Prediction
from keel.store import KeelError, ModelNotFoundError, OverloadedError, Settings

log = logging.getLogger("keel.serve")
ROLES = ("production", "canary", "shadow")
T = TypeVar("T")

INLINE_ROWS = 64
"""Requests of more rows are checked, predicted and logged in the bulk thread, never on the
event loop: measured, a 10,000-row request's checks, model call and log records held the loop
for ~200 ms. One bulk thread serves the whole process, so big requests queue behind each
other instead of multiplying memory and lock contention."""
SWITCH_INTERVAL_S = 0.001
"""How long a thread holds the GIL before another that waits for it gets it (default 5 ms)."""
CHUNK_ROWS = 1024
"""Rows per model call in the bulk thread (bounds the arrays one call allocates)."""


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


@dataclass
class Served:
    """What answers for one model name: a runtime and a batcher per role."""

    name: str
    runtimes: dict[str, ModelRuntime] = field(default_factory=dict)
    batchers: dict[str, MicroBatcher[dict[str, Any], Prediction]] = field(default_factory=dict)
    canary_weight: float = 0.0


class KeelServer:
    """The models, the log, the metrics and the routes; `create_app` wires it into Starlette."""

    def __init__(
        self, settings: Settings, models: ModelStore, names: list[str] | None = None
    ) -> None:
        self.settings = settings
        self.models = models
        self.names = names or models.names()
        self.metrics = Metrics()
        self.profiler = Profiler(models.db, window_s=settings.window_s)
        # the log writes Parquet only; the profiler saves to the database in its own thread
        self.log = PredictionLog(
            settings.resolved_artifacts,
            flush_interval_s=settings.flush_interval_s,
            on_written=self.metrics.logged.inc,
            on_dropped=self.metrics.dropped.inc,
            sink=self.profiler.observe if settings.profiles else None,
            spill_dir=settings.home / "spill",
            max_buffered_rows=settings.log_buffer_rows,
            max_spilled_rows=settings.log_spill_rows,
        )
        self.metrics.watch(self.log, self.profiler)
        self.served: dict[str, Served] = {}
        self.alerts = AlertStore(
            models.db, jsonl=settings.alert_file, webhook=settings.alert_webhook
        )
        # refused versions by (name, version) -> the artifact sha256 that was refused: tried
        # again only if the version's artifact changes, never at every poll
        self._refused: dict[tuple[str, int], str] = {}
        self._sync_locks: dict[str, asyncio.Lock] = {}
        self.budget = BodyBudget(settings.max_inflight_bytes)
        self.bulk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-bulk")
        self.parser = BodyParser(
            max_rows=settings.max_rows, workers=settings.parse_workers, executor=self.bulk
        )
        self.ready = False
        self._background: set[asyncio.Task[Any]] = set()
        self._follower: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start()
        self.explaining = asyncio.Semaphore(1)  # see routes.explain

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for name in self.names:
            self.served[name] = Served(name)
            await self._sync(name)
        await self.parser.start()
        self.log.start()
        self.profiler.start(
            self.settings.flush_interval_s, retry_max_s=self.settings.profile_retry_max_s
        )
        # Measured: with scikit-learn, SciPy and pandas loaded the heap holds millions of
        # objects, and each full garbage collection under load stalled requests for ~150 ms
        # (p99 of 180 ms at 64 connections). Freezing what start-up made keeps those objects out
        # of every later collection.
        gc.collect()
        gc.freeze()
        # young collections run every 700 allocations by default; a request allocates hundreds
        gc.set_threshold(50_000, 50, 100)
        # Measured (bench/isolation.py): while the bulk or log thread runs Python code, the
        # event loop waits up to the switch interval for the GIL at each wake-up; 5 ms (the
        # default) gave one-row p99s of 75-79 ms beside 10,000-row requests, 1 ms 45-52 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        _return_large_buffers_to_the_os()
        self.ready = True
        self.loop = asyncio.get_running_loop()
        self._follower = self.loop.create_task(self._follow())

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
        for served in self.served.values():
            for b in served.batchers.values():
                await b.close()
        self.parser.close()
        self.bulk.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.log.stop)
        await asyncio.to_thread(self.profiler.stop, self.settings.db_statement_timeout_s + 2)

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """`/readyz`: 503 while models are missing or the server sheds predictions (take this
        replica out of rotation); 200 "degraded" with its reasons while it answers and logs
        every prediction but the database does not take window profiles or the log waits in
        spill files (every replica shares the database: 503 there would stop all serving
        for a monitoring outage); 200 "ready" otherwise. Reads only memory."""
        missing = [n for n, s in self.served.items() if "production" not in s.runtimes]
        if not self.ready or missing:
            return 503, {"status": "not ready", "models_without_production": missing}
        reasons: list[str] = []
        log_ = self.log.predictions
        if self.log.shedding:
            reasons.append(
                f"shedding: the prediction log's buffer is full ({log_.pending()} records, "
                f"log_buffer_rows = {log_.max_buffered_rows}) and its spill has "
                f"{log_.spilled_rows} of log_spill_rows = {log_.max_spilled_rows}; predict "
                "answers 503"
            )
        if self.log.backlogged:
            why = f" (the artifact store: {log_.last_store_error})" if log_.last_store_error else ""
            reasons.append(
                f"prediction log backlogged: {log_.spilled_rows} records in "
                f"{log_.spill_files} local spill files{why}"
            )
        p = self.profiler
        stalled = max(1.0, 2 * self.settings.flush_interval_s)
        if p.last_error is not None:
            since = p.failing_since.isoformat(timespec="seconds") if p.failing_since else "?"
            reasons.append(
                f"window profiles not saved since {since} ({p.last_error_kind}: the database "
                f"failed; the server's log has the details); "
                f"{p.unsaved_windows} windows kept in memory, retrying"
            )
        elif p.saving_for_s > stalled:
            reasons.append(
                f"window profiles: the database has not answered a save for "
                f"{p.saving_for_s:.1f} s; {p.unsaved_windows} windows kept in memory"
            )
        if not reasons:
            return 200, {"status": "ready"}
        return (503 if self.log.shedding else 200), {"status": "degraded", "reasons": reasons}

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            for name in list(self.served):
                try:
                    await self._sync(name)
                except Exception:  # the follower must survive a bad poll
                    log.exception("alias poll of %s failed", name)

    async def _sync(self, name: str) -> list[str]:
        """Load what each role's alias names now, if it changed; keep the old one on failure.

        Returns the refusals of this call, one sentence each (empty when every move was
        followed): an admin call that moved an alias answers with them.
        """
        # one sync of a model at a time: the follower and an admin call racing would load
        # (and refuse, and alert) the same version twice
        async with self._sync_locks.setdefault(name, asyncio.Lock()):
            return await self._sync_unlocked(name)

    async def _sync_unlocked(self, name: str) -> list[str]:
        served = self.served[name]
        refusals: list[str] = []
        aliases = await asyncio.to_thread(self.models.aliases, name)
        segment_roles = sorted(
            {r for r in (*aliases, *served.runtimes) if r.startswith("production:")}
        )
        for role in (*ROLES, *segment_roles):
            state = aliases.get(role)
            current = served.runtimes.get(role)
            if state is None:
                if current is not None and role != "production":
                    served.runtimes.pop(role)
                    old = served.batchers.pop(role)
                    self._later(old.close())
                continue
            if role == "canary":
                served.canary_weight = float(state.weight or 0.0)
            if current is not None and current.resolved.version == state.version:
                continue
            resolved = await asyncio.to_thread(self.models.resolve, f"{name}@{state.version}")
            refused = self._refused.get((name, state.version))
            if refused == resolved.artifact_sha256:
                refusals.append(f"{resolved.ref} was refused before (its artifact is unchanged)")
                continue
            try:
                runtime = await self._load(resolved)
            except Exception as exc:
                if database_unavailable(exc):
                    raise  # not the version's fault: the next poll tries again
                refusals.append(await self._refuse_version(served, role, resolved, exc))
                continue
            self._refused.pop((name, state.version), None)
            self.profiler.register(name, runtime.resolved.version, runtime.profile_spec)
            batcher = self._batcher(runtime)
            old_batcher = served.batchers.get(role)
            served.runtimes[role], served.batchers[role] = (
                runtime,
                batcher,
            )  # the swap: one assignment each
            self.metrics.swaps.labels(name, role).inc()
            if old_batcher is not None:
                self._later(_drain_then_close(old_batcher))
        return refusals

    def load_from_thread(self, resolved: ResolvedVersion) -> ModelRuntime:
        """`_load` (daemon thread, `load_timeout_s`) for code running in a worker thread, such
        as an admin move's check that the version loads; before `start`, a plain load."""
        if self.loop is None:
            return ModelRuntime.load(self.models, resolved)
        return asyncio.run_coroutine_threadsafe(self._load(resolved), self.loop).result()

    async def _load(self, resolved: ResolvedVersion) -> ModelRuntime:
        """Load and warm up a version in a daemon thread, within `load_timeout_s`.

        Not the default executor: its threads are joined at exit, so a load that never ends
        (a crafted artifact the checks missed) would keep SIGTERM from stopping the server.
        A daemon thread past its budget is left behind (Python cannot stop a thread); the
        version is refused and the server goes on, and exits when told to.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[ModelRuntime] = loop.create_future()

        def settle(runtime: ModelRuntime | None, exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(runtime)  # type: ignore[arg-type]

        def run() -> None:
            try:
                runtime = ModelRuntime.load(self.models, resolved)
            except BaseException as exc:  # every failure goes back to the event loop
                outcome: tuple[ModelRuntime | None, BaseException | None] = (None, exc)
            else:
                outcome = (runtime, None)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle, *outcome)

        threading.Thread(target=run, name=f"keel-load-{resolved.ref}", daemon=True).start()
        budget = self.settings.load_timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(done), timeout=budget)
        except TimeoutError:
            # the thread may still finish (or fail) later: its outcome is read and dropped
            done.add_done_callback(lambda f: f.cancelled() or f.exception())
            msg = (
                f"Loading and warming up {resolved.ref} took over {budget:g} s "
                "(load_timeout_s); it was given up. A crafted or corrupt artifact can do this; "
                "so can a model too large for this machine. The loading thread may still use "
                "CPU until the server restarts."
            )
            raise LoadTimeoutError(msg) from None

    async def _refuse_version(
        self, served: Served, role: str, resolved: ResolvedVersion, exc: BaseException
    ) -> str:
        """Remember a refused version by its artifact's hash, count it, log it and alert."""
        name = served.name
        self._refused[(name, resolved.version)] = resolved.artifact_sha256
        self.metrics.load_failures.labels(name).inc()
        current = served.runtimes.get(role)
        keeps = current.ref if current else "nothing"
        reason = str(exc) if isinstance(exc, KeelError) else f"{type(exc).__name__}: {exc}"
        message = f"refused {resolved.ref} for {role}: {reason.rstrip('.')}; {keeps} keeps serving"
        log.error("%s", message, exc_info=not isinstance(exc, KeelError))
        alert = Alert(
            model=name,
            rule="version_refused",
            severity="critical",
            message=message,
            window_start=None,
            evidence={
                "version": resolved.version,
                "role": role,
                "error": reason,
                "artifact_sha256": resolved.artifact_sha256,
            },
        )
        try:
            await asyncio.to_thread(self.alerts.fire, alert, None, dt.datetime.now(dt.UTC))
        except Exception:  # the alert is best effort; serving goes on
            log.exception("could not store the alert for %s", resolved.ref)
        return message

    def _batcher(self, runtime: ModelRuntime) -> MicroBatcher[dict[str, Any], Prediction]:
        hist = self.metrics.batch.labels(runtime.resolved.name, str(runtime.resolved.version))
        return MicroBatcher(
            runtime.predict,
            max_batch_size=self.settings.max_batch_size,
            max_queue_rows=self.settings.max_queue_rows,
            max_wait_ms=self.settings.max_wait_ms,
            on_batch=hist.observe,
            inline=runtime.fast_path,
        )

    def _later(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ---- predicting ------------------------------------------------------------------------

    def _served(self, name: str) -> Served:
        served = self.served.get(name.partition("@")[0])
        if served is None or "production" not in served.runtimes:
            known = sorted(n for n, s in self.served.items() if s.runtimes)
            msg = f"Model {name!r} is not served here; served models: {known}."
            raise ModelNotFoundError(msg)
        return served

    def _choose(
        self, served: Served, ref: str, key: str | None
    ) -> tuple[str, ModelRuntime, MicroBatcher[dict[str, Any], Prediction]]:
        _, _, which = ref.partition("@")
        if which:
            for role, rt in served.runtimes.items():
                if which == role or which == str(rt.resolved.version):
                    return role, rt, served.batchers[role]
            msg = f"{ref!r} is not loaded; loaded: {', '.join(f'{r}={rt.resolved.version}' for r, rt in served.runtimes.items())}."
            raise ModelNotFoundError(msg)
        role = "production"
        if "canary" in served.runtimes and served.canary_weight > 0:
            draw = (
                int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
                if key
                else random.random()
            )
            if draw < served.canary_weight:
                role = "canary"
        return role, served.runtimes[role], served.batchers[role]

    async def predict(
        self,
        ref: str,
        rows: Any,
        *,
        key: str | None = None,
        endpoint: str = "predict",
        at: dt.datetime | None = None,
        on_error: str = "fail",
    ) -> tuple[ModelRuntime, list[Prediction], list[str], list[RecordError]]:
        """Answer rows with the version the traffic policy picks; log and profile them.

        `at` is the time to log (replayed traffic, when `replay_time` allows it); default now.
        `on_error="fail"` refuses the whole request (422) when one row does not fit the
        model's contract; `"skip"` answers the good rows and returns the refused ones' errors
        (row = index in the request). Predictions and ids are those of the good rows, in
        request order.
        """
        served = self._served(ref)
        role, runtime, batcher = self._choose(served, ref, key)
        if not isinstance(rows, list) or not rows:
            raise RequestError(
                400, "The request has no rows; expected a non-empty list of records."
            )
        if len(rows) > self.settings.max_rows:
            raise too_many_rows(len(rows), self.settings.max_rows)
        if len(rows) > INLINE_ROWS:
            return await self._predict_bulk(served, ref, role, runtime, rows, at, on_error)
        if "@" not in ref and runtime.segment and len(served.runtimes) > 1:
            routed = self._by_segment(served, runtime, role, rows)
            if routed is not None:
                return await self._predict_routed(served, runtime, routed, rows, at, on_error)
        clean, errors = runtime.checker.check(rows)
        if errors:
            self._refuse(served.name, runtime, role, errors, at, on_error == "skip")
            if on_error != "skip":
                raise _unfit(runtime, errors)
            if not clean:
                return runtime, [], [], errors
        self._admit(served.name, len(clean))
        t0 = time.perf_counter()
        self.metrics.queue.labels(served.name, str(runtime.resolved.version)).set(
            batcher.queue_depth
        )
        try:
            predictions = await batcher.submit(clean)
        except OverloadedError:
            self.metrics.shed.labels(served.name, "queue").inc()
            raise
        except Exception as exc:
            self.metrics.errors.labels(served.name, "model").inc()
            msg = f"Model {runtime.ref} failed on this input: {type(exc).__name__}: {exc}"
            raise RequestError(500, msg) from exc
        latency_ms = (time.perf_counter() - t0) * 1000
        now = at or dt.datetime.now(dt.UTC)
        ids = prediction_ids(len(clean), now)
        # clean rows hold the checked sensitive attributes too (runtime.checker): log them;
        # a log with no room raises (503): an answer is given only once its record is held
        self._record(runtime, role, clean, predictions, ids, latency_ms, now)
        for shadow_role, shadow in served.runtimes.items():
            if shadow_role == "shadow":
                self._later(self._shadow(shadow, served.batchers[shadow_role], clean, ids, now))
        return runtime, predictions, ids, errors

    def _refuse(
        self,
        name: str,
        runtime: ModelRuntime,
        role: str,
        errors: list[RecordError],
        at: dt.datetime | None,
        skipped: bool,
    ) -> None:
        """Count rows the contract refused: per rule in a metric, and in the window profile.

        The refused rows themselves are not kept: they may hold PII that the log's
        anonymization policy could not be trusted to catch in a malformed row."""
        self.metrics.errors.labels(name, "invalid_input").inc()
        for e in errors:
            self.metrics.refused.labels(name, e.rule).inc()
        self.log.refused(
            name,
            runtime.resolved.version,
            role,
            at or dt.datetime.now(dt.UTC),
            len(errors) if skipped else 1,  # rows left unanswered, or the one failed request
        )

    def _by_segment(
        self, served: Served, runtime: ModelRuntime, role: str, rows: list[Any]
    ) -> dict[str, list[int]] | None:
        """Row indices per role when some rows' segment has a model of its own, else None."""
        seg = runtime.segment
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            value = row.get(seg) if isinstance(row, dict) else None
            target = f"production:{value}" if value is not None else role
            groups.setdefault(target if target in served.runtimes else role, []).append(i)
        return None if list(groups) == [role] else groups

    async def _predict_routed(
        self,
        served: Served,
        default: ModelRuntime,
        groups: dict[str, list[int]],
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str = "fail",
    ) -> tuple[ModelRuntime, list[Prediction], list[str], list[RecordError]]:
        """Each group of rows to its segment's version; answers put back in request order."""
        checked, refused = self._check_groups(served, groups, rows, at, on_error)
        if not checked:
            return default, [], [], refused
        self._admit(served.name, sum(len(clean) for *_, clean in checked))
        t0 = time.perf_counter()
        try:
            results = await asyncio.gather(
                *(served.batchers[role].submit(clean) for role, _, _, clean in checked)
            )
        except OverloadedError:
            self.metrics.shed.labels(served.name, "queue").inc()
            raise
        except Exception as exc:
            self.metrics.errors.labels(served.name, "model").inc()
            msg = f"Model {served.name} failed on this input: {type(exc).__name__}: {exc}"
            raise RequestError(500, msg) from exc
        latency_ms = (time.perf_counter() - t0) * 1000
        now = at or dt.datetime.now(dt.UTC)
        out: list[Prediction | None] = [None] * len(rows)
        all_ids = prediction_ids(len(rows), now)
        in_order: list[dict[str, Any] | None] = [None] * len(rows)
        for (_role, rt, idx, clean), predictions in zip(checked, results, strict=True):
            for i, p, c in zip(idx, predictions, clean, strict=True):
                out[i] = Prediction(p.prediction, p.probabilities, rt.resolved.version)
                in_order[i] = c
            group_ids = [all_ids[i] for i in idx]
            self._record(rt, "production", clean, predictions, group_ids, latency_ms, now)
        answered = [i for i, c in enumerate(in_order) if c is not None]
        ids = [all_ids[i] for i in answered]
        if "shadow" in served.runtimes:  # the shadow hears every row, whichever answered it
            shadow = served.runtimes["shadow"]
            heard = [c for c in in_order if c is not None]
            self._later(self._shadow(shadow, served.batchers["shadow"], heard, ids, now))
        return default, [p for p in out if p is not None], ids, refused

    def _check_groups(
        self,
        served: Served,
        groups: dict[str, list[int]],
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str,
        refused_by: list[tuple[ModelRuntime, str, list[RecordError]]] | None = None,
    ) -> tuple[list[tuple[str, ModelRuntime, list[int], list[dict[str, Any]]]], list[RecordError]]:
        """Check each group of rows with its version's contract: the clean rows per group and
        the refused rows (indices of the request). With on_error "fail" a refused row is a 422.

        Counting refusals touches the metrics and profiles: on the event loop that happens
        here; from the bulk thread (`refused_by` given) it is left to the caller."""
        checked = []
        refused: list[RecordError] = []
        for role, idx in groups.items():
            rt = served.runtimes[role]
            clean, errors = rt.checker.check([rows[i] for i in idx])
            if errors:
                errors = [replace(x, row=idx[x.row]) for x in errors]  # rows of the request
                label = "production" if role.startswith("production") else role
                if refused_by is None:
                    self._refuse(served.name, rt, label, errors, at, on_error == "skip")
                else:
                    refused_by.append((rt, label, errors))
                if on_error != "skip":
                    raise _unfit(rt, errors)
                bad = {x.row for x in errors}
                idx = [i for i in idx if i not in bad]
                refused.extend(errors)
            if clean:
                checked.append((role, rt, idx, clean))
        refused.sort(key=lambda x: x.row)
        return checked, refused

    async def _predict_bulk(
        self,
        served: Served,
        ref: str,
        role: str,
        runtime: ModelRuntime,
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str,
    ) -> tuple[ModelRuntime, list[Prediction], list[str], list[RecordError]]:
        """A request over INLINE_ROWS rows: checked, predicted in chunks and logged in the bulk
        thread; the event loop only hands it over and gets the answer back."""
        routed = "@" not in ref and runtime.segment is not None and len(served.runtimes) > 1
        groups = (self._by_segment(served, runtime, role, rows) if routed else None) or {
            role: list(range(len(rows)))
        }
        refused_by: list[tuple[ModelRuntime, str, list[RecordError]]] = []
        try:
            checked, refused = await self.offload(
                self._check_groups, served, groups, rows, at, on_error, refused_by
            )
        finally:
            for rt, label, errors in refused_by:
                self._refuse(served.name, rt, label, errors, at, on_error == "skip")
        if not checked:
            return runtime, [], [], refused
        now = at or dt.datetime.now(dt.UTC)
        try:
            answered = await self.offload(
                self._answer_bulk, checked, len(rows), now, len(groups) > 1
            )
        except Exception as exc:
            self.metrics.errors.labels(served.name, "model").inc()
            msg = f"Model {runtime.ref} failed on this input: {type(exc).__name__}: {exc}"
            raise RequestError(500, msg) from exc
        predictions, ids, heard = answered
        shadow = served.runtimes.get("shadow")
        if shadow is not None:  # the shadow hears every answered row, after the answer
            self._later(self.offload(self._shadow_bulk, shadow, heard, ids, now))
        return runtime, predictions, ids, refused

    def _answer_bulk(
        self,
        checked: list[tuple[str, ModelRuntime, list[int], list[dict[str, Any]]]],
        n: int,
        now: dt.datetime,
        routed: bool,
    ) -> tuple[list[Prediction], list[str], list[dict[str, Any]]]:
        """In the bulk thread: each group's predictions in chunks, logged; the answers, their
        ids and the clean rows in request order."""
        out: list[Prediction | None] = [None] * n
        in_order: list[dict[str, Any] | None] = [None] * n
        all_ids = prediction_ids(n, now)
        for role, rt, idx, clean in checked:
            t0 = time.perf_counter()
            predictions = _predict_chunked(rt, clean)
            latency_ms = (time.perf_counter() - t0) * 1000
            label = "production" if role.startswith("production") else role
            self._record(rt, label, clean, predictions, [all_ids[i] for i in idx], latency_ms, now)
            version = rt.resolved.version if routed else None
            for i, p, c in zip(idx, predictions, clean, strict=True):
                out[i] = Prediction(p.prediction, p.probabilities, version) if routed else p
                in_order[i] = c
        answered = [i for i in range(n) if out[i] is not None]
        return (
            [p for p in out if p is not None],
            [all_ids[i] for i in answered],
            [c for c in in_order if c is not None],
        )

    def _shadow_bulk(
        self, runtime: ModelRuntime, rows: list[dict[str, Any]], ids: list[str], now: dt.datetime
    ) -> None:
        t0 = time.perf_counter()
        try:
            predictions = _predict_chunked(runtime, rows)
        except Exception:
            self.metrics.errors.labels(runtime.resolved.name, "shadow").inc()
            return
        latency_ms = (time.perf_counter() - t0) * 1000
        self._record(runtime, "shadow", rows, predictions, ids, latency_ms, now)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the bulk thread (big requests' checks, model calls, answers)."""
        return await asyncio.get_running_loop().run_in_executor(self.bulk, fn, *args)

    async def _shadow(
        self,
        runtime: ModelRuntime,
        batcher: MicroBatcher[dict[str, Any], Prediction],
        rows: list[dict[str, Any]],
        ids: list[str],
        now: dt.datetime,
    ) -> None:
        t0 = time.perf_counter()
        try:
            predictions = await batcher.submit(rows)
        except Exception:
            self.metrics.errors.labels(runtime.resolved.name, "shadow").inc()
            return
        latency_ms = (time.perf_counter() - t0) * 1000
        self._record(runtime, "shadow", rows, predictions, ids, latency_ms, now)

    def _admit(self, name: str, rows: int) -> None:
        """Refuse (503) before the model runs when the log could not hold the answers."""
        if self.log.shedding:
            self.metrics.shed.labels(name, "log").inc()
            p = self.log.predictions
            msg = (
                f"The prediction log is backlogged: {p.pending()} records wait in memory "
                f"(log_buffer_rows = {p.max_buffered_rows}) and {p.spilled_rows} in spill files "
                f"(log_spill_rows = {p.max_spilled_rows}); this request of {rows} rows was not "
                "answered, so nothing answered goes unlogged. Retry later."
            )
            raise OverloadedError(msg, retry_after_s=p.retry_after_s)

    def _record(
        self,
        runtime: ModelRuntime,
        role: str,
        rows: list[dict[str, Any]],
        predictions: list[Prediction],
        ids: list[str],
        latency_ms: float,
        now: dt.datetime,
        logged: list[dict[str, Any]] | None = None,
    ) -> None:
        seg = runtime.segment
        per_row = latency_ms / max(1, len(rows))
        n = len(rows)
        segments = [
            None if seg is None or row.get(seg) is None else str(row.get(seg)) for row in rows
        ]
        columns: dict[str, list[Any]] = {
            "prediction_id": ids,
            "time": [now] * n,
            "model": [runtime.resolved.name] * n,
            "version": [runtime.resolved.version] * n,
            "role": [role] * n,
            "segment": segments,
            "features": [orjson.dumps(row, default=str).decode() for row in logged or rows],
            "prediction": [str(p.prediction) for p in predictions],
            "probabilities": [p.probabilities for p in predictions],
            "latency_ms": [per_row] * n,
        }
        try:
            self.log.log(columns)
        except OverloadedError:  # the log has no room: the caller gets 503, not an answer
            self.metrics.shed.labels(runtime.resolved.name, "log").inc()
            raise

    def replay_time(self, header: bytes | str | None) -> dt.datetime | None:
        """The time an `X-Keel-Time` header names, when `replay_time` is on (else None)."""
        if header is None or not self.settings.replay_time:
            return None
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise RequestError(
                400,
                f"X-Keel-Time has the value {text!r}; expected an ISO 8601 time such as 2026-03-01T12:00:00+00:00.",
            ) from exc
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

    def count(self, name: str | None, endpoint: str, status: int, version: str = "") -> None:
        """One request in `keel_requests_total`. A name that is not served is counted under
        model "" (names sent by callers must not grow the label set without bound)."""
        model = (name or "").partition("@")[0]
        if model not in self.served:
            model = ""
        self.metrics.requests.labels(model, version, endpoint, str(status)).inc()

    # ---- auth ------------------------------------------------------------------------------

    def authorize(self, request: Request, scope: str) -> None:
        """Let the call through, or raise AuthError: 401 without a known token, 403 without
        the scope. See `authorize_header`."""
        self.authorize_header(request.headers.get("authorization"), scope)

    def authorize_header(self, header: str | None, scope: str) -> None:
        """Check an `Authorization: Bearer TOKEN` header for `scope`.

        The scopes are `predict` (explain is part of it), `feedback`, `view` and `admin`; a
        token holds only the scopes listed for it (admin does not imply predict). Predict and
        explain need no token while `Settings.predict_is_open` (open_predict, or no tokens at
        all). Tokens are compared in constant time (`Settings.scopes_for`).
        """
        needed = "predict" if scope == "explain" else scope
        if needed == "predict" and self.settings.predict_is_open:
            return
        header = header or ""
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if not token:
            raise AuthError(
                401,
                f"This call needs a token with the {needed!r} scope: send 'Authorization: Bearer TOKEN'.",
            )
        scopes = self.settings.scopes_for(token)
        if scopes is None:
            raise AuthError(401, "The token is not one this server knows; check KEEL_TOKENS.")
        if needed not in scopes and scope not in scopes:
            raise AuthError(
                403, f"The token has the scopes {sorted(scopes)}; this call needs {needed!r}."
            )


def _return_large_buffers_to_the_os() -> None:
    """Pin glibc's mmap threshold at 128 KiB. By default it rises after a large buffer is freed
    (up to 32 MB), and from then on request bodies of megabytes come from the heap and stay in
    the process after the request. Measured (bench/isolation.py): peak RSS under four
    concurrent 10 MB requests 748 -> 679 MB. Other C libraries: nothing to do."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD; setting it turns the rising off
    except (OSError, AttributeError):
        pass


def _unfit(runtime: ModelRuntime, errors: list[RecordError]) -> RequestError:
    return RequestError(
        422,
        f"Input does not fit model {runtime.ref}: {errors[0].message()}.",
        [e.to_dict() for e in errors[:20]],
    )


def _predict_chunked(runtime: ModelRuntime, rows: list[dict[str, Any]]) -> list[Prediction]:
    out: list[Prediction] = []
    for start in range(0, len(rows), CHUNK_ROWS):
        out.extend(runtime.predict(rows[start : start + CHUNK_ROWS]))
    return out


async def _drain_then_close(batcher: MicroBatcher[Any, Any]) -> None:
    # requests already handed to the old version finish there; then it goes
    for _ in range(100):
        if batcher.queue_depth == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await batcher.close()


# ---- request helpers ----------------------------------------------------------------------


async def read_json(request: Request, server: KeelServer, kind: str = "json") -> Any:
    """The body's JSON (a large body parsed where it cannot stall the server; `kind` "oip"
    also checks an inference request's sizes there)."""
    return await server.parser.payload(await read_body(request, server), kind)


async def read_rows(request: Request, server: KeelServer, kind: str) -> Rows:
    """The rows of a body in a row format: "keel" (rows or columns, on_error), "mlflow",
    "feedback" (labels); at most `max_rows`."""
    return await server.parser.rows(await read_body(request, server), kind)


async def read_body(request: Request, server: KeelServer) -> bytes | bytearray:
    """The raw body, within `max_body_bytes` and the server's byte budget (released when the
    request is answered)."""
    return await receive_body(
        request.receive,
        request.scope,
        request.headers.get("content-length"),
        limit=server.settings.max_body_bytes,
        budget=server.budget,
    )


def json_response(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
    )


def create_app(
    settings: Settings, models: ModelStore | None = None, names: list[str] | None = None
) -> Starlette:
    """Build the server: the models named (all registered models by default)."""
    from keel.serve import routes

    models = models or ModelStore.open(settings)
    server = KeelServer(settings, models, names)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await server.start()
        try:
            yield
        finally:
            await server.stop()

    def wrap(
        handler: Callable[[Request, KeelServer], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        label = handler.__name__
        counts_own_success = label in routes.COUNTS_OWN_SUCCESS

        async def endpoint(request: Request) -> Response:
            try:
                response = await handler(request, server)
            except Exception as exc:  # 4xx for the caller's mistakes; else 500 with an id, logged
                response = error_response(exc, request.url.path)
            else:
                if counts_own_success and response.status_code == 200:
                    return response  # counted with its version by the handler
            finally:
                server.budget.release(request.scope)
            name = request.path_params.get("name")
            if name is None and label == "invocations":  # MLflow names no model in the path
                name = request.query_params.get("model") or request.headers.get("x-keel-model")
                if name is None and len(server.served) == 1:
                    name = next(iter(server.served))
            server.count(name, label, response.status_code)
            return response

        return endpoint

    route_list = [
        Route(path, wrap(handler), methods=methods) for path, handler, methods in routes.ROUTES
    ]
    route_list.append(
        Route("/openapi.json", lambda _r: json_response(openapi_document()), methods=["GET"])
    )
    route_list.append(
        Route(
            "/docs", lambda _r: HTMLResponse(routes.docs_page(openapi_document())), methods=["GET"]
        )
    )
    app = Starlette(routes=route_list, lifespan=lifespan)
    app.add_middleware(FastPredict, server=server)
    app.state.server = server
    return app


_PREFIX, _SUFFIX = "/v1/models/", "/predict"


class FastPredict:
    """The predict hot path as plain ASGI, in front of Starlette's routing.

    Measured: at 64 connections the per-request cost of Starlette's Request, routing and
    Response objects was the wall once the model answered in microseconds. This handles
    `POST /v1/models/{name}/predict` with the same checks, errors and answer as the routed
    endpoint (which stays for the OpenAPI document and any other path); everything else goes on.
    """

    def __init__(self, app: Any, server: KeelServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and path.startswith(_PREFIX)
            and path.endswith(_SUFFIX)
        ):
            name = path[len(_PREFIX) : -len(_SUFFIX)]
            if name and "/" not in name:
                await self._predict(name, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _predict(self, name: str, scope: Any, receive: Any, send: Any) -> None:
        from keel.serve.routes import answer_bytes

        t0 = time.perf_counter()
        server = self.server
        headers = {k: v for k, v in scope["headers"]}
        try:
            auth = headers.get(b"authorization")
            server.authorize_header(auth.decode("latin-1") if auth else None, "predict")
            declared = headers.get(b"content-length")
            body = await receive_body(
                receive,
                scope,
                declared.decode("latin-1") if declared is not None else None,
                limit=server.settings.max_body_bytes,
                budget=server.budget,
            )
            found = await server.parser.rows(body, "keel")
            del body
            key = headers.get(b"x-request-key")
            runtime, predictions, ids, refused = await server.predict(
                name,
                found.rows,
                key=key.decode("latin-1") if key else None,
                at=server.replay_time(headers.get(b"x-keel-time")),
                on_error=found.on_error,
            )
            data = await answer_bytes(server, runtime, predictions, ids, refused, found.on_error)
            server.metrics.requests.labels(
                runtime.resolved.name, str(runtime.resolved.version), "predict", "200"
            ).inc()
            server.metrics.latency.labels(runtime.resolved.name, "predict").observe(
                time.perf_counter() - t0
            )
        except Exception as exc:  # 4xx for the caller's mistakes; else 500 with an id, logged
            response = error_response(exc, scope.get("path", ""))
            server.count(name, "predict", response.status_code)
            await response(scope, receive, send)
            return
        finally:
            server.budget.release(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def metrics_text(server: KeelServer) -> bytes:
    return generate_latest(server.metrics.registry)


def csv_rows(body: bytes | bytearray, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a CSV body (every cell as text; the contract types them), at most
    `max_rows`; counted before any record is built."""
    try:
        frame = pl.read_csv(io.BytesIO(body), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        raise RequestError(
            400, f"The CSV body cannot be read: {str(exc).splitlines()[0]}."
        ) from exc
    if frame.height > max_rows:
        raise too_many_rows(frame.height, max_rows)
    return frame.to_dicts()
