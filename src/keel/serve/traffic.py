"""The traffic policy: which loaded version answers a request, and which rows go where.

`production` answers; `canary` takes its weight of traffic (sticky by the request's key);
`production:VALUE` answers the rows whose segment column holds VALUE; `shadow` only listens
(`keel.serve.server` hands it a copy after the answer). A reference `name@role` or
`name@version` asks for one loaded version directly.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

from keel.serve.batching import MicroBatcher
from keel.serve.runtime import ModelRuntime, Prediction
from keel.store import ModelNotFoundError

ROLES = ("production", "canary", "shadow")
"""The aliases a server follows, besides the per-segment `production:VALUE` ones."""

Batcher = MicroBatcher[dict[str, Any], Prediction]


@dataclass
class Served:
    """What answers for one model name: a runtime and a batcher per role."""

    name: str
    runtimes: dict[str, ModelRuntime] = field(default_factory=dict)
    batchers: dict[str, Batcher] = field(default_factory=dict)
    canary_weight: float = 0.0

    @property
    def production(self) -> ModelRuntime:
        """The version that answers by default."""
        return self.runtimes["production"]

    def versions(self) -> dict[str, int]:
        """The version loaded for each role."""
        return {role: rt.resolved.version for role, rt in self.runtimes.items()}


def choose(served: Served, ref: str, key: str | None) -> tuple[str, ModelRuntime, Batcher]:
    """The role, runtime and batcher that answer a request for `ref` (`name`, `name@role` or
    `name@version`); `key` keeps a caller on the same side of a canary split.

    Raises:
        ModelNotFoundError: `ref` names a role or version that is not loaded.
    """
    _, _, which = ref.partition("@")
    if which:
        for role, rt in served.runtimes.items():
            if which in (role, str(rt.resolved.version)):
                return role, rt, served.batchers[role]
        loaded = ", ".join(f"{r}={v}" for r, v in served.versions().items())
        msg = f"{ref!r} is not loaded; loaded: {loaded}."
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


def by_segment(
    served: Served, runtime: ModelRuntime, role: str, rows: list[Any]
) -> dict[str, list[int]] | None:
    """Row indices per role when some rows' segment has a model of its own, else None."""
    seg = runtime.segment
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        value = row.get(seg) if isinstance(row, dict) else None
        target = f"production:{value}" if value is not None else role
        groups.setdefault(target if target in served.runtimes else role, []).append(i)
    return None if list(groups) == [role] else groups


def routes_by_segment(served: Served, runtime: ModelRuntime, ref: str) -> bool:
    """Whether a request for `ref` may be split by segment: it names no version, the version
    has a segment column, and more than one version is loaded."""
    return "@" not in ref and runtime.segment is not None and len(served.runtimes) > 1
