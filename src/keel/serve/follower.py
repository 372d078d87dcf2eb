"""The follower: load what each alias names now, warm it up off the event loop, swap it in.

A version that fails to load is refused (remembered by its artifact's hash, counted, logged
and alerted) and the current one keeps serving; it is tried again only when its artifact
changes. Loading runs in a daemon thread within `load_timeout_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from keel.monitor import Alert, AlertStore, Profiler
from keel.registry import ModelStore, ResolvedVersion
from keel.serve.batching import MicroBatcher
from keel.serve.errors import LoadTimeoutError, database_unavailable
from keel.serve.metrics import Metrics
from keel.serve.runtime import ModelRuntime
from keel.serve.traffic import ROLES, Batcher, Served
from keel.store import KeelError, Settings

log = logging.getLogger("keel.serve")


class Follower:
    """Keeps each served model's runtimes in step with its aliases in the registry."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        served: dict[str, Served],
        *,
        metrics: Metrics,
        profiler: Profiler,
        alerts: AlertStore,
        later: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.settings = settings
        self.models = models
        self.served = served
        self.metrics = metrics
        self.profiler = profiler
        self.alerts = alerts
        self._later = later
        # refused versions by (name, version) -> the artifact sha256 that was refused: tried
        # again only if the version's artifact changes, never at every poll
        self.refused: dict[tuple[str, int], str] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.loop: asyncio.AbstractEventLoop | None = None  # set by start()

    def start(self) -> asyncio.Task[None]:
        """Start polling on the running event loop; the task is the caller's to cancel."""
        self.loop = asyncio.get_running_loop()
        return self.loop.create_task(self._run())

    async def _run(self) -> None:
        """Poll the registry every `poll_interval_s`, for ever."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            for name in list(self.served):
                try:
                    await self.sync(name)
                except Exception:  # the follower must survive a bad poll
                    log.exception("alias poll of %s failed", name)
                else:
                    self.metrics.polls.labels(name).inc()

    async def sync(self, name: str) -> list[str]:
        """Load what each role's alias names now, if it changed; keep the old one on failure.

        Returns the refusals of this call, one sentence each (empty when every move was
        followed): an admin call that moved an alias answers with them.
        """
        # one sync of a model at a time: the follower and an admin call racing would load
        # (and refuse, and alert) the same version twice
        async with self._locks.setdefault(name, asyncio.Lock()):
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
            refusal = await self._swap(served, role, state.version)
            if refusal is not None:
                refusals.append(refusal)
        return refusals

    async def _swap(self, served: Served, role: str, version: int) -> str | None:
        """Load `version` for `role` and swap it in; the refusal's sentence if it failed."""
        name = served.name
        resolved = await asyncio.to_thread(self.models.resolve, f"{name}@{version}")
        if self.refused.get((name, version)) == resolved.artifact_sha256:
            return f"{resolved.ref} was refused before (its artifact is unchanged)"
        try:
            runtime = await self.load(resolved)
        except Exception as exc:
            if database_unavailable(exc):
                raise  # not the version's fault: the next poll tries again
            return await self._refuse_version(served, role, resolved, exc)
        self.refused.pop((name, version), None)
        self.profiler.register(name, runtime.resolved.version, runtime.profile_spec)
        batcher = self._batcher(runtime)
        old_batcher = served.batchers.get(role)
        # the swap: one assignment each
        served.runtimes[role], served.batchers[role] = runtime, batcher
        self.metrics.swaps.labels(name, role).inc()
        if old_batcher is not None:
            self._later(_drain_then_close(old_batcher))
        return None

    def load_from_thread(self, resolved: ResolvedVersion) -> ModelRuntime:
        """`load` (daemon thread, `load_timeout_s`) for code running in a worker thread, such
        as an admin move's check that the version loads; before `start`, a plain load."""
        if self.loop is None:
            return ModelRuntime.load(self.models, resolved)
        return asyncio.run_coroutine_threadsafe(self.load(resolved), self.loop).result()

    async def load(self, resolved: ResolvedVersion) -> ModelRuntime:
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
        self.refused[(name, resolved.version)] = resolved.artifact_sha256
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

    def _batcher(self, runtime: ModelRuntime) -> Batcher:
        hist = self.metrics.batch.labels(runtime.resolved.name, str(runtime.resolved.version))
        return MicroBatcher(
            runtime.predict,
            max_batch_size=self.settings.max_batch_size,
            max_queue_rows=self.settings.max_queue_rows,
            max_wait_ms=self.settings.max_wait_ms,
            on_batch=hist.observe,
            inline=runtime.fast_path,
        )


async def _drain_then_close(batcher: MicroBatcher[Any, Any]) -> None:
    # requests already handed to the old version finish there; then it goes
    for _ in range(100):
        if batcher.queue_depth == 0:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await batcher.close()
