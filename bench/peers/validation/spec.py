"""Shared column spec used by the data generator and every validator (pure Python, no deps)."""

FLOAT_COLS = [f"f{k}" for k in range(12)]
INT_COLS = [f"i{k}" for k in range(4)]
CAT_COLS = [f"c{k}" for k in range(4)]
ID_COL = "id"
TS_COL = "ts"

# float f_k ~ Normal(loc=10k, sd=1+k) clipped to +-5 sd; allowed range +-6 sd
FLOAT_RANGES = {f"f{k}": (10.0 * k - 6.0 * (1 + k), 10.0 * k + 6.0 * (1 + k)) for k in range(12)}
INT_RANGES = {"i0": (0, 100), "i1": (0, 1000), "i2": (-50, 50), "i3": (0, 1_000_000)}
N_CATS = {"c0": 5, "c1": 12, "c2": 25, "c3": 40}
CATEGORIES = {c: [f"{c}_v{j:02d}" for j in range(k)] for c, k in N_CATS.items()}
TS_MIN = "2024-01-01 00:00:00"
TS_MAX = "2025-01-01 00:00:00"
ALL_COLS = [ID_COL, TS_COL, *FLOAT_COLS, *INT_COLS, *CAT_COLS]

# injected faults (fraction of n rows each); disjoint row sets, total 1.0% of rows
FAULTS = [
    ("null", "f0", 0.0015),
    ("null", "c0", 0.0010),
    ("null", "ts", 0.0005),
    ("range", "f1", 0.0015),  # set to 1e6 (> max)
    ("range", "i1", 0.0015),  # set to -1 (< min)
    ("unseen_cat", "c1", 0.0010),
    ("unseen_cat", "c3", 0.0010),
    ("nonnumeric", "f2", 0.0010),  # junk string in CSV; null in the typed Parquet
    ("dup_id", "id", 0.0010),  # id copied from another (clean) row
]
