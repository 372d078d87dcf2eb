"""Promotion: the one path by which an alias moves, for the CLI, the HTTP API, the dashboard and
the loop alike.

`promote` moves any alias. Moving `production` re-runs the version's gates against the current
production version first (or, when there is none yet, reads the gates it passed when it was
trained); `force` skips that and needs a reason, and the audit event records `forced`. The
canary alias takes a weight in (0, 1]; every move checks that the version exists. `rollback`
moves production back through the same checks and the same audit. Both take a `verify`
callback that runs after the argument checks, before the gates and the move: a server passes
one that loads the version the way it would serve it, so a version it would refuse never
becomes an alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from keel.data import DatasetStore
from keel.registry import (
    AliasState,
    ModelStore,
    check_model_name,
    check_move,
    check_reason,
    says_something,
)
from keel.store import ConfigError, GateFailedError
from keel.train.evaluation import vs_production
from keel.train.gates import check_gates
from keel.train.metrics import score
from keel.train.prepare import outputs, prepare
from keel.train.report import EvaluationReport, GateResult, report_of
from keel.train.spec import spec_from_dict

Verify = Callable[[str, str, int], None]
"""`verify(name, alias, version)`: raise a KeelError to stop a move before it is made."""


class PromotionRefusedError(GateFailedError):
    """Raised when production is not moved to a version: a gate failed against production, or
    its gates cannot be re-checked. `details` names the gate, the value and the threshold."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


def promote(
    name: str,
    version: int,
    to: str,
    *,
    models: ModelStore,
    datasets: DatasetStore,
    reason: str | None = None,
    force: bool = False,
    weight: float | None = None,
    actor: str = "user",
    numbers: dict[str, Any] | None = None,
    verify: Verify | None = None,
) -> tuple[AliasState, dict[str, Any]]:
    """Point alias `to` at `name@version`, after the checks its alias needs.

    Moving `production` to another version re-runs the version's gates with `vs_production`
    measured afresh: the candidate and the current production version scored on the same
    holdout of the candidate's dataset version. With no production yet, the gates it passed
    at training are read instead. `force` skips both and needs a reason. The figures (and
    `forced`) go to the audit log with `numbers`, the caller's own evidence.

    Returns:
        Where the alias points now, and the figures of the gate re-check (empty when none ran).

    Raises:
        ConfigError: a wrong argument (unknown alias, version not a number, a weight outside
            (0, 1] or on an alias other than canary, a force without a reason).
        PromotionRefusedError: a gate failed or cannot be checked; production was not moved.
        ModelNotFoundError: no such model or version.
        ConflictError: the alias moved while the gates ran; nothing was changed.
    """
    check_model_name(name)
    weight = check_move(to, version, weight=weight, reason=reason)
    if force and not says_something(reason):
        msg = f'A forced promotion of {name}@{version} needs a reason: add --reason \'...\' (HTTP: "reason": "...").'
        raise ConfigError(msg)
    candidate = models.get(f"{name}@{version}")
    current = models.aliases(name).get(to)
    if verify is not None:  # a version that would not be served is not worth gating
        verify(name, to, version)
    checked: dict[str, Any] = {}
    if to == "production" and not force and (current is None or current.version != version):
        if current is None:
            checked = _stored_gates(name, version, report_of(candidate))
        else:
            checked = _recheck(
                name, candidate.version, current.version, models=models, datasets=datasets
            )
    state = models.set_alias(
        name,
        to,
        version,
        reason=reason or ("forced" if force else None),
        actor=actor,
        weight=weight,
        expected=current.version if current else None,
        numbers={**(numbers or {}), "forced": force, **checked},
    )
    return state, checked


def rollback(
    name: str,
    *,
    models: ModelStore,
    reason: str | None = None,
    actor: str = "user",
    numbers: dict[str, Any] | None = None,
    verify: Verify | None = None,
) -> AliasState:
    """Move production back to the version before the current one, audited as `alias.rollback`.

    No gate is re-run: the version going back was production before, and a rollback is the
    way out of a regression that must not wait on a holdout. `verify` runs before the move.

    Raises:
        ModelNotFoundError: there is no earlier production version.
        ConflictError: production moved meanwhile; nothing was changed.
    """
    check_model_name(name)
    check_reason(reason)
    _current, previous = models.rollback_target(name)
    if verify is not None:
        verify(name, "production", previous)
    return models.rollback(name, reason=reason, actor=actor, numbers=numbers)


def _refused(
    name: str, version: int, gate: GateResult, production: int | None, against: str
) -> PromotionRefusedError:
    value = gate.value if gate.value is None else round(gate.value, 6)
    msg = (
        f"Model {name!r} version {version} failed gate '{gate.name}' {against}: "
        f"got {value}, threshold {gate.op} {gate.threshold:g}. "
        "Production was not moved; override with --force --reason '...' "
        '(HTTP: "force": true, "reason": "...").'
    )
    return PromotionRefusedError(
        msg,
        {
            "gate": gate.name,
            "value": value,
            "op": gate.op,
            "threshold": gate.threshold,
            "version": version,
            "production_version": production,
        },
    )


def _stored_gates(name: str, version: int, evaluation: EvaluationReport) -> dict[str, Any]:
    """With no production to measure against: the gates the version passed at training."""
    for g in evaluation.gates:
        if not g.passed:
            result = GateResult(g.name, g.value, g.threshold, g.op, False)
            raise _refused(name, version, result, None, "when it was trained")
    return {"production_version": None}


def _recheck(
    name: str, version: int, production: int, *, models: ModelStore, datasets: DatasetStore
) -> dict[str, Any]:
    cand_v, cand_pipe = models.load(f"{name}@{version}")
    prod_v, prod_pipe = models.load(f"{name}@{production}")
    if cand_v.dataset_version is None:
        msg = (
            f"{name}@{version} has no dataset version to re-check its gates on; production "
            "was not moved. Promote with --force --reason '...' (HTTP: \"force\": true, "
            '"reason": "...").'
        )
        raise PromotionRefusedError(
            msg,
            {
                "gate": None,
                "value": None,
                "threshold": None,
                "version": version,
                "production_version": production,
                "expected": "a version trained or imported with a dataset version",
            },
        )
    spec = spec_from_dict(cand_v.spec)
    frame = datasets.load(cand_v.dataset_version)
    prep = prepare(frame, models.contract(cand_v.ref), spec)
    x = prep.x.iloc[prep.test_idx]
    holdout = score(prep.task, prep.y[prep.test_idx], outputs(cand_pipe, x, prep.task))
    vs = vs_production(prep, (prod_pipe, report_of(prod_v)), holdout)
    report = replace(report_of(cand_v), metrics=holdout, vs_production=vs)
    results = check_gates(spec.gates, report)
    failed = [g for g in results if not g.passed]
    if failed:
        raise _refused(
            name, version, failed[0], production, f"against production version {production}"
        )
    return {
        "vs_production": vs,
        "gates": [g.to_dict() for g in results],
        "production_version": production,
    }
