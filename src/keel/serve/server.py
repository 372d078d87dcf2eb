"""The serving core: the loaded models, the traffic policy, the follower and the log, over one
set of stores; no web framework here (the HTTP edge is `keel.serve.routes` and `keel.serve.app`).

Every model named is served by alias: `production` answers, `canary` takes its weight of
traffic (sticky by a request key), `shadow` versions get a copy of each request after the
answer has gone. A follower polls the registry; when an alias moves, the new version is loaded
and warmed up off the event loop, then swapped in; a version that fails to load is refused and
the current one keeps serving. Failures are domain errors (`keel.serve.errors`); the HTTP edge
answers each with its status.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import datetime as dt
import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from keel.monitor import AlertStore, PredictionLog, Profiler
from keel.registry import ModelStore
from keel.serve.bodies import BodyBudget
from keel.serve.errors import (
    RequestError,
    RetryLaterError,
    ScopeError,
    TokenRequiredError,
    TooLargeError,
    VersionRefusedError,
)
from keel.serve.follower import Follower
from keel.serve.metrics import Metrics
from keel.serve.parsing import BodyParser
from keel.serve.predictor import INLINE_ROWS, Answered, Predictor, unfit
from keel.serve.runtime import ModelRuntime
from keel.serve.traffic import Served, choose
from keel.store import KeelError, ModelNotFoundError, Settings

log = logging.getLogger("keel.serve")
T = TypeVar("T")

SWITCH_INTERVAL_S = 0.001
"""How long a thread holds the GIL before another that waits for it gets it (default 5 ms)."""


class KeelServer:
    """The models, the log, the metrics and the follower; `create_app` puts HTTP in front."""

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
        self.budget = BodyBudget(settings.max_inflight_bytes)
        self.bulk = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keel-bulk")
        self.parser = BodyParser(
            max_rows=settings.max_rows, workers=settings.parse_workers, executor=self.bulk
        )
        self.ready = False
        self._background: set[asyncio.Task[Any]] = set()
        self._follower_task: asyncio.Task[None] | None = None
        self.follower = Follower(
            settings,
            models,
            self.served,
            metrics=self.metrics,
            profiler=self.profiler,
            alerts=self.alerts,
            later=self._later,
        )
        self.predictor = Predictor(
            settings,
            self.served,
            metrics=self.metrics,
            log=self.log,
            profiler=self.profiler,
            bulk=self.bulk,
            later=self._later,
        )
        # one explanation at a time per server: SHAP's tree code holds the GIL, and two at
        # once would double the time every other request waits (max_explain_rows keeps each
        # one short)
        self._explaining = asyncio.Semaphore(1)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every named model's versions, start the parser, the log and the follower."""
        for name in self.names:
            self.served[name] = Served(name)
            await self.follower.sync(name)
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
        self._follower_task = self.follower.start()

    async def stop(self) -> None:
        """Stop following, close the batchers and the parser, flush the log and profiles."""
        if self._follower_task is not None:
            self._follower_task.cancel()
        for served in self.served.values():
            for b in served.batchers.values():
                await b.close()
        self.parser.close()
        self.bulk.shutdown(wait=False, cancel_futures=True)
        await asyncio.to_thread(self.log.stop)
        await asyncio.to_thread(self.profiler.stop, self.settings.db_statement_timeout_s + 2)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether this replica should take traffic (`/readyz`: 503 when not), and why.

        Not while models are missing or the server sheds predictions (take this replica out of
        rotation); "degraded" with its reasons while it answers and logs every prediction but
        the database does not take window profiles or the log waits in spill files (every
        replica shares the database: leaving rotation would stop all serving for a monitoring
        outage); "ready" otherwise. Reads only memory."""
        missing = [n for n, s in self.served.items() if "production" not in s.runtimes]
        if not self.ready or missing:
            return False, {"status": "not ready", "models_without_production": missing}
        reasons = self._log_reasons() + self._profile_reasons()
        if not reasons:
            return True, {"status": "ready"}
        return not self.log.shedding, {"status": "degraded", "reasons": reasons}

    def _log_reasons(self) -> list[str]:
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
        return reasons

    def _profile_reasons(self) -> list[str]:
        p = self.profiler
        stalled = max(1.0, 2 * self.settings.flush_interval_s)
        if p.last_error is not None:
            since = p.failing_since.isoformat(timespec="seconds") if p.failing_since else "?"
            return [
                f"window profiles not saved since {since} ({p.last_error_kind}: the database "
                f"failed; the server's log has the details); "
                f"{p.unsaved_windows} windows kept in memory, retrying"
            ]
        if p.saving_for_s > stalled:
            return [
                f"window profiles: the database has not answered a save for "
                f"{p.saving_for_s:.1f} s; {p.unsaved_windows} windows kept in memory"
            ]
        return []

    def _later(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the bulk thread (big requests' checks, model calls, answers)."""
        return await self.predictor.offload(fn, *args)

    # ---- the traffic policy -------------------------------------------------------------------

    def model(self, name: str) -> Served:
        """The versions that answer for `name` (a `name@...` reference works too).

        Raises:
            ModelNotFoundError: the model is not served here, or has no production yet.
        """
        served = self.served.get(name.partition("@")[0])
        if served is None or "production" not in served.runtimes:
            known = sorted(n for n, s in self.served.items() if s.runtimes)
            msg = f"Model {name!r} is not served here; served models: {known}."
            raise ModelNotFoundError(msg)
        return served

    def runtime(self, ref: str, key: str | None = None) -> ModelRuntime:
        """The version that would answer a request for `ref` (`name`, `name@role`,
        `name@version`), by the traffic policy."""
        _, runtime, _ = choose(self.model(ref), ref, key)
        return runtime

    def all_ready(self) -> bool:
        """Started, and every served model has a production version."""
        return self.ready and all("production" in s.runtimes for s in self.served.values())

    # ---- predicting -----------------------------------------------------------------------

    async def predict(
        self,
        ref: str,
        rows: Any,
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        on_error: str = "fail",
        ids: list[str] | None = None,
    ) -> Answered:
        """Answer rows with the version the traffic policy picks; log and profile them.

        `at` is the time to log (replayed traffic, when `replay_time` allows it); default now.
        `on_error="fail"` refuses the whole request (`InputRefusedError`) when one row does not
        fit the model's contract; `"skip"` answers the good rows and returns the refused ones'
        errors (row = index in the request). Predictions and ids are those of the good rows,
        in request order.
        `ids` (one per row) are the prediction ids to log instead of new ones: a stream derives
        them from its message ids, so a redelivered message logs the same ids again.
        """
        return await self.predictor.predict(self.model(ref), ref, rows, key, at, on_error, ids)

    async def explain(self, runtime: ModelRuntime, rows: list[Any]) -> dict[str, Any]:
        """SHAP values of rows by `runtime` (see `runtime`), at most `max_explain_rows`."""
        if not rows:
            msg = "The request has no rows; expected a non-empty list of records to explain."
            raise RequestError(msg)
        clean, errors = (
            await self.offload(runtime.checker.check, rows)
            if len(rows) > INLINE_ROWS
            else runtime.checker.check(rows)
        )
        limit = self.settings.max_explain_rows
        if len(rows) > limit:
            msg = (
                f"The request has {len(rows)} rows to explain; at most {limit} per request "
                "(max_explain_rows): SHAP holds the interpreter for a long time per row."
            )
            raise TooLargeError(
                msg,
                {"field": "rows", "value": len(rows), "expected": f"at most {limit} rows"},
            )
        if errors:
            raise unfit(runtime, errors)
        async with self._explaining:
            return await asyncio.to_thread(runtime.explain, clean)

    def replay_time(self, header: bytes | str | None) -> dt.datetime | None:
        """The time an `X-Keel-Time` header names, when `replay_time` is on (else None)."""
        if header is None or not self.settings.replay_time:
            return None
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        try:
            at = dt.datetime.fromisoformat(text)
        except ValueError as exc:
            msg = f"X-Keel-Time has the value {text!r}; expected an ISO 8601 time such as 2026-03-01T12:00:00+00:00."
            raise RequestError(msg) from exc
        return at if at.tzinfo else at.replace(tzinfo=dt.UTC)

    # ---- auth ------------------------------------------------------------------------------

    def authorize(self, header: str | None, scope: str) -> None:
        """Check an `Authorization: Bearer TOKEN` header for `scope`.

        The scopes are `predict` (explain is part of it), `feedback`, `view` and `admin`; a
        token holds only the scopes listed for it (admin does not imply predict). Predict and
        explain need no token while `Settings.predict_is_open` (open_predict, or no tokens at
        all). Tokens are compared in constant time (`Settings.scopes_for`).

        Raises:
            TokenRequiredError: no token, or one this server does not know.
            ScopeError: the token lacks the scope.
        """
        needed = "predict" if scope == "explain" else scope
        if needed == "predict" and self.settings.predict_is_open:
            return
        header = header or ""
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if not token:
            msg = f"This call needs a token with the {needed!r} scope: send 'Authorization: Bearer TOKEN'."
            raise TokenRequiredError(msg)
        scopes = self.settings.scopes_for(token)
        if scopes is None:
            msg = "The token is not one this server knows; check KEEL_TOKENS."
            raise TokenRequiredError(msg)
        if needed not in scopes and scope not in scopes:
            msg = f"The token has the scopes {sorted(scopes)}; this call needs {needed!r}."
            raise ScopeError(msg)

    # ---- alias moves ------------------------------------------------------------------------

    async def sync(self, name: str) -> list[str]:
        """Follow `name`'s aliases now (see `Follower.sync`): the refusals of this call."""
        return await self.follower.sync(name)

    async def moved(self, name: str) -> None:
        """An alias of `name` moved (by the dashboard): follow it now if `name` is served."""
        if name in self.served:
            await self.follower.sync(name)

    def verify_move(self, name: str, alias: str, version: int) -> None:
        """What promotion calls before a move (in a worker thread): load the version as the
        follower would (hash, contents, contract, warm-up, within `load_timeout_s`).

        Raises:
            VersionRefusedError: this server refused the version before, or cannot load it.
        """
        if not _serving(alias):
            return
        ref = f"{name}@{version}"
        now = self.served[name].runtimes.get(alias) if name in self.served else None
        stays = f"{alias} stays at {now.ref}" if now else f"{alias} was not set"
        if (name, version) in self.follower.refused:
            msg = f"This server refused to load {ref} earlier (see the version_refused alert); {stays}."
            raise VersionRefusedError(
                msg,
                {"version": version, "alias": alias},
            )
        try:
            self.follower.load_from_thread(self.models.resolve(ref))
        except KeelError as exc:
            # the store's own paths are no business of a caller: shown relative to the store
            why = str(exc).replace(str(self.models.artifacts.root).rstrip("/") + "/", "")
            why = why.rstrip(".") + "."
            msg = f"This server cannot serve {ref}: {why} Nothing was moved: {stays}."
            raise VersionRefusedError(
                msg,
                {"version": version, "alias": alias, "error": why},
            ) from exc
        except Exception as exc:  # any failure to load is a refusal, never a move
            log.exception("loading %s to check a move of %s failed", ref, alias)
            msg = f"This server cannot serve {ref}: loading it failed ({type(exc).__name__}). Nothing was moved: {stays}."
            raise VersionRefusedError(
                msg,
                {"version": version, "alias": alias, "error": type(exc).__name__},
            ) from exc

    async def follow_move(self, name: str, alias: str, version: int) -> None:
        """Serve a move at once.

        Raises:
            RetryLaterError: this server still does not answer with the version it was checked
                to load (its follower refused it on the second load).
        """
        if name not in self.served:
            return
        await self.follower.sync(name)
        if not _serving(alias):
            return
        runtime = self.served[name].runtimes.get(alias)
        swapped = runtime is not None and runtime.resolved.version == version
        if not swapped and (name, version) in self.follower.refused:  # not a later move
            keeps = runtime.ref if runtime else "nothing"
            msg = (
                f"The alias {alias!r} of {name!r} moved to version {version}, but this server did not "
                f"load it and {keeps} keeps answering (see the version_refused alert). Roll back with "
                f"POST /v1/models/{name}/rollback or move the alias again."
            )
            raise RetryLaterError(
                msg,
                {"version": version, "alias": alias},
            )


def _serving(alias: str) -> bool:
    """Whether an alias is one a server answers with (so a move must load)."""
    return alias in ("production", "canary", "shadow") or alias.startswith("production:")


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
