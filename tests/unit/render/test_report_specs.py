"""The drift heat map: red only where the verdict is drift, each cell as wide as its window."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from keel.monitor import ColumnDrift
from keel.render import drift_heatmap_spec


def _column(name: str, statistic: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(
        name=name, kind="categorical", method="jensen_shannon", statistic=statistic,
        p_value=0.001 if drifted else 0.4, threshold=0.02, drifted=drifted, test="chi2",
        n_reference=1000, n_current=1000, psi=0.0, jensen_shannon=statistic,
    )  # fmt: skip


def test_colour_passes_one_only_for_drift_and_cells_span_their_window() -> None:
    start = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
    windows = [
        SimpleNamespace(
            start=start + dt.timedelta(hours=6 * i),
            version=1,
            drift=[_column("noisy", 0.05, False), _column("moved", 0.05, True)],
            output_drift=None,
        )
        for i in range(3)
    ]
    spec = drift_heatmap_spec(windows)
    levels = {(v["t"], v["f"]): v["r"] for v in spec["data"]["values"]}
    assert set(levels.values()) == {0.99, 2.5}
    assert all(levels[(t, "moved")] == 2.5 for t, _ in levels)
    assert spec["transform"] == [{"calculate": "toDate(datum.t) + 21600000", "as": "t2"}]
    assert spec["encoding"]["x2"] == {"field": "t2"}
    daily = drift_heatmap_spec(windows[:1], day=True)
    assert daily["transform"][0]["calculate"].endswith("+ 86400000")
    assert drift_heatmap_spec(windows, window_s=3600)["transform"][0]["calculate"].endswith(
        "+ 3600000"
    )
