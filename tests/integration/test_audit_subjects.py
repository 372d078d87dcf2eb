"""Audit history is per model: names that share a prefix or hold LIKE wildcards never mix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from keel.data import contract_from_dict
from keel.registry import ModelStore
from keel.store import ModelNotFoundError

pytestmark = pytest.mark.integration

CONTRACT = contract_from_dict(
    {"name": "xy", "columns": {"a": {"type": "float"}, "y": {"type": "int", "role": "target"}}}
)
X = pd.DataFrame({"a": np.linspace(0, 1, 60)})
Y = (X["a"] > 0.5).astype(int)


def _register(models: ModelStore, name: str) -> int:
    model = LogisticRegression().fit(X, Y)
    return models.register(
        name, model, contract=CONTRACT, spec={"estimator": "x"}, evaluation={"auc": 0.9}
    ).version


def test_history_and_rollback_read_only_their_own_model(models: ModelStore) -> None:
    """`m`'s history, audit and rollback ignore `m2` and `m_x` (a LIKE '_' would match them)."""
    for name in ("m", "m2", "m_x", "mx"):
        for _ in range(2):
            _register(models, name)
    models.set_alias("m", "production", 1, reason="first")
    for name in ("m2", "m_x", "mx"):
        models.set_alias(name, "production", 1)
        models.set_alias(name, "production", 2)

    history = models.history("m")
    audit = models.audit("m")

    assert [(e.action, e.version) for e in history] == [("alias.set", 1)]
    assert {e.subject for e in audit} == {"model:m"}
    assert len(models.audit("m_x")) == 4  # two registrations, two moves
    assert {e.subject for e in models.audit("m_x")} == {"model:m_x"}
    with pytest.raises(ModelNotFoundError, match=r"no earlier production version"):
        models.rollback("m")
    assert models.get("m2@production").version == 2
    assert {e["subject"] for e in models.db.events(prefix="model:m_")} == {"model:m_x"}
