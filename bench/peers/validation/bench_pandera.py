"""pandera benchmark.
usage: bench_pandera.py BACKEND(pandas|polars) SOURCE(parquet|csv) N REPEATS OUTJSONL
"""

import os
import sys
import time

t_imp0 = time.perf_counter()
backend, source, n, repeats, outpath = (
    sys.argv[1],
    sys.argv[2],
    int(sys.argv[3]),
    int(sys.argv[4]),
    sys.argv[5],
)
sys.path.insert(0, os.path.dirname(__file__))
import datetime as dt

from common import *
from spec import *

DATA = os.environ.get(
    "KEEL_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "..", ".data")
)

if backend == "pandas":
    import pandas as pd
    import pandera.pandas as pa
else:
    import pandera.polars as pa
    import polars as pl
import pandera

t_import = time.perf_counter() - t_imp0
rss0 = rss_mb()

# ---------------- read ----------------
t0 = time.perf_counter()
if backend == "pandas":
    if source == "parquet":
        df = pd.read_parquet(f"{DATA}/typed_{n}.parquet")
    else:
        df = pd.read_csv(f"{DATA}/raw_{n}.csv", parse_dates=["ts"])
else:
    if source == "parquet":
        df = pl.read_parquet(f"{DATA}/typed_{n}.parquet")
    else:
        # default inference (first 100 rows) raises on the dirty f2 column -> infer from the whole file;
        # try_parse_dates with full inference is ~10x slower, so parse ts explicitly (same info as pandas parse_dates)
        df = pl.read_csv(f"{DATA}/raw_{n}.csv", infer_schema_length=None).with_columns(
            pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False)
        )
t_read = time.perf_counter() - t0
dtypes_after_read = {
    c: str(t) for c, t in (df.dtypes.items() if backend == "pandas" else df.schema.items())
}
rss_after_read = rss_mb()
maxrss_after_read = maxrss_mb()

# ---------------- schema ----------------
coerce = source == "csv"  # raw CSV: ask the library to coerce (reports non-coercible values)
ts_lo, ts_hi = dt.datetime.fromisoformat(TS_MIN), dt.datetime.fromisoformat(TS_MAX)
t0 = time.perf_counter()
if backend == "pandas":
    T = dict(f="float64", i="int64", c=str, id="int64", ts="datetime64[us]")
    ts_lo, ts_hi = pd.Timestamp(ts_lo), pd.Timestamp(ts_hi)
else:
    T = dict(f=pl.Float64, i=pl.Int64, c=pl.String, id=pl.Int64, ts=pl.Datetime("us"))
cols = {
    ID_COL: pa.Column(T["id"], unique=True, nullable=False),
    TS_COL: pa.Column(T["ts"], pa.Check.in_range(ts_lo, ts_hi), nullable=False),
}
for c in FLOAT_COLS:
    cols[c] = pa.Column(T["f"], pa.Check.in_range(*FLOAT_RANGES[c]), nullable=False)
for c in INT_COLS:
    cols[c] = pa.Column(T["i"], pa.Check.in_range(*INT_RANGES[c]), nullable=False)
for c in CAT_COLS:
    cols[c] = pa.Column(T["c"], pa.Check.isin(CATEGORIES[c]), nullable=False)
schema = pa.DataFrameSchema(cols, strict=True, coerce=coerce)
t_schema = time.perf_counter() - t0

# ---------------- validate ----------------
times = []
fc = None
err_type = None
for _r in range(repeats):
    t0 = time.perf_counter()
    try:
        schema.validate(df, lazy=True)
        fc = None
        err_type = "none"
    except pandera.errors.SchemaErrors as e:
        fc = e.failure_cases
        err_type = "SchemaErrors"
    times.append(time.perf_counter() - t0)
maxrss_after_val = maxrss_mb()

# ---------------- analyse failure cases ----------------
res = dict(
    tool=f"pandera-{backend}",
    pandera_version=pandera.__version__,
    source=source,
    n=n,
    t_import_s=round(t_import, 3),
    t_read_s=round(t_read, 3),
    t_schema_s=round(t_schema, 4),
    t_validate_s=[round(x, 3) for x in times],
    t_validate_median_s=round(sorted(times)[len(times) // 2], 3),
    rss_before_read_mb=round(rss0),
    rss_after_read_mb=round(rss_after_read),
    maxrss_after_read_mb=round(maxrss_after_read),
    maxrss_after_validate_mb=round(maxrss_after_val),
    err_type=err_type,
)
if fc is not None:
    fcp = (fc.to_pandas() if hasattr(fc, "to_pandas") else fc) if backend == "polars" else fc
    res["failure_cases_rows"] = len(fcp)
    res["failure_cases_columns"] = list(map(str, fcp.columns))
    has_index = "index" in fcp.columns
    res["index_column_present"] = has_index
    if has_index:
        idx_nonnull = fcp["index"].notna()
        res["failure_cases_with_row_index"] = int(idx_nonnull.sum())
        res["distinct_failing_rows"] = int(fcp.loc[idx_nonnull, "index"].nunique())
    grp = fcp.groupby(["column", "check"], dropna=False).size()
    res["per_check"] = {f"{a}|{str(b)[:30]}": int(v) for (a, b), v in grp.items()}
    # compare with ground truth (row indices)
    truth = expected_sets(load_truth(n, DATA))
    found = {}
    if has_index:
        fci = fcp[fcp["index"].notna()].copy()
        fci["column"] = (
            fci["column"].astype(object).where(fci["column"].notna(), "?")
        )  # schema-level coerce failures carry no column
        for (col, chk), g in fci.groupby(["column", "check"]):
            kind = (
                "null"
                if "null" in chk
                else "unique"
                if "unique" in chk or "uniqueness" in chk or "duplicate" in chk
                else "unseen_cat"
                if "isin" in chk
                else "range"
                if "range" in chk or "between" in chk or "equal" in chk
                else "coerce"
                if "coerce" in chk
                else chk
            )
            found.setdefault((col, kind), set()).update(int(i) for i in g["index"])
        match = {}
        for key, exp in truth.items():
            got = found.get(key, set())
            if key == ("f2", "null") and source == "csv":
                got = got | found.get(("f2", "coerce"), set()) | found.get(("?", "coerce"), set())
            match[f"{key[0]}:{key[1]}"] = (
                "exact"
                if got == exp
                else f"got {len(got)} / exp {len(exp)} (missing {len(exp - got)}, extra {len(got - exp)})"
            )
        res["truth_match"] = match
    res["sample_failure_cases"] = fcp.head(3).astype(str).to_dict("records")
res["dtypes_after_read"] = dtypes_after_read
emit(res, outpath)
