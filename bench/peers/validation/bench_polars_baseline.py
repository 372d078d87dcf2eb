"""Hand-written vectorized Polars validator (lower-bound reference).
usage: bench_polars_baseline.py SOURCE(parquet|csv) N REPEATS OUTJSONL
"""

import os
import sys
import time

t_imp0 = time.perf_counter()
source, n, repeats, outpath = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, os.path.dirname(__file__))
import datetime as dt

import polars as pl
from common import *
from spec import *

t_import = time.perf_counter() - t_imp0
DATA = os.environ.get(
    "KEEL_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "..", ".data")
)
rss0 = rss_mb()

t0 = time.perf_counter()
if source == "parquet":
    df = pl.read_parquet(f"{DATA}/typed_{n}.parquet")
else:
    df = pl.read_csv(f"{DATA}/raw_{n}.csv", infer_schema_length=None).with_columns(
        pl.col("ts").str.to_datetime("%Y-%m-%d %H:%M:%S", time_unit="us", strict=False)
    )
t_read = time.perf_counter() - t0
rss_after_read = rss_mb()
maxrss_after_read = maxrss_mb()

EXPECTED = {
    ID_COL: pl.Int64,
    TS_COL: pl.Datetime("us"),
    **{c: pl.Float64 for c in FLOAT_COLS},
    **{c: pl.Int64 for c in INT_COLS},
    **{c: pl.String for c in CAT_COLS},
}


def validate(df):
    # 1) schema-level: missing / extra columns, dtype mismatches
    schema = df.schema
    schema_failures = [(c, "column_missing") for c in EXPECTED if c not in schema]
    schema_failures += [(c, "column_unexpected") for c in schema if c not in EXPECTED]
    bad_dtype = {c for c, t in EXPECTED.items() if c in schema and schema[c] != t}
    schema_failures += [(c, f"dtype({EXPECTED[c]}) got {schema[c]}") for c in bad_dtype]
    # 2) row-level masks, all in one parallel select
    checks = []

    def col(
        c,
    ):  # numeric view of a column; string-typed numeric columns are parsed (non-parseable -> own check)
        if c in bad_dtype and schema[c] == pl.String and EXPECTED[c] in (pl.Float64, pl.Int64):
            parsed = pl.col(c).str.strip_chars().cast(EXPECTED[c], strict=False)
            checks.append((c, "parse", pl.col(c).is_not_null() & parsed.is_null()))
            return parsed
        return pl.col(c)

    checks.append((ID_COL, "not_null", pl.col(ID_COL).is_null()))
    checks.append((ID_COL, "unique", pl.col(ID_COL).is_duplicated()))
    lo, hi = dt.datetime.fromisoformat(TS_MIN), dt.datetime.fromisoformat(TS_MAX)
    checks.append((TS_COL, "not_null", pl.col(TS_COL).is_null()))
    checks.append((TS_COL, "in_range", ~pl.col(TS_COL).is_between(lo, hi)))
    for c in FLOAT_COLS + INT_COLS:
        x = col(c)
        lo, hi = FLOAT_RANGES.get(c) or INT_RANGES[c]
        checks.append((c, "not_null", x.is_null() if c not in bad_dtype else pl.col(c).is_null()))
        checks.append((c, "in_range", ~x.is_between(lo, hi)))
    for c in CAT_COLS:
        checks.append((c, "not_null", pl.col(c).is_null()))
        checks.append((c, "isin", ~pl.col(c).is_in(CATEGORIES[c])))
    masks = df.select([e.fill_null(False).alias(f"{c}|{k}") for c, k, e in checks])
    # 3) failing row indices per check
    any_fail = masks.select(pl.all().any()).row(0, named=True)
    idx = {name: masks.get_column(name).arg_true() for name, bad in any_fail.items() if bad}
    return schema_failures, idx


def failure_frame(df, idx):
    """pandera-like long table: column, check, index, failure_case (as string)."""
    parts = []
    for name, rows in idx.items():
        c, k = name.split("|")
        parts.append(
            pl.DataFrame(
                {
                    "column": pl.Series([c] * len(rows), dtype=pl.String),
                    "check": k,
                    "index": rows.cast(pl.Int64),
                    "failure_case": df.get_column(c).gather(rows).cast(pl.String),
                }
            )
        )
    return pl.concat(parts) if parts else None


times, times_ff = [], []
for _r in range(repeats):
    t0 = time.perf_counter()
    schema_failures, idx = validate(df)
    t1 = time.perf_counter()
    ff = failure_frame(df, idx)
    t2 = time.perf_counter()
    times.append(t1 - t0)
    times_ff.append(t2 - t0)
maxrss_after_val = maxrss_mb()

truth = expected_sets(load_truth(n, DATA))
found = {}
for name, rows in idx.items():
    c, k = name.split("|")
    k = {"not_null": "null", "in_range": "range", "isin": "unseen_cat", "parse": "null"}.get(k, k)
    found.setdefault((c, k), set()).update(rows.to_list())
match = {
    f"{k[0]}:{k[1]}": (
        "exact" if found.get(k, set()) == v else f"got {len(found.get(k, set()))} / exp {len(v)}"
    )
    for k, v in truth.items()
}
res = dict(
    tool="polars-handwritten",
    polars_version=pl.__version__,
    source=source,
    n=n,
    t_import_s=round(t_import, 3),
    t_read_s=round(t_read, 3),
    t_validate_s=[round(x, 4) for x in times],
    t_validate_median_s=round(sorted(times)[len(times) // 2], 4),
    t_validate_plus_failure_frame_median_s=round(sorted(times_ff)[len(times_ff) // 2], 4),
    rss_before_read_mb=round(rss0),
    rss_after_read_mb=round(rss_after_read),
    maxrss_after_read_mb=round(maxrss_after_read),
    maxrss_after_validate_mb=round(maxrss_after_val),
    schema_failures=schema_failures,
    failure_cases_rows=int(ff.height) if ff is not None else 0,
    distinct_failing_rows=int(ff["index"].n_unique()) if ff is not None else 0,
    per_check={k: len(v) for k, v in idx.items()},
    truth_match=match,
)
emit(res, outpath)
