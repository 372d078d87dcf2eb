"""Answering rows: check them against the contract, batch them to the model, log the answers.

Small requests are checked and handed to the version's `MicroBatcher` on the event loop; big
ones (over `INLINE_ROWS`) are checked, predicted in chunks and logged in the one bulk thread.
Rows whose segment has a version of its own go to it; the shadow hears every answered row
after the answer. An answer is given only once its log record is held (`PredictionLog.log`
raises when it has no room, and the caller gets a 503).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import orjson

from keel.data import RecordError
from keel.monitor import PredictionLog, Profiler, prediction_ids
from keel.serve.bodies import too_many_rows
from keel.serve.errors import (
    InputRefusedError,
    ModelFailedError,
    RequestError,
)
from keel.serve.metrics import Metrics
from keel.serve.runtime import ModelRuntime, Prediction
from keel.serve.traffic import Batcher, Served, by_segment, choose, routes_by_segment
from keel.store import OverloadedError, Settings

T = TypeVar("T")

INLINE_ROWS = 64
"""Requests of more rows are checked, predicted and logged in the bulk thread, never on the
event loop: measured, a 10,000-row request's checks, model call and log records held the loop
for ~200 ms. One bulk thread serves the whole process, so big requests queue behind each
other instead of multiplying memory and lock contention."""
CHUNK_ROWS = 1024
"""Rows per model call in the bulk thread (bounds the arrays one call allocates)."""

Group = tuple[str, ModelRuntime, list[int], list[dict[str, Any]]]
"""Rows checked for one role: the role, its runtime, their indices in the request, the rows."""


@dataclass(frozen=True, slots=True)
class Answered:
    """What a request got: the version that answered (a segment's rows may have been answered
    by others: `Prediction.version`), the predictions and ids of the answered rows in request
    order, and the rows refused (with on_error "skip"; `RecordError.row` is the request's)."""

    runtime: ModelRuntime
    predictions: list[Prediction]
    ids: list[str]
    refused: list[RecordError]


class Predictor:
    """Answers requests for the served models and hands each answer to the prediction log."""

    def __init__(
        self,
        settings: Settings,
        served: dict[str, Served],
        *,
        metrics: Metrics,
        log: PredictionLog,
        profiler: Profiler,
        bulk: Executor,
        later: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.settings = settings
        self.served = served
        self.metrics = metrics
        self.log = log
        self.profiler = profiler
        self.bulk = bulk
        self._later = later

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the bulk thread (big requests' checks, model calls, answers)."""
        return await asyncio.get_running_loop().run_in_executor(self.bulk, fn, *args)

    async def predict(
        self,
        served: Served,
        ref: str,
        rows: Any,
        key: str | None,
        at: dt.datetime | None,
        on_error: str,
        ids: list[str] | None = None,
    ) -> Answered:
        """Answer rows with the version the traffic policy picks (see `KeelServer.predict`)."""
        role, runtime, batcher = choose(served, ref, key)
        if not isinstance(rows, list) or not rows:
            msg = "The request has no rows; expected a non-empty list of records."
            raise RequestError(msg)
        if len(rows) > self.settings.max_rows:
            raise too_many_rows(len(rows), self.settings.max_rows)
        if ids is not None and len(ids) != len(rows):
            msg = (
                f"{len(ids)} prediction ids were given for {len(rows)} rows; expected one per row."
            )
            raise RequestError(msg)
        if len(rows) > INLINE_ROWS:
            return await self._predict_bulk(served, ref, role, runtime, rows, at, on_error, ids)
        if routes_by_segment(served, runtime, ref):
            routed = by_segment(served, runtime, role, rows)
            if routed is not None:
                return await self._predict_routed(served, runtime, routed, rows, at, on_error, ids)
        return await self._predict_inline(served, role, runtime, batcher, rows, at, on_error, ids)

    async def _predict_inline(
        self,
        served: Served,
        role: str,
        runtime: ModelRuntime,
        batcher: Batcher,
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str,
        given: list[str] | None = None,
    ) -> Answered:
        """A small request answered by one version through its batcher."""
        clean, errors = runtime.checker.check(rows)
        if errors:
            self.refuse(served.name, runtime, role, errors, at, on_error == "skip")
            if on_error != "skip":
                raise unfit(runtime, errors)
            if not clean:
                return Answered(runtime, [], [], errors)
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
            raise self._failed(served.name, runtime.ref, exc) from exc
        latency_ms = (time.perf_counter() - t0) * 1000
        now = at or dt.datetime.now(dt.UTC)
        ids = _ids_of(given, len(rows), errors) or prediction_ids(len(clean), now)
        # clean rows hold the checked sensitive attributes too (runtime.checker): log them;
        # a log with no room raises (503): an answer is given only once its record is held
        self.record(runtime, role, clean, predictions, ids, latency_ms, now)
        for shadow_role, shadow in served.runtimes.items():
            if shadow_role == "shadow":
                self._later(self._shadow(shadow, served.batchers[shadow_role], clean, ids, now))
        return Answered(runtime, predictions, ids, errors)

    def _failed(self, name: str, ref: str, exc: Exception) -> ModelFailedError:
        self.metrics.errors.labels(name, "model").inc()
        return ModelFailedError(f"Model {ref} failed on this input: {type(exc).__name__}: {exc}")

    def refuse(
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

    async def _predict_routed(
        self,
        served: Served,
        default: ModelRuntime,
        groups: dict[str, list[int]],
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str = "fail",
        given: list[str] | None = None,
    ) -> Answered:
        """Each group of rows to its segment's version; answers put back in request order."""
        checked, refused = self._check_groups(served, groups, rows, at, on_error)
        if not checked:
            return Answered(default, [], [], refused)
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
            raise self._failed(served.name, served.name, exc) from exc
        latency_ms = (time.perf_counter() - t0) * 1000
        now = at or dt.datetime.now(dt.UTC)
        out: list[Prediction | None] = [None] * len(rows)
        all_ids = given or prediction_ids(len(rows), now)
        in_order: list[dict[str, Any] | None] = [None] * len(rows)
        for (_role, rt, idx, clean), predictions in zip(checked, results, strict=True):
            for i, p, c in zip(idx, predictions, clean, strict=True):
                out[i] = Prediction(p.prediction, p.probabilities, rt.resolved.version)
                in_order[i] = c
            group_ids = [all_ids[i] for i in idx]
            self.record(rt, "production", clean, predictions, group_ids, latency_ms, now)
        answered = [i for i, c in enumerate(in_order) if c is not None]
        ids = [all_ids[i] for i in answered]
        if "shadow" in served.runtimes:  # the shadow hears every row, whichever answered it
            shadow = served.runtimes["shadow"]
            heard = [c for c in in_order if c is not None]
            self._later(self._shadow(shadow, served.batchers["shadow"], heard, ids, now))
        return Answered(default, [p for p in out if p is not None], ids, refused)

    def _check_groups(
        self,
        served: Served,
        groups: dict[str, list[int]],
        rows: list[Any],
        at: dt.datetime | None,
        on_error: str,
        refused_by: list[tuple[ModelRuntime, str, list[RecordError]]] | None = None,
    ) -> tuple[list[Group], list[RecordError]]:
        """Check each group of rows with its version's contract: the clean rows per group and
        the refused rows (indices of the request). With on_error "fail" a refused row raises
        `InputRefusedError`.

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
                    self.refuse(served.name, rt, label, errors, at, on_error == "skip")
                else:
                    refused_by.append((rt, label, errors))
                if on_error != "skip":
                    raise unfit(rt, errors)
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
        given: list[str] | None = None,
    ) -> Answered:
        """A request over INLINE_ROWS rows: checked, predicted in chunks and logged in the bulk
        thread; the event loop only hands it over and gets the answer back."""
        routed = routes_by_segment(served, runtime, ref)
        groups = (by_segment(served, runtime, role, rows) if routed else None) or {
            role: list(range(len(rows)))
        }
        refused_by: list[tuple[ModelRuntime, str, list[RecordError]]] = []
        try:
            checked, refused = await self.offload(
                self._check_groups, served, groups, rows, at, on_error, refused_by
            )
        finally:
            for rt, label, errors in refused_by:
                self.refuse(served.name, rt, label, errors, at, on_error == "skip")
        if not checked:
            return Answered(runtime, [], [], refused)
        now = at or dt.datetime.now(dt.UTC)
        try:
            answered = await self.offload(
                self._answer_bulk, checked, len(rows), now, len(groups) > 1, given
            )
        except Exception as exc:
            raise self._failed(served.name, runtime.ref, exc) from exc
        predictions, ids, heard = answered
        shadow = served.runtimes.get("shadow")
        if shadow is not None:  # the shadow hears every answered row, after the answer
            self._later(self.offload(self._shadow_bulk, shadow, heard, ids, now))
        return Answered(runtime, predictions, ids, refused)

    def _answer_bulk(
        self,
        checked: list[Group],
        n: int,
        now: dt.datetime,
        routed: bool,
        given: list[str] | None = None,
    ) -> tuple[list[Prediction], list[str], list[dict[str, Any]]]:
        """In the bulk thread: each group's predictions in chunks, logged; the answers, their
        ids and the clean rows in request order."""
        out: list[Prediction | None] = [None] * n
        in_order: list[dict[str, Any] | None] = [None] * n
        all_ids = given or prediction_ids(n, now)
        for role, rt, idx, clean in checked:
            t0 = time.perf_counter()
            predictions = _predict_chunked(rt, clean)
            latency_ms = (time.perf_counter() - t0) * 1000
            label = "production" if role.startswith("production") else role
            self.record(rt, label, clean, predictions, [all_ids[i] for i in idx], latency_ms, now)
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
        self.record(runtime, "shadow", rows, predictions, ids, latency_ms, now)

    async def _shadow(
        self,
        runtime: ModelRuntime,
        batcher: Batcher,
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
        self.record(runtime, "shadow", rows, predictions, ids, latency_ms, now)

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

    def record(
        self,
        runtime: ModelRuntime,
        role: str,
        rows: list[dict[str, Any]],
        predictions: list[Prediction],
        ids: list[str],
        latency_ms: float,
        now: dt.datetime,
    ) -> None:
        """Hand the answered rows to the prediction log (which feeds the window profiles)."""
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
            "features": [orjson.dumps(row, default=str).decode() for row in rows],
            "prediction": [str(p.prediction) for p in predictions],
            "probabilities": [p.probabilities for p in predictions],
            "latency_ms": [per_row] * n,
        }
        try:
            self.log.log(columns)
        except OverloadedError:  # the log has no room: the caller gets 503, not an answer
            self.metrics.shed.labels(runtime.resolved.name, "log").inc()
            raise


def unfit(runtime: ModelRuntime, errors: list[RecordError]) -> InputRefusedError:
    """The error for rows that do not fit the model's contract (the first 20 in details)."""
    return InputRefusedError(
        f"Input does not fit model {runtime.ref}: {errors[0].message()}.",
        [e.to_dict() for e in errors[:20]],
    )


def _ids_of(given: list[str] | None, n: int, errors: list[RecordError]) -> list[str] | None:
    """The given ids (one per row of the request) of the rows the contract let through."""
    if given is None:
        return None
    bad = {e.row for e in errors}
    return [given[i] for i in range(n) if i not in bad]


def _predict_chunked(runtime: ModelRuntime, rows: list[dict[str, Any]]) -> list[Prediction]:
    out: list[Prediction] = []
    for start in range(0, len(rows), CHUNK_ROWS):
        out.extend(runtime.predict(rows[start : start + CHUNK_ROWS]))
    return out
