"""Promotion: moving an alias to a version, re-checking its gates against production first."""

from __future__ import annotations

from typing import Any

from keel.data import DatasetStore
from keel.registry import AliasState, ModelStore
from keel.store import ConfigError, GateFailedError, ModelNotFoundError
from keel.train.gates import check_gates
from keel.train.metrics import score
from keel.train.spec import spec_from_dict
from keel.train.trainer import _outputs, _vs_production, prepare


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
) -> tuple[AliasState, dict[str, Any]]:
    """Point alias `to` at `name@version`.

    Moving `production` re-runs the version's gates with `vs_production` measured afresh: the
    candidate and the current production version scored on the same holdout of the candidate's
    dataset version. `force` skips that and needs a reason. The figures go to the audit log.

    Raises:
        GateFailedError: a gate failed; production was not moved.
        ConflictError: production moved while the gates ran; nothing was changed.
    """
    if force and not reason:
        msg = f"A forced promotion of {name}@{version} needs a reason: add --reason '...'."
        raise ConfigError(msg)
    candidate = models.get(f"{name}@{version}")
    current = models.aliases(name).get(to)
    numbers: dict[str, Any] = {}
    if to == "production" and not force and current is not None and current.version != version:
        numbers = _recheck(
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
        numbers={"forced": force, **numbers},
    )
    return state, numbers


def _recheck(
    name: str, version: int, production: int, *, models: ModelStore, datasets: DatasetStore
) -> dict[str, Any]:
    cand_v, cand_pipe = models.load(f"{name}@{version}")
    prod_v, prod_pipe = models.load(f"{name}@{production}")
    if cand_v.dataset_version is None:
        msg = f"{name}@{version} has no dataset version to re-check its gates on; promote with --force --reason."
        raise ModelNotFoundError(msg)
    spec = spec_from_dict(cand_v.spec)
    frame = datasets.load(cand_v.dataset_version)
    prep = prepare(frame, models.contract(cand_v.ref), spec)
    x = prep.x.iloc[prep.test_idx]
    holdout = score(prep.task, prep.y[prep.test_idx], _outputs(cand_pipe, x, prep.task))
    vs = _vs_production(prep, (prod_pipe, prod_v.evaluation), holdout)
    report = {**cand_v.evaluation, "metrics": holdout, "vs_production": vs}
    results = check_gates(spec.gates, report)
    failed = [g for g in results if not g.passed]
    if failed:
        g = failed[0]
        msg = (
            f"Model {name!r} version {version} failed gate '{g.name}' against production version {production}: "
            f"got {g.value if g.value is None else round(g.value, 6)}, threshold {g.op} {g.threshold:g}. "
            f"Production was not moved; override with --force --reason '...'."
        )
        raise GateFailedError(msg)
    return {
        "vs_production": vs,
        "gates": [g.to_dict() for g in results],
        "production_version": production,
    }
