"""The dashboard's admin actions: promote, roll back, set a canary.

Each calls the same function as the command line and the HTTP API (`keel.train.promote`, with
its gates for production; `keel.train.rollback`), with the reason the person gave and actor
`dashboard`, so it lands in the audit log; under `keel serve`, `verify` loads the version
before the alias moves. keel.train is imported on the first action, in the worker thread: it
pulls SHAP, numba and matplotlib (3 s), which the pages never need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ConfigError

Verify = Callable[[str, str, int], None]


@dataclass(frozen=True, slots=True)
class Actions:
    """The actions over one registry; each takes the model, the request's body and the
    reason, and returns the sentence the page shows."""

    models: ModelStore
    datasets: DatasetStore
    verify: Verify | None = None

    def promote(self, name: str, body: dict[str, Any], reason: str) -> str:
        """Move production to `body["version"]` (its gates re-run against production)."""
        from keel.train import promote

        version = _field(body, "version", int, "a version number")
        promote(
            name,
            version,
            "production",
            models=self.models,
            datasets=self.datasets,
            reason=reason,
            actor="dashboard",
            verify=self.verify,
        )
        return f"{name}@{version} is production."

    def rollback(self, name: str, _body: dict[str, Any], reason: str) -> str:
        """Move production back to its previous version."""
        from keel.train import rollback

        state = rollback(
            name, models=self.models, reason=reason, actor="dashboard", verify=self.verify
        )
        return f"production of {name} rolled back to v{state.version}."

    def canary(self, name: str, body: dict[str, Any], reason: str) -> str:
        """Give `body["version"]` the share `body["weight"]` of traffic as canary."""
        version = _field(body, "version", int, "a version number")
        weight = _field(body, "weight", float, "a share of traffic between 0 and 1")
        if not 0 < weight <= 1:
            msg = f"Field 'weight' is {weight!r}; expected a share of traffic between 0 and 1 (0.1 is 10 %)."
            raise ConfigError(msg)
        from keel.train import promote

        promote(
            name,
            version,
            "canary",
            models=self.models,
            datasets=self.datasets,
            weight=weight,
            reason=reason,
            actor="dashboard",
            verify=self.verify,
        )
        return f"{name}@{version} takes {weight:.0%} of traffic as canary."


def _field(body: dict[str, Any], name: str, kind: type[Any], expected: str) -> Any:
    """A number from an action's body, or an error naming the field, value and need."""
    value = body.get(name)
    try:
        if value is None or isinstance(value, bool):
            raise ValueError(value)
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError(value)
    except (TypeError, ValueError, OverflowError):
        msg = f"Field {name!r} is {value!r}; expected {expected}."
        raise ConfigError(msg) from None
    return number
