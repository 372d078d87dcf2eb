"""Synthetic reference/current frames for drift-tool benchmarking.

Fixed seed. 1M rows are generated per frame; the 10k and 100k frames are the
first N rows of the 1M frames (rows are i.i.d., so prefixes are valid samples).

Columns (22):
  numeric (15): num_norm_0..4 (normal), num_logn_0..3 (lognormal),
                num_unif_0..2 (uniform), num_cnt_0..2 (integer counts)
  categorical (5): cat_3, cat_5, cat_10, cat_20, cat_50 (Zipf-like skew, strings)
  target (int 0/1), prediction (float probability from an imperfect model)

Ground-truth drift injected into `current` (see DRIFT_SPEC below):
  num_norm_0 : mean +0.1 sd
  num_unif_0 : mean +0.2 sd (additive shift)
  num_logn_0 : mean +0.3 sd (additive shift of the lognormal values)
  num_cnt_0  : Poisson(4) -> Poisson(5)  (mean +0.5 sd)
  num_norm_2 : sd x1.5 (variance change, same mean)
  cat_5      : frequencies changed (probability vector reversed/mixed)
  cat_20     : frequencies changed (3 categories moved mass)
  everything else undrifted; target/prediction drift only as a consequence
  (prediction depends on num_norm_0 and num_logn_0, so it shifts slightly).
"""
import json
import os
import sys

import numpy as np
import pandas as pd

OUT = os.environ.get("KEEL_DRIFT_DATA", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
SEED = 20240601
N_MAX = 1_000_000
SIZES = [10_000, 100_000, 1_000_000]

NUM_COLS = ([f"num_norm_{i}" for i in range(5)] + [f"num_logn_{i}" for i in range(4)]
            + [f"num_unif_{i}" for i in range(3)] + [f"num_cnt_{i}" for i in range(3)])
CAT_COLS = ["cat_3", "cat_5", "cat_10", "cat_20", "cat_50"]
CAT_K = {"cat_3": 3, "cat_5": 5, "cat_10": 10, "cat_20": 20, "cat_50": 50}

DRIFT_SPEC = {
    "num_norm_0": "mean +0.1 sd",
    "num_unif_0": "mean +0.2 sd",
    "num_logn_0": "mean +0.3 sd",
    "num_cnt_0": "Poisson(4)->Poisson(5), mean +0.5 sd",
    "num_norm_2": "sd x1.5 (variance change)",
    "cat_5": "category frequencies changed",
    "cat_20": "category frequencies changed (3 categories)",
}

NORM_PARAMS = [(0.0, 1.0), (10.0, 3.0), (5.0, 2.0), (-2.0, 0.5), (100.0, 15.0)]
LOGN_PARAMS = [(0.0, 0.5), (1.0, 1.0), (2.0, 0.25), (0.5, 0.75)]
UNIF_PARAMS = [(0.0, 10.0), (-1.0, 1.0), (100.0, 200.0)]
CNT_PARAMS = [("poisson", 4.0), ("poisson", 0.7), ("negbin", (3, 0.2))]


def zipf_probs(k, s=1.1):
    p = 1.0 / np.arange(1, k + 1) ** s
    return p / p.sum()


def cat_probs(col, drifted):
    k = CAT_K[col]
    p = zipf_probs(k)
    if drifted and col == "cat_5":
        # mix toward the reversed frequency order
        p = 0.8 * p + 0.2 * p[::-1]
        p = p / p.sum()
    if drifted and col == "cat_20":
        p = p.copy()
        # take 30% of mass from the top category and give it to categories 5 and 12, 19
        moved = 0.3 * p[0]
        p[0] -= moved
        p[5] += moved / 3
        p[12] += moved / 3
        p[19] += moved / 3
        p = p / p.sum()
    return p


def lognormal_sd(mu, sigma):
    return np.sqrt((np.exp(sigma ** 2) - 1) * np.exp(2 * mu + sigma ** 2))


def make_frame(rng, n, drifted):
    d = {}
    for i, (m, s) in enumerate(NORM_PARAMS):
        col = f"num_norm_{i}"
        if drifted and col == "num_norm_0":
            d[col] = rng.normal(m + 0.1 * s, s, n)
        elif drifted and col == "num_norm_2":
            d[col] = rng.normal(m, 1.5 * s, n)
        else:
            d[col] = rng.normal(m, s, n)
    for i, (mu, sg) in enumerate(LOGN_PARAMS):
        col = f"num_logn_{i}"
        x = rng.lognormal(mu, sg, n)
        if drifted and col == "num_logn_0":
            x = x + 0.3 * lognormal_sd(mu, sg)
        d[col] = x
    for i, (a, b) in enumerate(UNIF_PARAMS):
        col = f"num_unif_{i}"
        x = rng.uniform(a, b, n)
        if drifted and col == "num_unif_0":
            x = x + 0.2 * (b - a) / np.sqrt(12)
        d[col] = x
    for i, (kind, par) in enumerate(CNT_PARAMS):
        col = f"num_cnt_{i}"
        if kind == "poisson":
            lam = par
            if drifted and col == "num_cnt_0":
                lam = par + 0.5 * np.sqrt(par)  # 4 -> 5
            d[col] = rng.poisson(lam, n).astype(np.int64)
        else:
            r, p = par
            d[col] = rng.negative_binomial(r, p, n).astype(np.int64)
    for col in CAT_COLS:
        k = CAT_K[col]
        p = cat_probs(col, drifted)
        idx = rng.choice(k, size=n, p=p)
        labels = np.array([f"{col}_v{j:02d}" for j in range(k)], dtype=object)
        d[col] = labels[idx]
    # true probability and target (same functional form in both frames)
    logit = (-1.0 + 0.8 * d["num_norm_0"] + 0.4 * (d["num_norm_1"] - 10.0) / 3.0
             + 0.5 * np.log(np.maximum(d["num_logn_0"], 1e-9))
             + 0.6 * (d["cat_3"] == "cat_3_v00") - 0.3 * (d["num_cnt_1"] > 0))
    prob = 1.0 / (1.0 + np.exp(-logit))
    d["target"] = (rng.random(n) < prob).astype(np.int64)
    # imperfect model: noisy logit
    model_logit = logit + rng.normal(0.0, 0.8, n)
    d["prediction"] = 1.0 / (1.0 + np.exp(-model_logit))
    return pd.DataFrame(d)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng_ref = np.random.default_rng(SEED)
    rng_cur = np.random.default_rng(SEED + 1)
    ref = make_frame(rng_ref, N_MAX, drifted=False)
    cur = make_frame(rng_cur, N_MAX, drifted=True)
    for n in SIZES:
        for name, df in (("reference", ref), ("current", cur)):
            path = os.path.join(OUT, f"{name}_{n}.parquet")
            df.iloc[:n].reset_index(drop=True).to_parquet(path, index=False)
            print("wrote", path, os.path.getsize(path))
    meta = {"seed": SEED, "sizes": SIZES, "numeric": NUM_COLS, "categorical": CAT_COLS,
            "target": "target", "prediction": "prediction", "drift": DRIFT_SPEC}
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)


if __name__ == "__main__":
    main()
