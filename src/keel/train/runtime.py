"""Runtime profile: size, single-row latency, throughput, and the cost of a million predictions."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd


def runtime_profile(
    model: Any,
    sample: pd.DataFrame,
    *,
    size_bytes: int,
    cpu_hour_usd: float,
    single_calls: int = 100,
) -> dict[str, Any]:
    """Measured in this process on this machine; it says so in `measured_on`."""
    predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    one = sample.iloc[:1]
    predict(one)  # warm-up
    lat = []
    for i in range(single_calls):
        row = sample.iloc[i % len(sample) : i % len(sample) + 1]
        t0 = time.perf_counter()
        predict(row)
        lat.append((time.perf_counter() - t0) * 1000)
    throughput = {}
    for batch in (64, 1000):
        rows = sample.iloc[np.arange(batch) % len(sample)]
        t0 = time.perf_counter()
        reps = 0
        while reps < 3 or time.perf_counter() - t0 < 0.2:
            predict(rows)
            reps += 1
        throughput[f"rows_per_s_batch_{batch}"] = round(
            batch * reps / (time.perf_counter() - t0), 1
        )
    best = max(throughput.values())
    cost = cpu_hour_usd * (1_000_000 / best) / 3600
    return {
        "size_bytes": size_bytes,
        "p50_ms": round(float(np.percentile(lat, 50)), 4),
        "p99_ms": round(float(np.percentile(lat, 99)), 4),
        **throughput,
        "cost_per_million_usd": round(cost, 6),
        "cpu_hour_usd": cpu_hour_usd,
        "measured_on": "one core of the training machine, in process",
    }
