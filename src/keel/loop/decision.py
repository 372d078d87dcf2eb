"""What the loop does next, as a pure function of what it sees.

`decide(status, moves, policy, now)` reads no clock, no registry and no file: `status` is what
monitoring computed (the comparisons included), `moves` the model's alias moves and loop acts
from the audit log. The executor (`keel.loop.controller.Loop`) gathers both and carries the
decision out through the registry and `keel.train`. The first that applies wins:

1. watch: a production move within `watch_s` is watched; a regression rolls it back (a
   retrain may go ahead meanwhile: `retrain_while_watching`);
2. challenger: a canary ramps on; a shadow is judged (backtest, then its own labels) and
   promoted, sent to canary, rejected, or waited on; one that does not beat production may
   still refresh a drifted production (`refresh_margin`);
3. retrain: on a trigger alert, the schedule or by hand, after the cool-down and with labels;
4. none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.monitor import Backtest, VersionComparison
from keel.store import LoopPolicy

Action = Literal[
    "alerts", "retrain", "shadow", "promote", "canary", "reject", "rollback", "wait", "none"
]
_ACTS = frozenset({"retrain", "promote", "canary", "reject", "rollback"})


@dataclass(frozen=True, slots=True)
class Move:
    """An alias move (`alias.set`, `alias.rollback`, `alias.delete`) or a loop act
    (`loop.retrain`, `loop.reject`) of one model, from the audit log."""

    time: dt.datetime
    action: str
    alias: str | None = None
    version: int | None = None
    from_version: int | None = None

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            msg = f"Move.time {self.time!r} has no time zone; expected an aware datetime (UTC)"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ShadowFigures:
    """The shadow against production on the requests both answered."""

    requests: int
    labels: int
    agreement: float | None = None
    improvement: float | None = None
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True, slots=True)
class Situation:
    """What the loop sees of one model at one time: monitoring's figures, nothing to fetch."""

    model: str
    production: int | None
    metric: str = "roc_auc"
    labelled_rows: int = 0
    """Labelled rows production and canary answered over the lookback."""
    triggers: tuple[str, ...] = ()
    """Rules of the open alerts that trigger a retrain."""
    forced_retrain: bool = False
    shadow: int | None = None
    canary: int | None = None
    canary_weight: float | None = None
    canary_error_rate: float = 0.0
    shadow_figures: ShadowFigures | None = None
    backtest: Backtest | None = None
    watch: VersionComparison | None = None
    """The production version against the one it replaced, when a move is being watched."""
    drifted_since: dt.datetime | None = None
    """Where production's current input drift began (the first of the newest unbroken run of
    judged windows with drifted features); None when its newest judged window did not drift."""
    trained_until: dt.datetime | None = None
    """Where the challenger's training rows end."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One thing the loop decided, with its numbers; `version` and `weight` say what to move."""

    action: Action
    reason: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    acted: bool = True
    version: int | None = None
    weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "numbers": dict(self.numbers),
            "acted": self.acted,
        }


def decide(
    status: Situation,
    moves: Sequence[Move],
    policy: LoopPolicy,
    now: dt.datetime,
    *,
    dry_run: bool = False,
) -> Decision:
    """The loop's next act (or wait) on `status`. With `dry_run`, the same decision marked
    not acted (and a retrain worded as what it would do)."""
    for branch in (_watch, _challenger, _retrain):
        decision = branch(status, moves, policy, now)
        if decision is not None:
            break
    else:
        decision = Decision("none", "nothing to do", acted=False)
    if decision.action == "wait" and branch is _watch:
        decision = _retrain_while_watching(status, moves, policy, now) or decision
    if dry_run and decision.acted:
        reason = decision.reason
        if decision.action == "retrain":
            reason = "would " + reason
        return Decision(
            decision.action, reason, decision.numbers, False, decision.version, decision.weight
        )
    return decision


def _last(moves: Sequence[Move], alias: str) -> Move | None:
    return next((m for m in reversed(moves) if m.alias == alias), None)


# ---- 1. watch the new production ------------------------------------------------------


def _watch(s: Situation, moves: Sequence[Move], p: LoopPolicy, now: dt.datetime) -> Decision | None:
    move = _last(moves, "production")
    if (
        move is None
        or move.action != "alias.set"
        or move.from_version is None
        or s.production is None
        or (now - move.time).total_seconds() > p.watch_s
    ):
        return None
    w = s.watch
    numbers: dict[str, Any] = {"version": s.production, "previous": move.from_version}
    rows = w.rows if w is not None else 0
    numbers["rows"] = rows
    watching = f"watching {s.model}@{s.production} (production since {move.time:%Y-%m-%d %H:%M}, {rows} rows so far); no retrain or promotion meanwhile"
    if w is None or rows < p.min_watch_rows:
        return Decision("wait", watching, numbers, acted=False)
    numbers.update(w.to_json())
    reasons = []
    live = w.live
    if live is not None and live.low is not None and live.high is not None and live.high < 0:
        drop = -live.improvement
        if drop >= p.rollback_drop:
            reasons.append(
                f"live {w.metric} {live.second:.4f} is {drop:.4f} below the previous version's "
                f"{live.first:.4f} on the same {live.labels} labelled rows (95% {-live.high:.4f} to {-live.low:.4f} worse)"
            )
    if w.estimated_after is not None and w.estimated_before is not None:
        gap = w.estimated_before - w.estimated_after
        if gap >= p.rollback_estimated_drop:
            reasons.append(
                f"estimated {w.metric} {w.estimated_after:.4f} is {gap:.4f} below the previous version's {w.estimated_before:.4f}"
            )
    if w.error_rate > p.rollback_error_rate:
        reasons.append(f"error rate {w.error_rate:.2%} over {p.rollback_error_rate:.2%}")
    if not reasons:
        return Decision("wait", watching, numbers, acted=False)
    reason = f"{s.model}@{s.production} regressed within the watch period: " + "; ".join(reasons)
    return Decision("rollback", reason, numbers, version=move.from_version)


