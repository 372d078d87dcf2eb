"""Training specs: YAML that names an estimator, its parameters, the split and the gates."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from keel.store import ConfigError, SourceError

_KEYS = {
    "name",
    "estimator",
    "params",
    "task",
    "target",
    "positive_label",
    "features",
    "split",
    "seed",
    "gates",
    "cost",
}


@dataclass(frozen=True)
class Split:
    """How the holdout is cut: the most recent slice by time, stratified random, or by group."""

    method: Literal["time", "random", "group"] | None = None  # None: time when there is a timestamp
    test_size: float = 0.2
    group: str | None = None


@dataclass(frozen=True)
class TrainSpec:
    """One candidate: an estimator and how to train, judge and price it."""

    estimator: str
    params: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    task: Literal["classification", "regression"] | None = None
    target: str | None = None
    positive_label: Any = None
    features: tuple[str, ...] | None = None
    split: Split = field(default_factory=Split)
    seed: int = 0
    gates: tuple[str, ...] = ()
    cost: dict[str, float] = field(default_factory=lambda: {"cpu_hour_usd": 0.05})

    @property
    def label(self) -> str:
        return self.name or self.estimator.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features) if self.features is not None else None
        out["gates"] = list(self.gates)
        return out

    def make_estimator(self) -> Any:
        """Import and build the estimator with its params (and the seed, where it takes one)."""
        module, _, attr = self.estimator.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            msg = f"Spec estimator {self.estimator!r} cannot be imported ({exc}); expected an import path like 'sklearn.ensemble.HistGradientBoostingClassifier'."
            raise ConfigError(msg) from exc
        params = dict(self.params)
        try:
            est = cls(**params)
        except TypeError as exc:
            msg = f"Spec params {params} do not fit {self.estimator}: {exc}."
            raise ConfigError(msg) from exc
        if "random_state" in est.get_params() and "random_state" not in params:
            est.set_params(random_state=self.seed)
        if type(est).__module__.startswith("catboost"):
            # CatBoost lists only the parameters given; by default it writes a catboost_info/
            # folder into the working directory and logs every iteration
            defaults = {"random_seed": self.seed, "allow_writing_files": False, "verbose": False}
            aliases = {"random_seed": "random_state", "verbose": "logging_level"}
            est.set_params(
                **{
                    k: v
                    for k, v in defaults.items()
                    if k not in params and aliases.get(k) not in params
                }
            )
        return est


def spec_from_dict(data: Any, *, where: str = "spec") -> TrainSpec:
    if not isinstance(data, dict) or "estimator" not in data:
        msg = f"{where} is {data!r}; expected a mapping with at least 'estimator'."
        raise ConfigError(msg)
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        msg = f"{where} has unknown key(s) {unknown}; expected some of {sorted(_KEYS)}."
        raise ConfigError(msg)
    task = data.get("task")
    if task not in (None, "classification", "regression"):
        msg = f"{where}: task is {task!r}; expected 'classification' or 'regression'."
        raise ConfigError(msg)
    raw_split = data.get("split") or {}
    if not isinstance(raw_split, dict) or raw_split.get("method") not in (
        None,
        "time",
        "random",
        "group",
    ):
        msg = f"{where}: split is {raw_split!r}; expected {{method: time|random|group, test_size: 0.2}}."
        raise ConfigError(msg)
    split = Split(
        raw_split.get("method"), float(raw_split.get("test_size", 0.2)), raw_split.get("group")
    )
    if not 0 < split.test_size < 1:
        msg = f"{where}: split.test_size is {split.test_size}; expected a share between 0 and 1."
        raise ConfigError(msg)
    if split.method == "group" and not split.group:
        msg = f"{where}: a group split needs split.group, the column whose values must not straddle train and holdout."
        raise ConfigError(msg)
    gates = data.get("gates") or []
    if not isinstance(gates, list) or not all(isinstance(g, str) for g in gates):
        msg = f"{where}: gates is {gates!r}; expected a list like ['holdout.roc_auc >= 0.75']."
        raise ConfigError(msg)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        msg = f"{where}: params is {params!r}; expected a mapping of estimator arguments."
        raise ConfigError(msg)
    features = data.get("features")
    return TrainSpec(
        estimator=str(data["estimator"]),
        params=params,
        name=data.get("name"),
        task=task,
        target=data.get("target"),
        positive_label=data.get("positive_label"),
        features=tuple(features) if features is not None else None,
        split=split,
        seed=int(data.get("seed", 0)),
        gates=tuple(gates),
        cost={"cpu_hour_usd": 0.05, **(data.get("cost") or {})},
    )


def load_spec(path: str | Path) -> TrainSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        msg = f"Spec file {str(path)!r} does not exist; expected a YAML file with at least 'estimator'."
        raise SourceError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"Spec file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}."
        raise ConfigError(msg) from exc
    spec = spec_from_dict(data, where=f"spec {str(path)!r}")
    return spec if spec.name else TrainSpec(**{**spec.__dict__, "name": path.stem})
