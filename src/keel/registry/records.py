"""What the registry hands out about model versions and aliases: typed, frozen records."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from keel.registry.serialization import FORMAT
from keel.store import ConfigError, as_utc


def _refuse(kind: str, name: str, value: Any, expected: str) -> NoReturn:
    msg = f"{kind} field {name!r} is {value!r}; expected {expected}."
    raise ConfigError(msg)


def _check_version(kind: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _refuse(kind, "version", value, "a version number (a whole number from 1)")


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered model version.

    `spec`, `evaluation` and `lineage` are the JSON of the version's stored columns; the
    training layer gives them meaning (`keel.train.report_of(version)` reads the evaluation
    as a typed `EvaluationReport`).
    """

    name: str
    version: int
    created_at: dt.datetime
    artifact_sha256: str
    artifact_uri: str
    artifact_size: int
    trusted_types: list[str]
    contract_sha256: str
    dataset_version: str | None
    spec: dict[str, Any]
    evaluation: dict[str, Any]
    lineage: dict[str, Any]
    card_sha256: str | None
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_version("ModelVersion", self.version)
        if not isinstance(self.created_at, dt.datetime) or self.created_at.tzinfo is None:
            _refuse("ModelVersion", "created_at", self.created_at, "a timezone-aware datetime")
        for name in ("spec", "evaluation", "lineage"):
            if not isinstance(getattr(self, name), dict):
                _refuse("ModelVersion", name, getattr(self, name), "a JSON object (dict)")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def format(self) -> str:
        """How the artifact is stored: "skops", or a container format ("xgboost", ...)."""
        return str(self.lineage.get("artifact_format", FORMAT))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["aliases"] = list(self.aliases)
        out["format"] = self.format
        out["sha256"] = self.artifact_sha256  # the name scripts look for
        return out


@dataclass(frozen=True)
class ResolvedVersion:
    """What an alias points at, without the version's evaluation: the cheap answer a server
    polling for alias moves needs."""

    name: str
    version: int
    artifact_sha256: str
    artifact_uri: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AliasState:
    """Where an alias points now."""

    alias: str
    version: int
    weight: float | None
    revision: int

    def __post_init__(self) -> None:
        _check_version("AliasState", self.version)
        weight = self.weight
        if weight is not None and (
            isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 < weight <= 1
        ):
            _refuse("AliasState", "weight", weight, "None or a share of traffic in (0, 1]")


def version_from_row(row: Any, aliases: tuple[str, ...]) -> ModelVersion:
    data = dict(row)
    data["created_at"] = as_utc(data["created_at"])
    return ModelVersion(**data, aliases=aliases)
