"""Drift statistics: exact ones equal scipy's; binned ones stay within their stated bound."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from keel.monitor.drift import (
    DriftConfig,
    bin_counts,
    bin_edges,
    binned_numeric_drift,
    categorical_drift,
    compare_frames,
    ks_wasserstein_sorted,
    numeric_drift,
    psi,
)

Samples = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]
SAMPLES: dict[str, Samples] = {
    "normal-shifted": lambda rng: (rng.normal(0, 1, 3000), rng.normal(0.1, 1.2, 2500)),
    "normal-same": lambda rng: (rng.normal(0, 1, 30_000), rng.normal(0, 1, 20_000)),
    "poisson-ties": lambda rng: (
        rng.poisson(4, 20_000).astype(float),
        rng.poisson(5, 15_000).astype(float),
    ),
    "lognormal": lambda rng: (rng.lognormal(0, 1, 500), rng.lognormal(0.2, 1, 700)),
}


@pytest.mark.parametrize("case", list(SAMPLES))
def test_exact_numeric_statistics_equal_scipy(case: str) -> None:
    """KS statistic, its p-value and the Wasserstein distance equal scipy's."""
    a, b = SAMPLES[case](np.random.default_rng(7))
    col = numeric_drift("x", a, b)
    ks = stats.ks_2samp(a, b)
    assert col.ks == pytest.approx(ks.statistic, abs=1e-9)
    assert col.p_value == pytest.approx(ks.pvalue, abs=1e-9)
    assert col.statistic == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), abs=1e-9)
    d, w = ks_wasserstein_sorted(np.sort(a), np.sort(b))
    assert w == pytest.approx(stats.wasserstein_distance(a, b), abs=1e-9)
    assert d == pytest.approx(ks.statistic, abs=1e-12)


def test_categorical_uses_a_homogeneity_test_and_js_base_2() -> None:
    ref = {"a": 500, "b": 300, "c": 200}
    cur = {"a": 420, "b": 330, "c": 240, "d": 10}
    col = categorical_drift("c", ref, cur)
    table = np.array([[500, 300, 200, 0], [420, 330, 240, 10]])
    res = stats.chi2_contingency(table, correction=False)
    assert col.p_value == pytest.approx(res.pvalue, abs=1e-12)
    p, q = table[0] / 1000, table[1] / 1000
    assert col.statistic == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert col.drifted  # JS 0.07 and p tiny
    same = categorical_drift("c", ref, {"a": 51, "b": 29, "c": 20})
    assert not same.drifted
    assert same.p_value is not None
    assert same.p_value > 0.5


def test_goodness_of_fit_mistake_is_not_made() -> None:
    # two samples of the same distribution: a homogeneity test keeps its level (here: no alarm)
    # where a goodness-of-fit against the reference's proportions would be overconfident
    probs = np.array([0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
    alarms = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        r = rng.multinomial(1000, probs)
        c = rng.multinomial(1000, probs)
        col = categorical_drift(
            "x",
            {str(i): int(v) for i, v in enumerate(r)},
            {str(i): int(v) for i, v in enumerate(c)},
            DriftConfig(jensen_shannon=0.0, alpha=0.05),
        )
        alarms += col.drifted
    assert alarms <= 20  # about 5 % expected at alpha 0.05


def test_psi_matches_the_textbook_formula() -> None:
    r = np.array([100, 200, 700])
    c = np.array([150, 250, 600])
    rp, cp = r / r.sum(), c / c.sum()
    assert psi(r, c) == pytest.approx(float(np.sum((cp - rp) * np.log(cp / rp))))
    assert psi(r, r) == 0.0


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 1.5])
def test_binned_wasserstein_within_its_bound(shift: float) -> None:
    """The binned distance is within its stated error bound of the exact one."""
    rng = np.random.default_rng(11)
    a = rng.normal(0, 1, 50_000)
    b = rng.normal(shift, 1, 50_000)
    edges = bin_edges(a)
    # reference clipped into the end bins, like the reference profile and serving's profiles
    ac, bc = np.clip(a, edges[0], edges[-1]), np.clip(b, edges[0], edges[-1])
    exact = stats.wasserstein_distance(ac, bc) / a.std()
    col = binned_numeric_drift("x", edges, bin_counts(a, edges), bin_counts(b, edges), a.std())
    assert col.error_bound is not None
    assert abs(col.statistic - exact) <= col.error_bound
    assert col.ks is not None
    assert col.ks <= stats.ks_2samp(ac, bc).statistic + 1e-12
    assert col.drifted == (shift >= 0.1)


def test_small_windows_are_not_judged() -> None:
    """A window under min_rows is neither judged nor drifted, however far it moved."""
    rng = np.random.default_rng(3)
    col = numeric_drift("x", rng.normal(0, 1, 5000), rng.normal(3, 1, 20))
    assert not col.judged
    assert not col.drifted


def test_compare_frames_flags_only_the_drifted_columns() -> None:
    """Of four columns, the two that moved are flagged, and the report's JSON names each."""
    rng = np.random.default_rng(5)
    n = 20_000
    ref = pl.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "y": rng.normal(0, 1, n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
            "k": rng.choice(["a", "b"], n),
        }
    )
    cur = pl.DataFrame(
        {
            "x": rng.normal(0.3, 1, n),
            "y": rng.normal(0, 1, n),
            "c": rng.choice(["a", "b", "c"], n, p=[0.4, 0.3, 0.3]),
            "k": rng.choice(["a", "b"], n),
        }
    )
    report = compare_frames(ref, cur, numeric=["x", "y"], categorical=["c", "k"])
    assert report.drifted_columns == ["x", "c"]
    d = report.to_dict()
    assert {c["name"] for c in d["columns"]} == {"x", "y", "c", "k"}
    assert all(
        set(c) >= {"name", "method", "statistic", "p_value", "threshold", "drifted"}
        for c in d["columns"]
    )


def test_integer_columns_from_counts_equal_scipy() -> None:
    """Integer columns compared from value counts give scipy's statistics."""
    from keel.monitor.drift import discrete_drift

    rng = np.random.default_rng(13)
    for n in (3000, 40_000):
        a = rng.poisson(4, n).astype(float)
        b = rng.poisson(4.3, n + 17).astype(float)
        col = discrete_drift("k", a, b)
        ks = stats.ks_2samp(a, b)
        assert col.ks == pytest.approx(ks.statistic, abs=1e-12)
        assert col.p_value == pytest.approx(ks.pvalue, abs=1e-9)
        assert col.statistic == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), abs=1e-9)


@pytest.mark.parametrize("n", [141, 5_000, 50_000, 100_001])
def test_kolmogorov_port_equals_scipy(n: int) -> None:
    from keel.monitor._kolmogorov import kstwo_sf

    for x in np.geomspace(1e-3, min(0.6, 30 / np.sqrt(n)), 25):
        ours = kstwo_sf(n, float(x))
        if ours is not None:
            assert ours == pytest.approx(float(stats.kstwo.sf(x, n)), abs=1e-12), (n, x)
