"""Small registries for the promotion tests: versions whose gates pass or fail on demand."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keel.data import DatasetStore, infer_contract
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.train import spec_from_dict, train

PASSING = ("holdout.accuracy >= 0",)
"""A gate every version passes on the re-check."""
FAILING = ("holdout.accuracy >= 2",)
"""A gate no version passes on the re-check (accuracy is at most 1)."""


@dataclass(frozen=True)
class Trained:
    """One fitted candidate, ready to be registered as any number of versions."""

    dataset: str
    pipeline: Any
    spec: dict[str, Any]
    evaluation: dict[str, Any]


def ingest_small(datasets: DatasetStore, seed: int = 5) -> str:
    """600 simulated transactions as a dataset version; its ref."""
    frame = TransactionSimulator(seed=seed, n_customers=300).generate(days=6, per_day=100)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    return datasets.ingest(frame, contract, "tx").version.ref


def fit_small(datasets: DatasetStore, dataset: str) -> Trained:
    """A logistic regression on the dataset (not registered)."""
    spec = spec_from_dict(
        {
            "name": "lr",
            "estimator": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 300},
        }
    )
    (c,) = train([spec], dataset, datasets=datasets).candidates
    evaluation = c.report.to_json()
    return Trained(dataset, c.pipeline, c.spec.to_dict(), evaluation)


def register(
    models: ModelStore,
    datasets: DatasetStore,
    name: str,
    trained: Trained,
    *,
    gates: tuple[str, ...] = PASSING,
    trained_gates_pass: bool = True,
) -> int:
    """Register `trained` as the next version of `name`; `gates` are re-checked at promotion,
    `trained_gates_pass` is what its stored evaluation says about the gates at training."""
    evaluation = dict(trained.evaluation)
    if not trained_gates_pass:
        evaluation["gates"] = [
            {
                "name": "holdout.roc_auc >= 0.99",
                "value": 0.7,
                "threshold": 0.99,
                "op": ">=",
                "passed": False,
            }
        ]
    return models.register(
        name,
        trained.pipeline,
        contract=datasets.contract(trained.dataset),
        spec={**trained.spec, "gates": list(gates)},
        evaluation=evaluation,
        dataset_version=trained.dataset,
    ).version
