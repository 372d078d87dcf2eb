"""Dashboard pages with a year of hourly windows and fifty features.

Builds a home folder once (`bench/.data/dashboard/`): a binary classifier on 50 numeric
features (HistGradientBoosting, registered as `wide`, production), then a year of hourly window
profiles (8,760 windows, 300 rows each, as serving's profiler writes them; a shift planted in
10 features from day 200 on). Then starts `keel ui` on loopback (its own process) and times
each page: the first load after start (cold: nothing summarised yet), and warm loads (median of
5). With `--browser`, also the time until the model page's charts are drawn in headless
Chromium (Debian's), driven by Playwright.

The peer is keel's own earlier design (`--tools keel-uncached`: every page load judges every
window from its profile) — no other tool in `../shared/reference/peers.md` draws a year of
windows x features from merged profiles, so there is nothing else to run on the same data.

usage: .venv/bin/python bench/dashboard.py [--json] [--days 365] [--features 50] [--browser]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KEEL = Path(sys.executable).parent / "keel"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
START = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
ROWS_PER_WINDOW = 300
SHIFTED = 10  # features shifted from day 200 on


def build(home: Path, days: int, features: int) -> None:
    """The registered model and its year of window profiles (skipped when already built)."""
    import polars as pl
    import sqlalchemy as sa
    from rich.progress import Progress

    from keel.data import DatasetStore, infer_contract
    from keel.monitor.profiles import ProfileSpec, stored, update_columns
    from keel.registry import ModelStore
    from keel.store import ArtifactStore, Database, tables
    from keel.train import report_of, spec_from_dict, train

    marker = home / f"built-{days}-{features}-stored"  # profiles as serving stores them
    if marker.exists():
        return
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    rng = np.random.default_rng(7)
    names = [f"f{i:02d}" for i in range(features)]
    x = rng.normal(size=(6000, features))
    logit = x[:, :5].sum(axis=1) - 1.0
    frame = pl.DataFrame({n: x[:, i] for i, n in enumerate(names)}).with_columns(
        pl.Series("label", (rng.random(6000) < 1 / (1 + np.exp(-logit))).astype(int))
    )
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"bench"), ModelStore(db, art)
    contract = infer_contract(frame, name="wide", target="label")
    ref = ds.ingest(frame, contract, "wide").version.ref
    spec = spec_from_dict(
        {
            "name": "hgb",
            "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
            "params": {"max_iter": 30},
        }
    )
    train([spec], ref, datasets=ds, models=ms, register="wide")
    ms.set_alias("wide", "production", 1)
    pspec = ProfileSpec.from_evaluation(report_of(ms.get("wide@1")))
    t = tables.window_profiles
    hours = days * 24
    with Progress() as progress:
        task = progress.add_task("a year of hourly window profiles", total=hours)
        batch = []
        for h in range(hours):
            start = START + dt.timedelta(hours=h)
            xs = rng.normal(size=(ROWS_PER_WINDOW, features))
            if h >= 200 * 24:
                xs[:, :SHIFTED] += 0.5
            score = 1 / (1 + np.exp(-(xs[:, :5].sum(axis=1) - 1.0)))
            profile = pspec.empty()
            update_columns(
                profile,
                {n: xs[:, i] for i, n in enumerate(names)},
                score,
                pl.Series((score > 0.5).astype(int).astype(str)),
                rng.gamma(2.0, 1.0, ROWS_PER_WINDOW),
            )
            batch.append(
                {
                    "model": "wide",
                    "version": 1,
                    "role": "production",
                    "segment": "",
                    "window_start": start,
                    "writer": "bench",
                    "window_s": 3600,
                    "rows": ROWS_PER_WINDOW,
                    "profile": stored(profile),  # as serving's profiler writes it
                    "updated_at": start + dt.timedelta(hours=1),
                }
            )
            if len(batch) == 500 or h == hours - 1:
                with db.begin() as conn:
                    conn.execute(sa.insert(t), batch)
                progress.advance(task, len(batch))
                batch = []
    db.dispose()
    marker.touch()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(home: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, "KEEL_HOME": str(home), "KEEL_WINDOW_S": "3600", **env_extra}
    proc = subprocess.Popen(
        [str(KEEL), "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/ui/static/vega-embed.min.js", timeout=1)
            return proc, url
        except httpx.HTTPError as exc:
            if proc.poll() is not None:
                why = proc.stderr.read().decode() if proc.stderr else "keel ui died"
                raise RuntimeError(why) from exc
            time.sleep(0.1)
    raise RuntimeError("keel ui did not start")


PAGES = ("/ui", "/ui/models/wide", "/ui/models/wide/versions/1", "/ui/data")


def time_pages(url: str, repeats: int = 5) -> dict[str, dict[str, float]]:
    import httpx

    out = {}
    with httpx.Client(timeout=600) as client:
        for path in PAGES:
            t0 = time.perf_counter()
            r = client.get(url + path)
            cold = time.perf_counter() - t0
            r.raise_for_status()
            warm = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                client.get(url + path).raise_for_status()
                warm.append(time.perf_counter() - t0)
            out[path] = {
                "cold_ms": round(cold * 1000, 1),
                "warm_ms": round(statistics.median(warm) * 1000, 1),
                "bytes": len(r.content),
                "wire_bytes": r.num_bytes_downloaded,
            }
    return out


def time_browser(url: str) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        page = browser.new_page()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            page.goto(url + "/ui/models/wide")
            page.wait_for_function(
                "window.keelViews && Object.keys(window.keelViews).length >= 3", timeout=120_000
            )
            times.append(time.perf_counter() - t0)
        cells = page.evaluate(
            "({heat: keelViews.heat.data('cells').length, year: keelViews.year.data('days').length,"
            " perf: keelViews.perf.data('points').length})"
        )
        browser.close()
    return {"charts_drawn_ms": round(statistics.median(times) * 1000), "points": cells}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--tools", default="keel,keel-uncached")
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    home = HERE / ".data" / "dashboard"
    build(home, args.days, args.features)
    results: dict[str, object] = {
        "days": args.days,
        "features": args.features,
        "windows": args.days * 24,
    }
    for tool in args.tools.split(","):
        env = {"KEEL_SUMMARIES": "false"} if tool == "keel-uncached" else {}
        # a fresh cache per tool: drop summaries made by an earlier run
        subprocess.run(
            [sys.executable, "-c", "import sys, sqlite3; c = sqlite3.connect(sys.argv[1]); "
             "c.execute('DROP TABLE IF EXISTS bench_none'); "
             "[c.execute('DELETE FROM window_summaries') for t in c.execute(\"SELECT name FROM sqlite_master WHERE name='window_summaries'\").fetchall()]; c.commit()",
             str(home / "keel.db")],
            check=True,
        )  # fmt: skip
        proc, url = serve(home, env)
        try:
            entry: dict[str, object] = {"pages": time_pages(url)}
            if args.browser:
                entry["browser"] = time_browser(url)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        results[tool] = entry
        if not args.json:
            print(tool, json.dumps(entry, indent=1))
    if "keel" in results and "keel-uncached" in results:
        k, u = results["keel"], results["keel-uncached"]
        results["ratio_model_page_warm_vs_uncached"] = round(
            u["pages"]["/ui/models/wide"]["warm_ms"] / k["pages"]["/ui/models/wide"]["warm_ms"],
            1,  # type: ignore[index]
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
