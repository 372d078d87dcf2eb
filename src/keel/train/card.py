"""Model cards in Markdown and HTML, built from one list of sections so the two never disagree."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

Section = tuple[str, list[str], list[list[str]] | None]  # title, paragraphs, table (header first)


def card_sections(
    name: str,
    version: int | None,
    spec: dict[str, Any],
    report: dict[str, Any],
    gates: list[dict[str, Any]],
    dataset: dict[str, Any],
) -> list[Section]:
    task = report["task"]
    title = f"{name}" + (f" version {version}" if version is not None else " (candidate)")
    if report.get("evaluated") is False:  # an ONNX graph imported without data
        return [
            (
                title,
                [
                    f"An imported ONNX graph: {task} of `{report.get('target')}` from "
                    f"{len(report['features'])} features ({', '.join(report['features'])}).",
                    "Not evaluated: it was imported without a dataset version, so it has no "
                    "holdout metrics, no gates and no reference profile for drift.",
                ],
                None,
            )
        ]
    sections: list[Section] = [
        (
            title,
            [
                f"Intended use: {task} of `{report['target']}` from {len(report['features'])} features of contract `{dataset.get('ref', '?').split('@')[0]}`; "
                "outputs are scores for decisions reviewed by people, not for uses the training data does not cover.",
                f"Estimator: `{spec['estimator']}` with params `{spec.get('params') or {}}`.",
            ],
            None,
        ),
        (
            "Data and lineage",
            [],
            [
                ["item", "value"],
                ["dataset version", str(dataset.get("ref"))],
                ["source file", str(dataset.get("source_uri"))],
                ["source sha256", str(dataset.get("source_sha256"))],
                ["contract sha256", str(dataset.get("contract_sha256"))],
                [
                    "split",
                    f"{report['split']['method']}: {report['split']['train_rows']} train / {report['split']['holdout_rows']} holdout rows",
                ],
                ["features", ", ".join(report["features"])],
            ],
        ),
        (
            "Holdout metrics (95 % bootstrap intervals) and overfitting",
            [],
            [["metric", "holdout", "interval", "train", "gap (train - holdout)"]]
            + [
                [
                    m,
                    _f(e["value"]),
                    f"{_f(e['low'])} .. {_f(e['high'])}",
                    _f(report["train_metrics"][m]["value"]),
                    _f(report["overfit"].get(m)),
                ]
                for m, e in report["metrics"].items()
            ],
        ),
    ]
    seg = report.get("segments") or {}
    if seg:
        metric = seg["metric"]
        rows = [["segment", "rows", metric, "interval", "judged"]]
        for g, s in seg["groups"].items():
            e = s["metrics"][metric]
            judged = s.get("judged", True)
            rows.append(
                [
                    g + (" (worst)" if g == seg["worst"] else ""),
                    str(s["rows"]),
                    _f(e["value"]),
                    f"{_f(e['low'])} .. {_f(e['high'])}",
                    "yes" if judged else f"no: {s.get('reason')}",
                ]
            )
        paragraphs = []
        if seg.get("not_judged"):
            paragraphs.append(
                f"Segments under {seg.get('min_group_rows')} holdout rows, or with one class only, "
                "are not judged: no gate and no worst segment is decided by them."
            )
        sections.append((f"Per segment ({seg['column']})", paragraphs, rows))
    for col, fr in (report.get("fairness") or {}).items():
        rows = [["group", "rows", "selection rate", "TPR", "FPR"]]
        rows += [
            [g, _f(v.get("count")), _f(v.get("selection_rate")), _f(v.get("tpr")), _f(v.get("fpr"))]
            for g, v in fr["by_group"].items()
        ]
        rows += [
            [g["group"], str(g["rows"]), f"not judged: {g['reason']}", "-", "-"]
            for g in fr.get("not_judged", [])
        ]
        paragraphs = [
            f"Demographic parity difference {_f(fr['demographic_parity_difference'])}, ratio {_f(fr['demographic_parity_ratio'])}; "
            f"equalized odds difference {_f(fr['equalized_odds_difference'])}"
            + (
                f", between groups of at least {fr['min_group_rows']} rows with both classes."
                if "min_group_rows" in fr
                else "."
            )
        ]
        if fr.get("note"):
            paragraphs.append(f"Not measured: {fr['note']}.")
        bands = fr.get("bands")
        if bands:
            how = (
                f"{bands.get('quantiles')} quantile bands"
                if bands["method"] == "quantile"
                else "the bands given in the spec"
            )
            paragraphs.append(
                f"{col} is numeric: grouped into {how}, cut at {', '.join(_f(e) for e in bands['edges']) or 'nothing (one value)'}."
            )
        sections.append((f"Fairness on {col}", paragraphs, rows))
    exp = report.get("explanations") or {}
    if exp:
        rows = [["feature", "mean |SHAP|"]] + [
            [f, _f(v)] for f, v in list(exp["importance"].items())[:15]
        ]
        sections.append(
            (
                "Global importance (SHAP, " + exp["method"] + f", {exp['rows_explained']} rows)",
                [],
                rows,
            )
        )
    rt = report.get("runtime") or {}
    if rt:
        sections.append(
            (
                "Runtime and cost",
                [f"Measured on {rt['measured_on']}."],
                [
                    ["figure", "value"],
                    ["size on disk", f"{rt['size_bytes'] / 1024:.1f} KiB"],
                    ["single-row latency p50 / p99", f"{rt['p50_ms']:.3f} / {rt['p99_ms']:.3f} ms"],
                    [
                        "throughput at batch 64 / 1000",
                        f"{rt['rows_per_s_batch_64']:.0f} / {rt['rows_per_s_batch_1000']:.0f} rows/s",
                    ],
                    [
                        "cost of a million predictions",
                        f"${rt['cost_per_million_usd']:.4f} at ${rt['cpu_hour_usd']}/CPU-hour",
                    ],
                ],
            )
        )
    if gates:
        rows = [["gate", "value", "threshold", "verdict"]] + [
            [
                g["name"],
                _f(g["value"])
                + (
                    f" (95 % interval {_f(g['low'])} .. {_f(g['high'])})"
                    if g.get("low") is not None and g.get("high") is not None
                    else ""
                ),
                f"{g['op']} {g['threshold']:g}",
                ("pass" if g["passed"] else "FAIL") + (f" ({g['note']})" if g.get("note") else ""),
            ]
            for g in gates
        ]
        sections.append(("Gates", [], rows))
    limits = [
        "Trained on the rows of one dataset version; performance on traffic unlike it is not known until monitoring says so."
    ]
    if seg.get("worst"):
        limits.append(f"Weakest on segment {seg['worst']!r} of {seg['column']!r}.")
    if not report.get("fairness"):
        limits.append(
            "No fairness figures: the contract names no sensitive column, or the task is not binary."
        )
    sections.append(("Known limits", limits, None))
    return sections


def _f(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_card_markdown(
    name: str,
    version: int | None,
    spec: dict[str, Any],
    report: dict[str, Any],
    gates: list[dict[str, Any]],
    dataset: dict[str, Any],
) -> str:
    out: list[str] = []
    for i, (title, paragraphs, table) in enumerate(
        card_sections(name, version, spec, report, gates, dataset)
    ):
        out.append(("# " if i == 0 else "## ") + title)
        out.append("")
        out += [p + "\n" for p in paragraphs]
        if table:
            out.append("| " + " | ".join(table[0]) + " |")
            out.append("|" + "---|" * len(table[0]))
            out += [
                "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in table[1:]
            ]
            out.append("")
    return "\n".join(out)


def render_card_html(
    name: str,
    version: int | None,
    spec: dict[str, Any],
    report: dict[str, Any],
    gates: list[dict[str, Any]],
    dataset: dict[str, Any],
) -> str:
    """The card as one HTML page (`templates/card.html`, autoescaped; no script)."""
    sections = card_sections(name, version, spec, report, gates, dataset)
    return _environment().get_template("card.html").render(name=name, sections=sections)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("keel.train", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
