"""Boosters at serving's batch sizes: the library's predict_proba against keel's tree evaluator.

Same fitted models, same rows, in one process: XGBoost and LightGBM (100 trees, depth 6 /
31 leaves) and CatBoost (100 iterations, depth 6, library only: keel does not read its trees) on
scikit-learn's breast cancer set (569 x 30). Per call, median and p99 over many calls, for 1
row and 64 rows; the evaluator's largest difference from the library over all 569 rows.

usage: .venv/bin/python bench/boosters.py [--json] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def per_call(fn: Callable[[], Any], calls: int) -> dict[str, float]:
    fn()  # warm-up
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    a = np.array(times) * 1000
    return {
        "median_ms": round(float(np.median(a)), 4),
        "p99_ms": round(float(np.percentile(a, 99)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 64])
    args = parser.parse_args()

    import catboost
    import lightgbm
    import xgboost
    from sklearn.datasets import load_breast_cancer

    from keel.serve.trees import compile_trees

    warnings.simplefilter("ignore")
    x, y = load_breast_cancer(return_X_y=True)
    models = {
        "xgboost": xgboost.XGBClassifier(n_estimators=100, max_depth=6, n_jobs=1),
        "lightgbm": lightgbm.LGBMClassifier(n_estimators=100, num_leaves=31, n_jobs=1, verbose=-1),
        "catboost": catboost.CatBoostClassifier(
            iterations=100, depth=6, thread_count=1, verbose=False, allow_writing_files=False
        ),
    }
    results: dict[str, Any] = {
        "versions": {
            "xgboost": xgboost.__version__,
            "lightgbm": lightgbm.__version__,
            "catboost": catboost.__version__,
        }
    }
    for name, model in models.items():
        model.fit(x, y)
        trees = compile_trees(model)
        entry: dict[str, Any] = {}
        for rows in args.rows:
            batch = x[:rows]
            entry[f"library_{rows}"] = per_call(
                lambda b=batch, m=model: m.predict_proba(b), args.calls
            )
            if trees is not None:
                entry[f"keel_{rows}"] = per_call(lambda b=batch, t=trees: t(b), args.calls)
                entry[f"ratio_{rows}"] = round(
                    entry[f"library_{rows}"]["median_ms"] / entry[f"keel_{rows}"]["median_ms"], 2
                )
        if trees is not None:
            diff = np.abs(trees(x) - model.predict_proba(x))
            entry["max_abs_diff"] = float(diff.max())
            entry["bit_identical_rows"] = int((diff.max(axis=1) == 0).sum())
        results[name] = entry
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"versions: {results['versions']}")
    for name in models:
        e = results[name]
        line = [name]
        for rows in args.rows:
            lib = e[f"library_{rows}"]["median_ms"]
            ours = e.get(f"keel_{rows}", {}).get("median_ms")
            line.append(
                f"{rows} rows: library {lib:.3f} ms"
                + (f", keel {ours:.3f} ms ({e[f'ratio_{rows}']}x)" if ours else ", keel -")
            )
        if "max_abs_diff" in e:
            line.append(
                f"max |diff| {e['max_abs_diff']:.2e}, {e['bit_identical_rows']}/569 rows bit-identical"
            )
        print("; ".join(line))


if __name__ == "__main__":
    main()
