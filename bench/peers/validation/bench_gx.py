"""Great Expectations (GX Core 1.x) benchmark.
usage: bench_gx.py SOURCE(parquet|csv) N REPEATS RESULT_FORMAT(SUMMARY|COMPLETE) OUTJSONL
"""

import os
import sys
import time

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
t_imp0 = time.perf_counter()
source, n, repeats, rfmt, outpath = (
    sys.argv[1],
    int(sys.argv[2]),
    int(sys.argv[3]),
    sys.argv[4],
    sys.argv[5],
)
sys.path.insert(0, os.path.dirname(__file__))
import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from common import *
from spec import *

t_import = time.perf_counter() - t_imp0
DATA = os.environ.get(
    "KEEL_BENCH_DATA", os.path.join(os.path.dirname(__file__), "..", "..", ".data")
)
rss0 = rss_mb()

t0 = time.perf_counter()
if source == "parquet":
    df = pd.read_parquet(f"{DATA}/typed_{n}.parquet")
else:
    df = pd.read_csv(f"{DATA}/raw_{n}.csv", parse_dates=["ts"])
t_read = time.perf_counter() - t0
rss_after_read = rss_mb()
maxrss_after_read = maxrss_mb()

t0 = time.perf_counter()
context = gx.get_context(mode="ephemeral")
try:  # turn off tqdm progress bars (stderr noise)
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
except Exception as e:
    print("could not disable progress bars:", e, file=sys.stderr)
ds = context.data_sources.add_pandas("pandas_src")
asset = ds.add_dataframe_asset(name="frame")
bd = asset.add_batch_definition_whole_dataframe("whole")
suite = context.suites.add(gx.ExpectationSuite(name="suite"))
E = []
E.append(gxe.ExpectTableColumnsToMatchSet(column_set=ALL_COLS, exact_match=True))
E += [
    gxe.ExpectColumnValuesToBeUnique(column=ID_COL),
    gxe.ExpectColumnValuesToNotBeNull(column=ID_COL),
    gxe.ExpectColumnValuesToBeOfType(column=ID_COL, type_="int64"),
]
E += [
    gxe.ExpectColumnValuesToNotBeNull(column=TS_COL),
    gxe.ExpectColumnValuesToBeBetween(
        column=TS_COL, min_value=pd.Timestamp(TS_MIN), max_value=pd.Timestamp(TS_MAX)
    ),
    gxe.ExpectColumnValuesToBeOfType(
        column=TS_COL, type_=str(df[TS_COL].dtype) if source == "parquet" else "datetime64[us]"
    ),
]
for c in FLOAT_COLS:
    lo, hi = FLOAT_RANGES[c]
    E += [
        gxe.ExpectColumnValuesToNotBeNull(column=c),
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi),
        gxe.ExpectColumnValuesToBeOfType(column=c, type_="float64"),
    ]
for c in INT_COLS:
    lo, hi = INT_RANGES[c]
    E += [
        gxe.ExpectColumnValuesToNotBeNull(column=c),
        gxe.ExpectColumnValuesToBeBetween(column=c, min_value=lo, max_value=hi),
        gxe.ExpectColumnValuesToBeOfType(column=c, type_="int64"),
    ]
for c in CAT_COLS:
    E += [
        gxe.ExpectColumnValuesToNotBeNull(column=c),
        gxe.ExpectColumnValuesToBeInSet(column=c, value_set=CATEGORIES[c]),
        gxe.ExpectColumnValuesToBeOfType(column=c, type_="str"),
    ]
for e in E:
    suite.add_expectation(e)
vd = context.validation_definitions.add(gx.ValidationDefinition(name="vd", data=bd, suite=suite))
t_setup = time.perf_counter() - t0

result_format = {"result_format": rfmt}
times = []
for r in range(repeats):
    t0 = time.perf_counter()
    res_v = vd.run(batch_parameters={"dataframe": df}, result_format=result_format)
    times.append(time.perf_counter() - t0)
maxrss_after_val = maxrss_mb()

out = dict(
    tool="great_expectations",
    gx_version=gx.__version__,
    pandas_version=pd.__version__,
    source=source,
    n=n,
    result_format=rfmt,
    n_expectations=len(E),
    t_import_s=round(t_import, 3),
    t_read_s=round(t_read, 3),
    t_setup_s=round(t_setup, 3),
    t_validate_s=[round(x, 3) for x in times],
    t_validate_median_s=round(sorted(times)[len(times) // 2], 3),
    rss_before_read_mb=round(rss0),
    rss_after_read_mb=round(rss_after_read),
    maxrss_after_read_mb=round(maxrss_after_read),
    maxrss_after_validate_mb=round(maxrss_after_val),
    success=bool(res_v.success),
)


def raised_msg(exc):
    """exception_info is either {raised_exception, exception_message,...} or {metric_id: {...}}."""
    if not exc:
        return None
    if not isinstance(exc, dict):
        exc = getattr(exc, "to_json_dict", lambda: {})()
    if exc.get("raised_exception"):
        return exc.get("exception_message")
    for v in exc.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            return v.get("exception_message")
    return None


failed, errored, per = [], [], {}
total_unexpected = 0
found = {}
for r in res_v.results:
    cfg = r.expectation_config
    col = cfg.kwargs.get("column", "<table>")
    name = f"{col}|{cfg.type}"
    msg = raised_msg(r.exception_info)
    if msg:
        errored.append(f"{name}: {str(msg)[:120]}")
        continue
    if not r.success:
        u = r.result.get("unexpected_count")
        per[name] = u if u is not None else f"observed={str(r.result.get('observed_value'))[:60]}"
        if u:
            total_unexpected += u
        idx = r.result.get("unexpected_index_list")
        if idx is not None:
            kind = (
                "null"
                if "not_be_null" in cfg.type
                else "unique"
                if "unique" in cfg.type
                else "unseen_cat"
                if "in_set" in cfg.type
                else "range"
                if "between" in cfg.type
                else cfg.type
            )
            found.setdefault((col, kind), set()).update(
                int(i) if not isinstance(i, dict) else int(next(iter(i.values()))) for i in idx
            )
        failed.append(name)
out.update(
    failed_expectations=len(failed),
    errored_expectations=len(errored),
    errored=errored,
    total_unexpected_count=total_unexpected,
    per_expectation=per,
    row_indices_reported=bool(found),
)
if found:
    truth = expected_sets(load_truth(n, DATA))
    out["truth_match"] = {
        f"{k[0]}:{k[1]}": (
            "exact"
            if found.get(k, set()) == v
            else f"got {len(found.get(k, set()))} / exp {len(v)}"
        )
        for k, v in truth.items()
    }
emit(out, outpath)