def _retrain_while_watching(
    s: Situation, moves: Sequence[Move], p: LoopPolicy, now: dt.datetime
) -> Decision | None:
    """With `retrain_while_watching`, a retrain due during a healthy watch goes ahead (its
    challenger is judged once the watch is over): training moves no alias."""
    if not p.retrain_while_watching or s.shadow is not None or s.canary is not None:
        return None
    d = _retrain(s, moves, p, now)
    if d is None or d.action != "retrain":
        return None
    reason = f"{d.reason}, while watching {s.model}@{s.production}"
    return Decision("retrain", reason, d.numbers, version=d.version)


# ---- 2. canary, shadow, backtest, promote ---------------------------------------------


def _challenger(
    s: Situation, moves: Sequence[Move], p: LoopPolicy, now: dt.datetime
) -> Decision | None:
    if s.canary is not None and p.canary_weights:
        return _ramp(s, p)
    if s.shadow is None or s.production is None:
        return None
    numbers = _challenger_numbers(s)
    since = _last(moves, "shadow")
    waited = (now - since.time).total_seconds() if since is not None else 0.0
    verdict = _judge_backtest(s, p, numbers) if p.judge == "backtest" else None
    if verdict is None:
        verdict = _judge_shadow(s, p)
    if verdict is not None:
        won, why = verdict
        if won:
            return _win(s, p, why, numbers)
        return Decision("reject", why, numbers, version=s.shadow)
    if waited > p.shadow_max_wait_s:
        return Decision(
            "reject",
            f"no clear winner within the wait ({p.shadow_max_wait_s / 86400:g} days)",
            numbers,
            version=s.shadow,
        )
    return Decision("wait", _waiting(s, p), numbers, acted=False)


def _challenger_numbers(s: Situation) -> dict[str, Any]:
    numbers: dict[str, Any] = {"shadow_version": s.shadow, "production_version": s.production}
    f = s.shadow_figures
    if f is not None:
        numbers.update(
            requests=f.requests, labels=f.labels, agreement=f.agreement,
            improvement=f.improvement, low=f.low, high=f.high, metric=s.metric,
        )  # fmt: skip
    if s.backtest is not None:
        numbers["backtest"] = s.backtest.to_json()
    return numbers


def _judge_backtest(
    s: Situation, p: LoopPolicy, numbers: dict[str, Any]
) -> tuple[bool, str] | None:
    """A verdict from the backtest, or None while it is not confident (or health is short)."""
    d = s.backtest.difference if s.backtest is not None else None
    if (
        d is None
        or d.low is None
        or d.high is None
        or d.labels < p.backtest_min_labels
        or d.minority < p.backtest_min_minority
    ):
        return None
    said = (
        f"{d.metric} {d.second:.4f} against production's {d.first:.4f} on {d.labels} labelled rows "
        f"it was not trained on ({d.minority} of the rarer class): better by {d.improvement:.4f}, "
        f"95% interval {d.low:.4f} to {d.high:.4f}, margin {p.margin:g}"
    )
    refresh = None if d.low > p.margin else _refreshes(s, p, d.low, d.improvement)
    if refresh is None:
        if d.high < p.margin:
            return (
                False,
                f"{s.model}@{s.shadow} did not beat {s.model}@{s.production} in the backtest: {said}",
            )
        if d.low <= p.margin:
            return None
    else:
        numbers["refresh"] = refresh
    f = s.shadow_figures
    requests = f.requests if f is not None else 0
    agreement = f.agreement if f is not None else None
    if requests < p.health_min_requests or (agreement is not None and agreement < p.min_agreement):
        numbers["health"] = "waiting"
        return None
    verdict = (
        f"beat {s.model}@{s.production} in the backtest"
        if refresh is None
        else f"refreshes {s.model}@{s.production}, {refresh}, and was no worse in the backtest"
    )
    return True, (
        f"{s.model}@{s.shadow} {verdict}: {said}; "
        f"as a shadow it answered {requests} requests"
        + ("" if agreement is None else f", agreeing on {agreement:.1%}")
    )


