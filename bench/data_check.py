"""Validate 1,000,000 rows x 22 columns with 1 % known faults: keel against named peers.

In the same run: keel (this environment), pandera with its Polars back end (lazy, all failures
collected), Great Expectations 1.x, and a hand-written Polars validator (the floor). Each peer
runs in its own virtual environment under bench/.venvs (made by `bench/setup_peers.sh`), on the
same Parquet file, with the same checks: dtype, null, range, category and unique.

usage: .venv/bin/python bench/data_check.py [--rows N] [--repeats R] [--json] [--skip-gx]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers" / "validation"
DATA = Path(os.environ.get("KEEL_BENCH_DATA", HERE / ".data"))
VENVS = HERE / ".venvs"
sys.path.insert(0, str(PEERS))
from spec import (  # noqa: E402  (the peers' shared column spec)
    CAT_COLS,
    CATEGORIES,
    FLOAT_COLS,
    FLOAT_RANGES,
    ID_COL,
    INT_COLS,
    INT_RANGES,
    TS_COL,
    TS_MAX,
    TS_MIN,
)

from keel.data import contract_from_dict, validate  # noqa: E402


def keel_contract() -> object:
    columns: dict[str, dict[str, object]] = {
        ID_COL: {"type": "int", "role": "id", "unique": True},
        TS_COL: {"type": "datetime", "role": "timestamp", "min": TS_MIN, "max": TS_MAX},
    }
    for c in FLOAT_COLS:
        columns[c] = {"type": "float", "min": FLOAT_RANGES[c][0], "max": FLOAT_RANGES[c][1]}
    for c in INT_COLS:
        columns[c] = {"type": "int", "min": INT_RANGES[c][0], "max": INT_RANGES[c][1]}
    for c in CAT_COLS:
        columns[c] = {"type": "category", "categories": CATEGORIES[c]}
    # the peers check no duplicate rows, so neither does keel here
    return contract_from_dict({"name": "bench", "duplicate_rows": "allow", "columns": columns})


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_keel(n: int, repeats: int) -> dict[str, object]:
    frame = pl.read_parquet(DATA / f"typed_{n}.parquet")
    contract = keel_contract()
    rss_read = maxrss_mb()
    validate(frame, contract)  # warm-up: Polars compiles its kernels once per process
    times, report = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        report = validate(frame, contract)
        times.append(time.perf_counter() - t0)
    assert report is not None
    truth = json.loads((DATA / f"truth_{n}.json").read_text())
    expected: dict[tuple[str, str], set[int]] = {}
    for key, rows in truth.items():
        if key.startswith("dup_id:"):
            continue
        if key == "dup_id_all_occurrences":
            expected[(ID_COL, "duplicate_id")] = set(rows)
            continue
        kind, col = key.split(":")
        rule = {"null": "null", "nonnumeric": "null", "range": "range", "unseen_cat": "category"}[
            kind
        ]
        expected[(col, rule)] = set(rows)
    found = {(f.column or "*", f.rule): set(f.rows.tolist()) for f in report.failures}
    match = {
        f"{c}:{r}": "exact"
        if found.get((c, r), set()) == rows
        else f"got {len(found.get((c, r), set()))} / exp {len(rows)}"
        for (c, r), rows in expected.items()
    }
    extra = sorted(f"{c}:{r}" for (c, r) in found if (c, r) not in expected)
    all_expected = set().union(*expected.values())
    return {
        "tool": "keel",
        "n": n,
        "t_validate_s": [round(t, 4) for t in times],
        "t_validate_median_s": round(float(np.median(times)), 4),
        "maxrss_after_read_mb": round(rss_read),
        "maxrss_after_validate_mb": round(maxrss_mb()),
        "distinct_failing_rows": len(report.bad_rows),
        "expected_failing_rows": len(all_expected),
        "failing_rows_exact": set(report.bad_rows.tolist()) == all_expected,
        "truth_match": match,
        "unexpected_checks": extra,
        "counts_by_rule": report.counts_by_rule,
    }


def run_peer(cmd: list[str], out: Path, timeout_s: int = 900) -> dict[str, object] | None:
    env = {**os.environ, "KEEL_BENCH_DATA": str(DATA)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        print(
            f"peer failed: {' '.join(cmd[:3])}: {proc.stderr.strip().splitlines()[-1:]}",
            file=sys.stderr,
        )
        return None
    lines = out.read_text().strip().splitlines()
    out.unlink()
    return json.loads(lines[-1])


def summary(result: dict[str, object]) -> dict[str, object]:
    match = result.get("truth_match") or {}
    exact = all(v == "exact" for v in match.values()) if match else False  # type: ignore[union-attr]
    return {
        "validate_s": result.get("t_validate_median_s"),
        "peak_rss_mb": result.get("maxrss_after_validate_mb"),
        "failing_rows_found": result.get("distinct_failing_rows"),
        "all_faults_found_exactly": exact,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-gx", action="store_true", help="Great Expectations takes ~6 s a repeat")
    args = ap.parse_args()
    n = args.rows
    if not (DATA / f"typed_{n}.parquet").exists():
        subprocess.run(
            [sys.executable, str(PEERS / "gen_data.py"), str(n), str(DATA)],
            check=True,
            capture_output=True,
        )

    # Peers run first: Linux carries a process's peak RSS across fork and exec, so a peer
    # started after keel loaded the data would report keel's peak as its own.
    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "peer.jsonl"
        py = sys.executable
        peers = {
            "polars-handwritten": [
                py,
                str(PEERS / "bench_polars_baseline.py"),
                "parquet",
                str(n),
                str(args.repeats),
                str(out),
            ],
            "pandera-polars": [
                str(VENVS / "pandera/bin/python"),
                str(PEERS / "bench_pandera.py"),
                "polars",
                "parquet",
                str(n),
                str(args.repeats),
                str(out),
            ],
        }
        if not args.skip_gx:
            peers["great-expectations"] = [
                str(VENVS / "gx/bin/python"),
                str(PEERS / "bench_gx.py"),
                "parquet",
                str(n),
                "1",
                "COMPLETE",
                str(out),
            ]
        for name, cmd in peers.items():
            if not Path(cmd[0]).exists():
                print(
                    f"{name}: no environment at {cmd[0]}; run bash bench/setup_peers.sh",
                    file=sys.stderr,
                )
                continue
            res = run_peer(cmd, out)
            if res is not None:
                results[name] = res
    results = {"keel": run_keel(n, args.repeats), **results}

    table = {name: summary(res) for name, res in results.items()}
    keel_s = float(table["keel"]["validate_s"])  # type: ignore[arg-type]
    ratios = {
        f"{name}_over_keel": round(float(row["validate_s"]) / keel_s, 2)  # type: ignore[arg-type]
        for name, row in table.items()
        if name != "keel" and row["validate_s"]
    }
    doc = {
        "rows": n,
        "columns": 22,
        "repeats": args.repeats,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "polars": pl.__version__,
        "summary": table,
        "ratios": ratios,
        "keel_detail": results["keel"],
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(
        f"validate {n:,} rows x 22 columns, median of {args.repeats} (GX: 1), same Parquet file\n"
    )
    print(
        f"{'tool':<22}{'seconds':>9}{'peak MB':>9}{'bad rows':>10}  every fault found, nothing else"
    )
    for name, row in table.items():
        print(
            f"{name:<22}{row['validate_s']!s:>9}{row['peak_rss_mb']!s:>9}{row['failing_rows_found']!s:>10}  {row['all_faults_found_exactly']}"
        )
    print()
    for key, value in ratios.items():
        print(f"{key:<34} {value:>6}x")


if __name__ == "__main__":
    main()
