"""The controller: retrain on a trigger, shadow the challenger, promote it when it wins, watch
the new production and roll back on regression. It decides from what `keel.monitor` computes;
every act lands in the audit log (actor `loop`) with the numbers that decided it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from keel.data import DatasetStore
from keel.loop.lease import Lease
from keel.loop.retrain import run_retrain
from keel.monitor.alerts import Alert
from keel.monitor.performance import estimate_binary
from keel.monitor.service import ModelStatus, Monitor
from keel.registry import AliasMove, ModelStore
from keel.store import GateFailedError, KeelError, Settings
from keel.train import promote, report_of, rollback
from keel.train.metrics import LOWER_IS_BETTER

ACTOR = "loop"


@dataclass(frozen=True)
class LoopPolicy:
    """What the loop may do and when (setting `loop` overrides any field)."""

    recent_days: float = 30.0
    """Logged rows of this many days (with labels) make the fresh dataset."""
    older_share: float = 0.3
    """Share of the fresh dataset taken from the production version's training data."""
    min_new_labels: int = 300
    """Fewest labelled logged rows before a retrain."""
    retrain_every_s: float | None = None
    """Retrain on a schedule too (seconds between retrains); None: only on triggers."""
    retrain_timeout_s: float = 1800.0
    """A retrain running longer is stopped and alerted."""
    retrain_cooldown_s: float = 7 * 86400
    """No retrain (but by hand) sooner than this after the last one, failed or not."""
    shadow_min_requests: int = 300
    """Requests both versions answered before the shadow is judged."""
    shadow_min_labels: int = 150
    """Labels on those requests before the shadow is judged."""
    shadow_max_wait_s: float = 14 * 86400
    """A shadow not judged within this is dropped."""
    margin: float = 0.0
    """The challenger must beat production by this much of the primary metric..."""
    confidence: float = 0.95
    """...with the lower bound of this two-sided paired-bootstrap interval (only 0.95 now)."""
    canary_weights: tuple[float, ...] = ()
    """Ramp through these canary weights before promoting (empty: promote at once)."""
    watch_s: float = 7 * 86400
    """After a production move, watch the new version this long."""
    rollback_drop: float = 0.03
    """Roll back when the live primary metric falls this far below the previous version's."""
    rollback_estimated_drop: float = 0.05
    """... or the estimated metric (before labels) falls this far below the previous one's."""
    rollback_error_rate: float = 0.02
    """... or the error rate of a window goes over this."""
    min_watch_rows: int = 200
    """Rows the new version must have answered before a verdict on it."""
    lease_ttl_s: float = 3600.0