def _refreshes(s: Situation, p: LoopPolicy, low: float, improvement: float) -> str | None:
    """Why a challenger that does not beat production may still replace it (a drifted
    production, a challenger trained on the drifted rows, no worse: not below production on
    the backtest, and not by `refresh_margin` at the interval's lower bound), or None."""
    if (
        p.refresh_margin is None
        or s.drifted_since is None
        or s.trained_until is None
        or s.trained_until <= s.drifted_since
        or low <= -p.refresh_margin
        or improvement < 0
    ):
        return None
    return (
        f"whose inputs drift since {s.drifted_since:%Y-%m-%d %H:%M} (it learnt from rows "
        f"until {s.trained_until:%Y-%m-%d %H:%M})"
    )


def _judge_shadow(s: Situation, p: LoopPolicy) -> tuple[bool, str] | None:
    f = s.shadow_figures
    if (
        f is None
        or f.requests < p.shadow_min_requests
        or f.labels < p.shadow_min_labels
        or f.low is None
        or f.high is None
        or f.improvement is None
    ):
        return None
    if f.low > p.margin:
        return True, (
            f"{s.model}@{s.shadow} beat {s.model}@{s.production} on {f.labels} labelled shadow requests: "
            f"{s.metric} better by {f.improvement:.4f} (95% interval {f.low:.4f} to {f.high:.4f}, margin {p.margin:g})"
        )
    if f.high < p.margin:
        return False, (
            f"{s.model}@{s.shadow} did not beat production: {s.metric} interval {f.low:.4f} to {f.high:.4f}"
        )
    return None


def _waiting(s: Situation, p: LoopPolicy) -> str:
    f = s.shadow_figures
    d = s.backtest.difference if s.backtest is not None else None
    parts = [
        f"shadow {s.model}@{s.shadow}: {f.requests if f else 0} requests, {f.labels if f else 0} labels"
    ]
    if f is not None and f.low is not None and f.high is not None:
        parts.append(f"no clear winner yet (interval {f.low:.4f} to {f.high:.4f})")
    if p.judge == "backtest":
        if d is None or d.low is None or d.high is None:
            rows = s.backtest.rows if s.backtest is not None else 0
            parts.append(f"backtest on {rows} newer labelled rows: not enough yet")
        else:
            parts.append(
                f"backtest on {d.labels} rows ({d.minority} of the rarer class): {d.low:.4f} to {d.high:.4f}"
            )
    return "; ".join(parts)


def _win(s: Situation, p: LoopPolicy, reason: str, numbers: dict[str, Any]) -> Decision:
    if p.canary_weights:
        return Decision("canary", reason, numbers, version=s.shadow, weight=p.canary_weights[0])
    return Decision("promote", reason, numbers, version=s.shadow)


def _ramp(s: Situation, p: LoopPolicy) -> Decision:
    numbers = {
        "canary_version": s.canary,
        "weight": s.canary_weight,
        "error_rate": s.canary_error_rate,
    }
    if s.canary_error_rate > p.rollback_error_rate:
        return Decision(
            "reject", f"canary error rate {s.canary_error_rate:.2%}", numbers, version=s.canary
        )
    later = [w for w in p.canary_weights if w > (s.canary_weight or 0.0)]
    if later:
        return Decision(
            "canary",
            f"canary {s.model}@{s.canary} ramped to {later[0]:.0%}",
            numbers,
            version=s.canary,
            weight=later[0],
        )
    return Decision(
        "promote",
        f"canary {s.model}@{s.canary} held through every weight",
        numbers,
        version=s.canary,
    )


# ---- 3. retrain ----------------------------------------------------------------------------


def _retrain(
    s: Situation, moves: Sequence[Move], p: LoopPolicy, now: dt.datetime
) -> Decision | None:
    if s.production is None:
        return None
    last = next((m for m in reversed(moves) if m.action == "loop.retrain"), None)
    since_last = (now - last.time).total_seconds() if last is not None else float("inf")
    scheduled = p.retrain_every_s is not None and since_last >= p.retrain_every_s
    if not (s.triggers or scheduled or s.forced_retrain):
        return None
    if last is not None and not s.forced_retrain and since_last < p.retrain_cooldown_s:
        return Decision(
            "wait",
            f"retrain wanted but the last one was {since_last / 86400:.1f} days ago (cool-down {p.retrain_cooldown_s / 86400:g} days)",
            {"last_retrain": last.time.isoformat()},
            acted=False,
        )
    why = (
        "by hand"
        if s.forced_retrain
        else f"alert(s) {', '.join(sorted(set(s.triggers)))}"
        if s.triggers
        else "schedule"
    )
    numbers = {"trigger": why, "labelled_rows": s.labelled_rows, "production": s.production}
    if s.labelled_rows < p.min_new_labels:
        return Decision(
            "wait",
            f"retrain wanted ({why}) but only {s.labelled_rows} labelled rows of {p.min_new_labels}",
            numbers,
            acted=False,
        )
    return Decision("retrain", f"retrain ({why})", numbers, version=s.production)
