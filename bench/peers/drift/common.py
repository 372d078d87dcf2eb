"""Shared helpers (no third-party imports beyond pandas/numpy)."""
import json
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.environ.get("KEEL_DRIFT_DATA", os.path.join(HERE, "data"))
RESULTS = os.environ.get("KEEL_DRIFT_RESULTS", os.path.join(HERE, "results"))
os.makedirs(RESULTS, exist_ok=True)

with open(os.path.join(DATA, "meta.json")) as f:
    META = json.load(f)

NUM_COLS = META["numeric"]
CAT_COLS = META["categorical"]
TARGET = META["target"]
PRED = META["prediction"]
DRIFTED_TRUTH = sorted(META["drift"].keys())

CSV_HEADER = ["tool", "size", "column", "col_type", "method", "statistic", "p_value",
              "threshold", "drift"]


def paths(n):
    return (os.path.join(DATA, f"reference_{n}.parquet"),
            os.path.join(DATA, f"current_{n}.parquet"))


def load(n):
    """Read the N-row frames; sizes without a file (e.g. 1000) are the first N rows of the 10k files."""
    import pandas as pd
    r, c = paths(n)
    if os.path.exists(r):
        return pd.read_parquet(r), pd.read_parquet(c)
    r, c = paths(10_000)
    return (pd.read_parquet(r).iloc[:n].reset_index(drop=True),
            pd.read_parquet(c).iloc[:n].reset_index(drop=True))


class Timer:
    def __init__(self):
        self.t = {}
        self._t0 = time.perf_counter()

    def lap(self, name):
        now = time.perf_counter()
        self.t[name] = round(now - self._t0, 4)
        self._t0 = now


def write_csv(rows, path):
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_HEADER)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in CSV_HEADER})


def write_json(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=str)