@dataclass
class Decision:
    """One thing the loop decided, with its numbers."""

    action: str  # retrain, shadow, promote, canary, reject, rollback, wait, none
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    acted: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Loop:
    """One model's controller. `step` looks once and acts at most once."""

    def __init__(
        self,
        settings: Settings,
        models: ModelStore,
        datasets: DatasetStore,
        *,
        policy: LoopPolicy | None = None,
        monitor: Monitor | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.datasets = datasets
        self.policy = policy or LoopPolicy(**settings.loop)
        self.monitor = monitor or Monitor(settings, models, clock=models.db.clock)
        self._previewed: list[Alert] = []

    # ---- the step --------------------------------------------------------------------------

    def step(
        self,
        name: str,
        *,
        now: dt.datetime | None = None,
        dry_run: bool = False,
        retrain: bool = False,
    ) -> list[Decision]:
        """Check alerts, then the first of: watch → shadow/canary → retrain. Holds the lease."""
        now = now or self.models.db.clock.now()
        lease = Lease(self.models.db, f"loop:{name}", ttl_s=self.policy.lease_ttl_s)
        with lease.held():
            decisions: list[Decision] = []
            status = self.monitor.status(name, now=now)
            # a dry run evaluates the rules too (stores and sends nothing): what it says it
            # would do is what a real step would, alerts it would fire included
            fired = (
                self.monitor.preview(name, status, now=now)
                if dry_run
                else self.monitor.fire(name, status, now=now)
            )
            self._previewed = fired if dry_run else []
            if fired:
                decisions.append(
                    Decision(
                        "alerts",
                        f"{'would fire ' if dry_run else ''}{len(fired)} alert(s): "
                        + ", ".join(a.rule for a in fired),
                        {"alerts": [a.to_dict() for a in fired]},
                        acted=False,
                    )
                )
            for check in (self._watch, self._challenger, self._retrain):
                decision = check(name, status, now, dry_run, retrain)
                if decision is not None:
                    decisions.append(decision)
                    break
            else:
                decisions.append(Decision("none", "nothing to do", acted=False))
            return decisions

    def _audit(self, name: str, action: str, reason: str, numbers: dict[str, Any]) -> None:
        with self.models.db.begin() as conn:
            self.models.db.record_event(
                conn,
                actor=ACTOR,
                action=f"loop.{action}",
                subject=f"model:{name}",
                reason=reason,
                details=numbers,
            )

    def _alert(
        self, name: str, rule: str, message: str, evidence: dict[str, Any], now: dt.datetime
    ) -> None:
        self.monitor.alerts.fire(
            Alert(name, rule, "critical", message, None, evidence, trigger=False), None, now
        )

    # ---- 6. watch the new production -----------------------------------------------------

    def _last_move(self, name: str) -> AliasMove | None:
        moves = [e for e in self.models.history(name) if e.alias == "production"]
        return moves[-1] if moves else None

    def _watch(
        self, name: str, s: ModelStatus, now: dt.datetime, dry_run: bool, _retrain: bool
    ) -> Decision | None:
        move = self._last_move(name)
        if (
            move is None
            or move.action != "alias.set"
            or move.from_version is None
            or s.version is None
        ):
            return None
        moved_at = move.time
        if (now - moved_at).total_seconds() > self.policy.watch_s:
            return None
        previous = move.from_version
        after = [
            w for w in s.windows if w.start >= moved_at.replace(minute=0, second=0, microsecond=0)
        ]
        rows = sum(w.rows for w in after)
        watching = Decision(
            "wait",
            f"watching {name}@{s.version} (production since {moved_at:%Y-%m-%d %H:%M}, {rows} rows so far); no retrain or promotion meanwhile",
            {"version": s.version, "previous": previous, "rows": rows},
            acted=False,
        )
        if rows < self.policy.min_watch_rows:
            return watching
        metric = s.metric
        lower_better = metric in LOWER_IS_BETTER
        evidence: dict[str, Any] = {
            "version": s.version,
            "previous": previous,
            "rows": rows,
            "metric": metric,
        }
        reasons = []
        # live metric against the previous version's (its live windows before the move, else
        # its training figure)
        live_now = [
            x["metrics"].get(metric)
            for x in s.live
            if x["judged"] and x["version"] == s.version and x["role"] == "production"
        ]
        live_now = [v for v in live_now if v is not None]
        prev_live = [
            x["metrics"].get(metric) for x in s.live if x["judged"] and x["version"] == previous
        ]
        prev_live = [v for v in prev_live if v is not None]
        if live_now:
            current = sum(live_now) / len(live_now)
            if prev_live:
                base = sum(prev_live) / len(prev_live)
                evidence["baseline"] = "previous version's live windows"
            else:
                base = report_of(self.models.get(f"{name}@{previous}")).metric(metric)
                evidence["baseline"] = "previous version's holdout"
            # an ONNX graph imported without data has no holdout figure to compare with
            if base is not None:
                drop = (current - base) if lower_better else (base - current)
                evidence.update(live=current, previous_live=base, drop=drop)
                if drop >= self.policy.rollback_drop:
                    reasons.append(
                        f"live {metric} {current:.4f} is {drop:.4f} below the previous version's {base:.4f}"
                    )
        est_now = [
            w.estimated.get(metric)
            for w in after
            if w.complete and w.estimated.get(metric) is not None
        ]
        prev_windows = self.monitor_windows(name, previous, before=moved_at, now=now)
        est_prev = [
            w.estimated.get(metric) for w in prev_windows if w.estimated.get(metric) is not None
        ]
        if not est_prev:  # it never served a whole window: its holdout scores say what to expect
            ref_prev = report_of(self.models.get(f"{name}@{previous}")).reference or {}
            scores = (ref_prev.get("output") or {}).get("scores")
            if scores:
                est_prev = [estimate_binary(scores).get(metric)]
                evidence["previous_estimated_from"] = "holdout scores"
        if est_now and est_prev:
            a = sum(float(x) for x in est_now if x is not None) / len(est_now)
            b = sum(float(x) for x in est_prev if x is not None) / len(est_prev)
            evidence.update(estimated=a, previous_estimated=b)
            if b - a >= self.policy.rollback_estimated_drop:
                reasons.append(
                    f"estimated {metric} {a:.4f} is {b - a:.4f} below the previous version's {b:.4f}"
                )
        worst = max((w.error_rate for w in after if w.complete), default=0.0)
        evidence["error_rate"] = worst
        if worst > self.policy.rollback_error_rate:
            reasons.append(f"error rate {worst:.2%} over {self.policy.rollback_error_rate:.2%}")
        if not reasons:
            watching.numbers.update(evidence)
            return watching
        reason = f"{name}@{s.version} regressed within the watch period: " + "; ".join(reasons)
        if dry_run:
            return Decision("rollback", reason, evidence, acted=False)
        state = rollback(name, models=self.models, reason=reason, actor=ACTOR, numbers=evidence)
        evidence["rolled_back_to"] = state.version
        self._alert(
            name,
            "rolled_back",
            reason + f"; production is {name}@{state.version} again",
            evidence,
            now,
        )
        return Decision("rollback", reason, evidence)

    def monitor_windows(
        self, name: str, version: int, *, before: dt.datetime, now: dt.datetime
    ) -> list[Any]:
        """The version's complete production windows (enough rows) within a watch period
        before `before`."""
        since = before - dt.timedelta(seconds=self.policy.watch_s)
        return [
            w
            for w in self.monitor.windows(name, version=version, since=since, now=now)
            if w.start + dt.timedelta(seconds=self.settings.window_s) <= before
            and w.rows >= self.monitor.drift_config_for(name).min_rows
        ]

    # ---- 4-5. shadow, canary, promote ------------------------------------------------------

    def _challenger(
        self, name: str, s: ModelStatus, now: dt.datetime, dry_run: bool, _retrain: bool
    ) -> Decision | None:
        aliases = self.models.aliases(name)
        canary = aliases.get("canary")
        if canary is not None and self.policy.canary_weights:
            return self._ramp(name, s, canary, now, dry_run)
        shadow = aliases.get("shadow")
        if shadow is None or s.shadow is None:
            return None
        cmp = s.shadow
        numbers = {
            k: cmp.get(k)
            for k in (
                "requests",
                "labels",
                "agreement",
                "metric",
                "difference",
                "improvement",
                "low",
                "high",
            )
        }
        numbers.update(shadow_version=shadow.version, production_version=s.version)
        set_at = [e for e in self.models.history(name) if e.alias == "shadow"]
        waited = (now - set_at[-1].time).total_seconds() if set_at else 0.0
        if (
            cmp["requests"] < self.policy.shadow_min_requests
            or cmp["labels"] < self.policy.shadow_min_labels
            or cmp.get("low") is None
        ):
            if waited > self.policy.shadow_max_wait_s:
                return self._reject(
                    name,
                    shadow.version,
                    f"the shadow was not judged within {self.policy.shadow_max_wait_s / 86400:g} days",
                    numbers,
                    dry_run,
                )
            return Decision(
                "wait",
                f"shadow {name}@{shadow.version}: {cmp['requests']} requests, {cmp['labels']} labels so far",
                numbers,
                acted=False,
            )
        if cmp["low"] > self.policy.margin:
            reason = (
                f"{name}@{shadow.version} beat {name}@{s.version} on {cmp['labels']} labelled shadow requests: "
                f"{cmp['metric']} better by {cmp['improvement']:.4f} (95% interval {cmp['low']:.4f} to {cmp['high']:.4f}, margin {self.policy.margin:g})"
            )
            if dry_run:
                return Decision("promote", reason, numbers, acted=False)
            if self.policy.canary_weights:
                promote(
                    name,
                    shadow.version,
                    "canary",
                    models=self.models,
                    datasets=self.datasets,
                    weight=self.policy.canary_weights[0],
                    reason=reason,
                    actor=ACTOR,
                    numbers=numbers,
                )
                self.models.delete_alias(name, "shadow", reason="moved on to canary", actor=ACTOR)
                return Decision("canary", reason, numbers)
            return self._promote(name, shadow.version, reason, numbers, now)
        if cmp["high"] is not None and cmp["high"] < self.policy.margin:
            return self._reject(
                name,
                shadow.version,
                f"{name}@{shadow.version} did not beat production: {cmp['metric']} interval {cmp['low']:.4f} to {cmp['high']:.4f}",
                numbers,
                dry_run,
            )
        if waited > self.policy.shadow_max_wait_s:
            return self._reject(
                name, shadow.version, "no clear winner within the wait", numbers, dry_run
            )
        return Decision(
            "wait",
            f"shadow {name}@{shadow.version}: no clear winner yet (interval {cmp['low']:.4f} to {cmp['high']:.4f})",
            numbers,
            acted=False,
        )

    def _promote(
        self, name: str, version: int, reason: str, numbers: dict[str, Any], now: dt.datetime
    ) -> Decision:
        try:
            _, checked = promote(
                name,
                version,
                "production",
                models=self.models,
                datasets=self.datasets,
                reason=reason,
                actor=ACTOR,
            )
        except GateFailedError as exc:
            self._cleanup(name, f"its gates failed at promotion: {exc}")
            self._alert(name, "promotion_refused", str(exc), numbers, now)
            return Decision("reject", str(exc), numbers)
        self._cleanup(name, f"promoted {name}@{version} to production")
        return Decision("promote", reason, {**numbers, **checked})

    def _cleanup(self, name: str, reason: str) -> None:
        aliases = self.models.aliases(name)
        for alias in ("shadow", "canary"):
            if alias in aliases:
                self.models.delete_alias(name, alias, reason=reason, actor=ACTOR)

    def _reject(
        self, name: str, version: int, reason: str, numbers: dict[str, Any], dry_run: bool
    ) -> Decision:
        if not dry_run:
            self._cleanup(name, reason)
            self._audit(name, "reject", reason, {**numbers, "version": version})
        return Decision("reject", reason, numbers, acted=not dry_run)

    def _ramp(
        self, name: str, s: ModelStatus, canary: Any, now: dt.datetime, dry_run: bool
    ) -> Decision:
        weights = self.policy.canary_weights
        canary_windows = self.monitor_windows(name, canary.version, before=now, now=now)
        errors = max((w.error_rate for w in canary_windows), default=0.0)
        numbers = {"canary_version": canary.version, "weight": canary.weight, "error_rate": errors}
        if errors > self.policy.rollback_error_rate:
            return self._reject(
                name, canary.version, f"canary error rate {errors:.2%}", numbers, dry_run
            )
        later = [w for w in weights if w > (canary.weight or 0.0)]
        if dry_run:
            return Decision(
                "canary", f"next weight {later[0] if later else 'promote'}", numbers, acted=False
            )
        if later:
            promote(
                name,
                canary.version,
                "canary",
                models=self.models,
                datasets=self.datasets,
                weight=later[0],
                reason=f"ramp to {later[0]:.0%}",
                actor=ACTOR,
                numbers=numbers,
            )
            return Decision(
                "canary", f"canary {name}@{canary.version} ramped to {later[0]:.0%}", numbers
            )
        return self._promote(
            name,
            canary.version,
            f"canary {name}@{canary.version} held through every weight",
            numbers,
            now,
        )

    # ---- 1-3. retrain -------------------------------------------------------------------------

    def _retrain(
        self, name: str, s: ModelStatus, now: dt.datetime, dry_run: bool, forced: bool
    ) -> Decision | None:
        if s.version is None:
            return None
        triggers = self.monitor.alerts.list(name, open_only=True, triggers_only=True)
        triggers += [a for a in self._previewed if a.trigger]  # a dry run's, never stored
        last = [e for e in self.models.db.events(f"model:{name}") if e["action"] == "loop.retrain"]
        since_last = (now - last[-1]["time"]).total_seconds() if last else float("inf")
        every = self.policy.retrain_every_s
        scheduled = every is not None and since_last >= every
        if not (triggers or scheduled or forced):
            return None
        if last and not forced and since_last < self.policy.retrain_cooldown_s:
            return Decision(
                "wait",
                f"retrain wanted but the last one was {since_last / 86400:.1f} days ago (cool-down {self.policy.retrain_cooldown_s / 86400:g} days)",
                {"last_retrain": last[-1]["time"].isoformat()},
                acted=False,
            )
        why = (
            "by hand"
            if forced
            else f"alert(s) {', '.join(sorted({a.rule for a in triggers}))}"
            if triggers
            else "schedule"
        )
        labelled_rows = sum(x["labels"] for x in s.live if x["role"] == "production")
        numbers: dict[str, Any] = {
            "trigger": why,
            "labelled_rows": labelled_rows,
            "production": s.version,
            "alerts": [a.id for a in triggers],
        }
        if labelled_rows < self.policy.min_new_labels:
            return Decision(
                "wait",
                f"retrain wanted ({why}) but only {labelled_rows} labelled rows of {self.policy.min_new_labels}",
                numbers,
                acted=False,
            )
        if dry_run:
            return Decision("retrain", f"would retrain ({why})", numbers, acted=False)
        since = now - dt.timedelta(days=self.policy.recent_days)
        result = run_retrain(
            self.settings, name, s.version, now=now, since=since,
            older_share=self.policy.older_share, timeout_s=self.policy.retrain_timeout_s,
        )  # fmt: skip
        self.monitor.alerts.handle([a.id for a in triggers if a.id is not None], now)
        numbers.update({k: v for k, v in result.items() if k != "trace"})
        if not result["ok"]:
            reason = f"retrain of {name} failed ({result['error']}); production {name}@{s.version} untouched"
            self._audit(name, "retrain", reason, numbers)
            self._alert(name, "retrain_failed", reason, numbers, now)
            return Decision("retrain", reason, numbers)
        if not result["passed"]:
            gates = ", ".join(g["name"] for g in result["failed_gates"])
            reason = f"the retrained candidate failed its gates ({gates}); production {name}@{s.version} untouched"
            self._audit(name, "retrain", reason, numbers)
            self._alert(name, "retrain_gates_failed", reason, numbers, now)
            return Decision("retrain", reason, numbers)
        version = int(result["version"])
        reason = f"retrained ({why}) on {result['dataset_version']}: {name}@{version} passed its gates; shadowing production"
        self._audit(name, "retrain", reason, numbers)
        try:
            promote(
                name,
                version,
                "shadow",
                models=self.models,
                datasets=self.datasets,
                reason=reason,
                actor=ACTOR,
                numbers=numbers,
            )
        except KeelError as exc:
            return Decision(
                "retrain", f"{reason}; but the shadow alias could not be set: {exc}", numbers
            )
        return Decision("shadow", reason, numbers)
