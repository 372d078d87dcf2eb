"""Offline drift: keel against Evidently's DataDriftPreset on the same files, in the same run.

Data: the peers' generator (`bench/peers/drift/gen_data.py`, fixed seed): reference and current,
15 numeric + 5 categorical columns + target + prediction, drift planted in 7 columns (9 drift
in truth, since target and prediction follow). Sizes 100k and 1M rows each.

Measured per tool and size, as a whole process (start, import, read both files, compare,
answer): wall time and peak memory (max RSS of the child). keel runs `keel monitor drift
--exact --json`; Evidently runs the harness's `evidently_bench.py` in its own virtual
environment (`bash bench/setup_peers.sh --drift`). Profile mode is also timed in process:
comparing two profiles made beforehand, as monitoring does with serving's window profiles.

usage: .venv/bin/python bench/drift.py [--json] [--sizes 100000,1000000] [--tools keel,evidently]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers" / "drift"
DATA = HERE / ".data" / "drift"
RESULTS = HERE / ".data" / "drift-results"
EVIDENTLY = HERE / ".venvs" / "evidently" / "bin" / "python"
KEEL = Path(sys.executable).parent / "keel"


def ensure_data() -> dict[str, object]:
    if not (DATA / "reference_1000000.parquet").exists():
        env = {**os.environ, "KEEL_DRIFT_DATA": str(DATA)}
        subprocess.run([sys.executable, "gen_data.py"], cwd=PEERS, env=env, check=True)
    return json.loads((DATA / "meta.json").read_text())  # type: ignore[no-any-return]


def timed(
    cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict[str, object]:
    """Run one child; its wall time, peak memory and standard output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr[-2000:]}")
    # ru_maxrss of children is the largest child so far: run the small sizes first
    return {
        "wall_s": round(wall, 2),
        "peak_mb": round(max(peak, before) / 1024),
        "stdout": proc.stdout,
    }


def run_keel(n: int) -> dict[str, object]:
    out = timed(
        [
            str(KEEL),
            "monitor",
            "drift",
            str(DATA / f"reference_{n}.parquet"),
            str(DATA / f"current_{n}.parquet"),
            "--exact",
            "--json",
        ]
    )
    report = json.loads(str(out.pop("stdout")))
    return {**out, "flagged": report["drifted_columns"]}


def run_keel_profiles(n: int) -> dict[str, object]:
    """Profile mode: the comparison of two ready profiles (what monitoring does per window)."""
    import polars as pl

    from keel.monitor.drift import compare_profiles
    from keel.monitor.offline import column_kinds, profile_of
    from keel.monitor.windowprofile import WindowProfile

    ref = pl.read_parquet(DATA / f"reference_{n}.parquet")
    cur = pl.read_parquet(DATA / f"current_{n}.parquet")
    numeric, categorical = column_kinds(ref)
    t0 = time.perf_counter()
    ref_profile, edges = profile_of(ref, numeric, categorical)
    cur_profile, _ = profile_of(cur, numeric, categorical, edges)
    current = WindowProfile.from_json(cur_profile)  # as read_windows hands it over
    build = time.perf_counter() - t0
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        report = compare_profiles(ref_profile, current)
        times.append(time.perf_counter() - t0)
    times.sort()
    return {
        "compare_ms": round(times[len(times) // 2] * 1000, 2),
        "build_profiles_s": round(build, 2),
        "flagged": report.drifted_columns,
    }


def run_evidently(n: int) -> dict[str, object]:
    env = {
        **os.environ,
        "DO_NOT_TRACK": "1",
        "KEEL_DRIFT_DATA": str(DATA),
        "KEEL_DRIFT_RESULTS": str(RESULTS),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = timed([str(EVIDENTLY), "evidently_bench.py", str(n), "--no-json"], env=env, cwd=PEERS)
    info = json.loads((RESULTS / f"evidently_{n}.json").read_text())
    return {"wall_s": out["wall_s"], "peak_mb": out["peak_mb"], "flagged": info["flagged"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--tools", default="keel,evidently")
    args = ap.parse_args()
    meta = ensure_data()
    truth = set(meta["drift"]) | {"target", "prediction"}  # type: ignore[call-overload]
    columns = set(meta["numeric"]) | set(meta["categorical"]) | {"target", "prediction"}  # type: ignore[call-overload]
    tools = args.tools.split(",")
    results: dict[str, dict[str, object]] = {}
    for n in (int(s) for s in args.sizes.split(",")):
        point: dict[str, object] = {}
        if "keel" in tools:
            point["keel_exact"] = run_keel(n)
            point["keel_profile"] = run_keel_profiles(n)
        if "evidently" in tools and EVIDENTLY.exists():
            point["evidently"] = run_evidently(n)
        for r in point.values():
            assert isinstance(r, dict)
            flagged = set(r["flagged"])
            r["true_drift_flagged"] = len(flagged & truth)
            r["false_alarms"] = sorted(flagged & (columns - truth))
            r["missed"] = sorted(truth - flagged)
        if "keel_exact" in point and "evidently" in point:
            point["ratio_vs_evidently"] = round(
                point["evidently"]["wall_s"] / point["keel_exact"]["wall_s"],
                1,  # type: ignore[index]
            )
        results[str(n)] = point
        if not args.json:
            for tool, r in point.items():
                print(n, tool, r)
    out: dict[str, object] = {"sizes": results, "truly_drifting": sorted(truth)}
    if "1000000" in results and "ratio_vs_evidently" in results["1000000"]:
        out["ratio_vs_evidently_1m"] = results["1000000"]["ratio_vs_evidently"]
    if args.json:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
