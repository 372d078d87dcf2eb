import json
import os
import resource


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_truth(n, datadir):
    t = json.load(open(f"{datadir}/truth_{n}.json"))
    return t


def expected_sets(truth):
    """Expected failing-row sets per (column, kind) for the typed frame."""
    e = {}
    for k, rows in truth.items():
        if k.startswith("dup_id:"):
            continue
        if k == "dup_id_all_occurrences":
            e[("id", "unique")] = set(rows)
            continue
        kind, col = k.split(":")
        kind = {"nonnumeric": "null"}.get(kind, kind)  # typed frame: junk -> null
        e[(col, kind)] = set(rows)
    return e


def emit(result, outpath):
    result["tag"] = os.environ.get("BENCH_TAG", "")
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    line = json.dumps(result)
    print(line)
    with open(outpath, "a") as f:
        f.write(line + "\n")
