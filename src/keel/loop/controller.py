"""The controller's executor: look (monitoring computes), decide (`keel.loop.decision`, a pure
function), act through the registry and `keel.train` (the one promotion path, with its gates
and audit). Every act lands in the audit log (actor `loop`) with the numbers that decided it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keel.data import DatasetStore
from keel.loop.decision import Decision, Move, ShadowFigures, Situation, decide
from keel.loop.lease import Lease
from keel.loop.retrain import run_retrain
from keel.monitor import Alert, ModelStatus, Monitor
from keel.registry import ModelStore
from keel.store import GateFailedError, KeelError, LoopPolicy, Settings
from keel.train import promote, rollback

ACTOR = "loop"


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
        self.policy = policy or settings.loop
        self.monitor = monitor or Monitor(settings, models, clock=models.db.clock)

    def step(
        self,
        name: str,
        *,
        now: dt.datetime | None = None,
        dry_run: bool = False,
        retrain: bool = False,
    ) -> list[Decision]:
        """Check alerts, then decide once and act on it. Holds the model's lease."""
        now = now or self.models.db.clock.now()
        lease = Lease(self.models.db, f"loop:{name}", ttl_s=self.policy.lease_ttl_s)
        with lease.held():
            decisions: list[Decision] = []
            # the per-segment figures (bootstrap intervals per segment) are for people: no
            # rule and no decision reads them
            status = self.monitor.status(name, now=now, segments=False)
            # a dry run evaluates the rules too (stores and sends nothing): what it says it
            # would do is what a real step would, alerts it would fire included
            fired = (
                self.monitor.preview(name, status, now=now)
                if dry_run
                else self.monitor.fire(name, status, now=now)
            )
            if fired:
                decisions.append(
                    Decision(
                        "alerts",
                        f"{'would fire ' if dry_run else ''}{len(fired)} alert(s): "
                        + ", ".join(a.rule for a in fired),
                        {"alerts": [a.to_json() for a in fired]},
                        acted=False,
                    )
                )
            moves = self.moves(name)
            previewed = [a for a in fired if a.trigger] if dry_run else []
            seen = self.observe(name, status, moves, now, previewed=previewed, retrain=retrain)
            decision = decide(seen, moves, self.policy, now, dry_run=dry_run)
            decisions.append(decision if not decision.acted else self._act(name, decision, now))
            if decision.acted:  # each act, whole, for the `loop_decision` webhook (keel.hooks)
                done = decisions[-1]
                figures = {
                    "decision": done.action,
                    "version": done.version,
                    "numbers": dict(done.numbers),
                }
                self._audit(name, "decision", done.reason, figures)
            return decisions

    # ---- look -------------------------------------------------------------------------------

    def moves(self, name: str) -> list[Move]:
        """The model's alias moves and loop acts, oldest first."""
        out = []
        for e in self.models.audit(name):
            if e.action.startswith(("alias.", "loop.")):
                out.append(
                    Move(
                        time=e.time,
                        action=e.action,
                        alias=e.alias,
                        version=e.version,
                        from_version=e.from_version,
                    )
                )
        return out

    def observe(
        self,
        name: str,
        status: ModelStatus,
        moves: list[Move],
        now: dt.datetime,
        *,
        previewed: list[Alert] | None = None,
        retrain: bool = False,
    ) -> Situation:
        """What `decide` needs: the status's figures and the comparisons monitoring makes of
        the versions in play (a shadow's backtest, a watched move's before and after)."""
        aliases = self.models.aliases(name)
        shadow, canary = aliases.get("shadow"), aliases.get("canary")
        triggers = self.monitor.alerts.list(name, open_only=True, triggers_only=True)
        figures = None
        if status.shadow is not None:
            s = status.shadow
            figures = ShadowFigures(s.requests, s.labels, s.agreement, s.improvement, s.low, s.high)
        backtest = None
        trained_until = None
        if shadow is not None:
            trained = self.models.get(f"{name}@{shadow.version}").created_at
            logged_after = self._trained_until(name, shadow.version)
            trained_until = logged_after or trained
        if shadow is not None and status.version is not None and self.policy.judge == "backtest":
            backtest = self.monitor.backtest(
                name, shadow.version, status.version, labelled_after=trained, now=now,
                missing_label=self.policy.missing_label, logged_after=logged_after,
            )  # fmt: skip
        watch = None
        move = next((m for m in reversed(moves) if m.alias == "production"), None)
        if (
            move is not None
            and move.action == "alias.set"
            and move.from_version is not None
            and move.version is not None
            and move.version == status.version
            and (now - move.time).total_seconds() <= self.policy.watch_s
        ):
            watch = self.monitor.compare_versions(
                name, move.from_version, move.version, move.time, now=now
            )
        canary_error = 0.0
        if canary is not None:
            windows = self.monitor.windows(
                name, version=canary.version, since=now - dt.timedelta(seconds=self.policy.watch_s), now=now
            )  # fmt: skip
            canary_error = max((w.error_rate for w in windows if w.complete), default=0.0)
        return Situation(
            model=name,
            production=status.version,
            metric=status.metric,
            labelled_rows=sum(x.labels for x in status.live if x.role == "production"),
            triggers=tuple(a.rule for a in [*triggers, *(previewed or [])]),
            forced_retrain=retrain,
            shadow=None if shadow is None else shadow.version,
            canary=None if canary is None else canary.version,
            canary_weight=None if canary is None else canary.weight,
            canary_error_rate=canary_error,
            shadow_figures=figures,
            backtest=backtest,
            watch=watch,
            drifted_since=drifted_since(status),
            trained_until=trained_until,
        )

    def _trained_until(self, name: str, version: int) -> dt.datetime | None:
        """Where a retrain's training rows stopped (its backtest holdout starts), from the
        retrain's audit event; None: it learnt from every row up to its training."""
        for e in reversed(self.models.audit(name)):
            if e.action == "loop.retrain" and e.details.get("version") == version:
                until = e.details.get("trained_until")
                return dt.datetime.fromisoformat(until) if isinstance(until, str) else None
        return None

    # ---- act --------------------------------------------------------------------------------

    def _act(self, name: str, d: Decision, now: dt.datetime) -> Decision:
        if d.action == "retrain":
            return self._retrain(name, d, now)
        assert d.version is not None  # decide names the version of every act
        if d.action == "rollback":
            numbers = dict(d.numbers)
            state = rollback(
                name, models=self.models, reason=d.reason, actor=ACTOR, numbers=numbers
            )
            numbers["rolled_back_to"] = state.version
            self._alert(name, "rolled_back", f"{d.reason}; production is {name}@{state.version} again", numbers, now)  # fmt: skip
            return Decision("rollback", d.reason, numbers, version=d.version)
        if d.action == "reject":
            self._cleanup(name, d.reason)
            self._audit(name, "reject", d.reason, {**d.numbers, "version": d.version})
            return d
        if d.action == "canary":
            promote(
                name, d.version, "canary", models=self.models, datasets=self.datasets,
                weight=d.weight, reason=d.reason, actor=ACTOR, numbers=dict(d.numbers),
            )  # fmt: skip
            if "shadow" in self.models.aliases(name):
                self.models.delete_alias(name, "shadow", reason="moved on to canary", actor=ACTOR)
            return d
        return self._promote(name, d, now)

    def _promote(self, name: str, d: Decision, now: dt.datetime) -> Decision:
        assert d.version is not None
        try:
            _, checked = promote(
                name, d.version, "production", models=self.models, datasets=self.datasets,
                reason=d.reason, actor=ACTOR, numbers=dict(d.numbers),
            )  # fmt: skip
        except GateFailedError as exc:
            self._cleanup(name, f"its gates failed at promotion: {exc}")
            self._alert(name, "promotion_refused", str(exc), dict(d.numbers), now)
            return Decision("reject", str(exc), d.numbers, version=d.version)
        self._cleanup(name, f"promoted {name}@{d.version} to production")
        return Decision("promote", d.reason, {**d.numbers, **checked}, version=d.version)

    def _retrain(self, name: str, d: Decision, now: dt.datetime) -> Decision:
        production = d.version
        assert production is not None
        triggers = self.monitor.alerts.list(name, open_only=True, triggers_only=True)
        numbers: dict[str, Any] = {**d.numbers, "alerts": [a.id for a in triggers]}
        holdout = self.policy.backtest_holdout_days
        until = now - dt.timedelta(days=holdout) if holdout else None
        since = (until or now) - dt.timedelta(days=self.policy.recent_days)
        if until is not None:
            numbers["trained_until"] = until.isoformat()
        result = run_retrain(
            self.settings, name, production, now=now, since=since,
            older_share=self.policy.older_share, timeout_s=self.policy.retrain_timeout_s,
            missing_label=self.policy.missing_label, until=until, refit=self.policy.refit,
            half_life=self.policy.recency_half_life_days,
        )  # fmt: skip
        self.monitor.alerts.handle([a.id for a in triggers if a.id is not None], now)
        numbers.update(result.to_json())
        why = str(d.numbers.get("trigger", ""))
        if not result.ok:
            reason = f"retrain of {name} failed ({result.error}); production {name}@{production} untouched"
            return self._retrain_failed(name, reason, "retrain_failed", numbers, now)
        if not result.passed:
            gates = ", ".join(result.failed_gates)
            reason = f"the retrained candidate failed its gates ({gates}); production {name}@{production} untouched"
            return self._retrain_failed(name, reason, "retrain_gates_failed", numbers, now)
        version = result.version
        assert version is not None
        reason = f"retrained ({why}) on {result.dataset_version}: {name}@{version} passed its gates; shadowing production"
        self._audit(name, "retrain", reason, numbers)
        try:
            promote(
                name, version, "shadow", models=self.models, datasets=self.datasets,
                reason=reason, actor=ACTOR, numbers=numbers,
            )  # fmt: skip
        except KeelError as exc:
            return Decision(
                "retrain", f"{reason}; but the shadow alias could not be set: {exc}", numbers
            )
        return Decision("shadow", reason, numbers, version=version)

    def _retrain_failed(
        self, name: str, reason: str, rule: str, numbers: dict[str, Any], now: dt.datetime
    ) -> Decision:
        self._audit(name, "retrain", reason, numbers)
        self._alert(name, rule, reason, numbers, now)
        return Decision("retrain", reason, numbers)

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

    def _cleanup(self, name: str, reason: str) -> None:
        aliases = self.models.aliases(name)
        for alias in ("shadow", "canary"):
            if alias in aliases:
                self.models.delete_alias(name, alias, reason=reason, actor=ACTOR)


def drifted_since(status: ModelStatus, *, windows: int = 2) -> dt.datetime | None:
    """Where production's current input drift began: the start of the first window of the
    newest unbroken run of judged windows with drifted features, when that run holds at least
    `windows` windows (one drifted day is noise as often as news); otherwise None."""
    run = []
    for w in reversed(status.judged_windows()):
        if not w.drifted:
            break
        run.append(w.start)
    return run[-1] if len(run) >= windows else None
