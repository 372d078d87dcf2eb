"""Training specs: YAML that names an estimator, its parameters, the split and the gates."""

from __future__ import annotations

import importlib
import itertools
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
    "min_group_rows",
    "min_group_minority",
    "fairness",
    "recency_half_life_days",
}

DEFAULT_MIN_GROUP_ROWS = 30
DEFAULT_QUANTILE_BANDS = 4


@dataclass(frozen=True)
class Split:
    """How the holdout is cut: the most recent slice by time, stratified random, or by group."""

    method: Literal["time", "random", "group"] | None = None  # None: time when there is a timestamp
    test_size: float = 0.2
    group: str | None = None
    refit: bool = False
    """After the holdout has judged the model, fit it again on every row (holdout included)
    and register that: the holdout's figures then estimate it (a little pessimistically).
    With a time split, the registered model learns from the newest rows too; the loop's
    retrains use it, their backtest judging them on rows they never saw."""


@dataclass(frozen=True)
class Bands:
    """How a numeric sensitive column is cut into groups for fairness.

    `edges` are the lower edges of the bands, ascending (`[0, 25, 45, 65]` gives `[0, 25)`,
    `[25, 45)`, `[45, 65)` and `>= 65`; values below the first edge make a band of their own).
    Without edges, the column is cut at its quantiles into `quantiles` bands.
    """

    edges: tuple[float, ...] | None = None
    quantiles: int = DEFAULT_QUANTILE_BANDS


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
    min_group_rows: int = DEFAULT_MIN_GROUP_ROWS
    min_group_minority: int = 1
    """A classification group (segment value, fairness band) is judged only with at least
    this many holdout rows of each class: a segment's ROC AUC on two frauds says nothing.
    Default 1: both classes present."""
    recency_half_life_days: float | None = None
    """Weigh each training row by its age: a row this many days older than the newest one
    counts half as much at fit (`sample_weight`; the contract's timestamp column). None:
    every row counts the same. The holdout is judged unweighted."""
    fairness: dict[str, Bands] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.name or self.estimator.rsplit(".", 1)[-1]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = list(self.features) if self.features is not None else None
        out["gates"] = list(self.gates)
        out["fairness"] = {
            col: {
                "bands": list(b.edges) if b.edges is not None else None,
                "quantiles": b.quantiles,
            }
            for col, b in self.fairness.items()
        }
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
    if (
        not isinstance(raw_split, dict)
        or raw_split.get("method") not in (None, "time", "random", "group")
        or set(raw_split) - {"method", "test_size", "group", "refit"}
        or not isinstance(raw_split.get("refit", False), bool)
    ):
        msg = f"{where}: split is {raw_split!r}; expected {{method: time|random|group, test_size: 0.2, refit: false}}."
        raise ConfigError(msg)
    split = Split(
        raw_split.get("method"),
        float(raw_split.get("test_size", 0.2)),
        raw_split.get("group"),
        raw_split.get("refit", False),
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
    min_group_rows = data.get("min_group_rows", DEFAULT_MIN_GROUP_ROWS)
    if (
        isinstance(min_group_rows, bool)
        or not isinstance(min_group_rows, int)
        or min_group_rows < 1
    ):
        msg = f"{where}: min_group_rows is {min_group_rows!r}; expected a whole number of rows >= 1 (default {DEFAULT_MIN_GROUP_ROWS})."
        raise ConfigError(msg)
    min_minority = data.get("min_group_minority", 1)
    if isinstance(min_minority, bool) or not isinstance(min_minority, int) or min_minority < 1:
        msg = f"{where}: min_group_minority is {min_minority!r}; expected a whole number of rows >= 1 (default 1: both classes present)."
        raise ConfigError(msg)
    half_life = data.get("recency_half_life_days")
    if half_life is not None and (
        isinstance(half_life, bool)
        or not isinstance(half_life, int | float)
        or not 0 < half_life < float("inf")
    ):
        msg = f"{where}: recency_half_life_days is {half_life!r}; expected a number of days > 0 (or none: every row weighs the same)."
        raise ConfigError(msg)
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
        min_group_rows=min_group_rows,
        min_group_minority=min_minority,
        recency_half_life_days=None if half_life is None else float(half_life),
        fairness=_fairness_from(data.get("fairness"), where),
    )


def _fairness_from(raw: Any, where: str) -> dict[str, Bands]:
    """`fairness: {AGE: {bands: [0, 25, 45, 65]}}` or `{AGE: {quantiles: 5}}`, validated."""
    if raw is None:
        return {}
    example = "expected e.g. {AGE: {bands: [0, 25, 45, 65]}} or {AGE: {quantiles: 4}}"
    if not isinstance(raw, dict):
        msg = f"{where}: fairness is {raw!r}; {example}."
        raise ConfigError(msg)
    out: dict[str, Bands] = {}
    for col, entry in raw.items():
        here = f"{where}: fairness.{col}"
        if not isinstance(entry, dict) or not entry or set(entry) - {"bands", "quantiles"}:
            msg = f"{here} is {entry!r}; {example}."
            raise ConfigError(msg)
        if "bands" in entry and "quantiles" in entry:
            msg = f"{here} gives both bands and quantiles; give one of them."
            raise ConfigError(msg)
        edges = entry.get("bands")
        quantiles = entry.get("quantiles", DEFAULT_QUANTILE_BANDS)
        if edges is not None:
            ok = (
                isinstance(edges, list)
                and len(edges) >= 1
                and all(isinstance(e, int | float) and not isinstance(e, bool) for e in edges)
                and all(a < b for a, b in itertools.pairwise(edges))
            )
            if not ok:
                msg = f"{here}.bands is {edges!r}; expected a list of ascending numbers, the lower edges of the bands, e.g. [0, 25, 45, 65]."
                raise ConfigError(msg)
            out[str(col)] = Bands(tuple(float(e) for e in edges))
            continue
        if isinstance(quantiles, bool) or not isinstance(quantiles, int) or quantiles < 2:
            msg = f"{here}.quantiles is {quantiles!r}; expected a whole number of bands >= 2, e.g. 4 for quartiles."
            raise ConfigError(msg)
        out[str(col)] = Bands(None, quantiles)
    return out


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
