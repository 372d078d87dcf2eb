"""Generate the benchmark frame with injected faults.
usage: gen_data.py N OUTDIR   -> OUTDIR/typed_N.parquet, OUTDIR/raw_N.csv, OUTDIR/truth_N.json
"""

import json
import os
import sys
import time

import numpy as np
import polars as pl

sys.path.insert(0, os.path.dirname(__file__))
from spec import *

n = int(sys.argv[1])
out = sys.argv[2]
rng = np.random.default_rng(20240601)
t0 = time.time()
cols = {}
cols[ID_COL] = rng.permutation(n).astype(np.int64) + 1_000_000
ts0 = np.datetime64(TS_MIN, "us")
cols[TS_COL] = ts0 + rng.integers(0, 365 * 86400, n).astype("timedelta64[s]").astype(
    "timedelta64[us]"
)
for k, c in enumerate(FLOAT_COLS):
    loc, sd = 10.0 * k, 1.0 + k
    cols[c] = np.clip(rng.normal(loc, sd, n), loc - 5 * sd, loc + 5 * sd)
for c in INT_COLS:
    lo, hi = INT_RANGES[c]
    cols[c] = rng.integers(lo, hi + 1, n).astype(np.int64)
for c in CAT_COLS:
    cats = np.array(CATEGORIES[c], dtype=object)
    cols[c] = cats[rng.integers(0, len(cats), n)]

# choose disjoint fault rows (+ disjoint clean "source" rows for duplicated ids)
counts = [round(frac * n) for _, _, frac in FAULTS]
n_dup = counts[-1]
perm = rng.permutation(n)
pos = 0
truth = {}
rows_by_fault = []
for (kind, col, _), cnt in zip(FAULTS, counts, strict=False):
    rows = np.sort(perm[pos : pos + cnt])
    pos += cnt
    rows_by_fault.append(rows)
dup_src = np.sort(perm[pos : pos + n_dup])
pos += n_dup

null_masks = {c: np.zeros(n, bool) for c in ALL_COLS}
f2_junk = None
junk_pool = np.array(["n/a", "abc", "1,5", "--", "12.3.4", "NaN?", "#REF!", "?"], dtype=object)
for (kind, col, _), rows in zip(FAULTS, rows_by_fault, strict=False):
    if kind == "null":
        null_masks[col][rows] = True
    elif kind == "range":
        if col.startswith("f"):
            cols[col][rows] = 1e6
        else:
            cols[col][rows] = -1
    elif kind == "unseen_cat":
        cols[col][rows] = f"{col}_UNSEEN"
    elif kind == "nonnumeric":
        f2_junk = (rows, junk_pool[rng.integers(0, len(junk_pool), len(rows))])
    elif kind == "dup_id":
        src = rng.permutation(dup_src)
        cols[ID_COL][rows] = cols[ID_COL][src]
    truth[f"{kind}:{col}"] = rows.tolist()
# rows that take part in duplicate ids (all occurrences)
truth["dup_id_all_occurrences"] = np.sort(np.concatenate([rows_by_fault[-1], dup_src])).tolist()

series = []
for c in ALL_COLS:
    s = pl.Series(c, cols[c])
    if null_masks[c].any():
        s = pl.select(
            pl.when(pl.Series(null_masks[c])).then(None).otherwise(s).alias(c)
        ).to_series()
    series.append(s)
typed = pl.DataFrame(series)
# typed frame: f2 junk rows become null
f2_mask = np.zeros(n, bool)
f2_mask[f2_junk[0]] = True
typed = typed.with_columns(
    pl.when(pl.Series(f2_mask)).then(None).otherwise(pl.col("f2")).alias("f2")
)
os.makedirs(out, exist_ok=True)
typed.write_parquet(f"{out}/typed_{n}.parquet")

# raw frame: f2 as strings with junk values
f2_str = np.array([repr(float(v)) for v in cols["f2"]], dtype=object)
f2_str[f2_junk[0]] = f2_junk[1]
raw = typed.with_columns(pl.Series("f2", f2_str, dtype=pl.String))
raw.write_csv(f"{out}/raw_{n}.csv", datetime_format="%Y-%m-%d %H:%M:%S")
json.dump(truth, open(f"{out}/truth_{n}.json", "w"))
print(typed.schema)
print(
    {k: len(v) for k, v in truth.items()}, "injected rows:", sum(counts), f"({sum(counts) / n:.2%})"
)
print(
    f"gen {n} rows in {time.time() - t0:.1f}s; parquet {os.path.getsize(f'{out}/typed_{n}.parquet') / 1e6:.1f} MB, csv {os.path.getsize(f'{out}/raw_{n}.csv') / 1e6:.1f} MB"
)
