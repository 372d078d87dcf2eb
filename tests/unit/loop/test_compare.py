"""The statistics the loop decides from (`keel.monitor.compare`), on seeded data."""

from __future__ import annotations

import numpy as np

from keel.monitor.compare import paired_difference


def _outputs(scores: np.ndarray) -> np.ndarray:
    return np.column_stack([1 - scores, scores])


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(2000) < 0.1).astype(int)
    good = np.clip(0.5 * y + rng.normal(0.3, 0.2, 2000), 0, 1)
    weak = np.clip(0.15 * y + rng.normal(0.3, 0.2, 2000), 0, 1)
    return y, good, weak


def test_a_better_model_has_an_interval_above_zero() -> None:
    """The second version ranks positives far better: improvement and its whole interval > 0."""
    y, good, weak = _data()

    d = paired_difference("classification", y, _outputs(weak), _outputs(good), "roc_auc")

    assert d is not None
    assert d.second > d.first
    assert d.low is not None
    assert d.low > 0
    assert d.minority == int(y.sum())


def test_the_same_outputs_differ_by_nothing() -> None:
    """Two identical versions: improvement 0 and the interval [0, 0]."""
    y, good, _ = _data()

    d = paired_difference("classification", y, _outputs(good), _outputs(good), "roc_auc")

    assert d is not None
    assert (d.improvement, d.low, d.high) == (0.0, 0.0, 0.0)


def test_the_same_seed_gives_the_same_interval() -> None:
    """Seeded: the same inputs give the same interval, another seed another one."""
    y, good, weak = _data()
    a = paired_difference("classification", y, _outputs(weak), _outputs(good), "roc_auc", seed=1)
    b = paired_difference("classification", y, _outputs(weak), _outputs(good), "roc_auc", seed=1)
    c = paired_difference("classification", y, _outputs(weak), _outputs(good), "roc_auc", seed=2)

    assert a == b
    assert a != c


def test_one_class_has_no_difference() -> None:
    """With labels of one class only, an AUC is undefined: no difference."""
    y = np.zeros(50, dtype=int)
    out = _outputs(np.linspace(0, 1, 50))

    assert paired_difference("classification", y, out, out, "roc_auc") is None


def test_lower_is_better_metrics_point_the_right_way() -> None:
    """For RMSE, the version with smaller errors shows a positive improvement."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)

    d = paired_difference(
        "regression", y, y + rng.normal(0, 1, 500), y + rng.normal(0, 0.1, 500), "rmse"
    )

    assert d is not None
    assert d.improvement > 0
    assert d.low is not None
    assert d.low > 0
