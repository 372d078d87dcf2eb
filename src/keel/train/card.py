"""Model cards in Markdown and HTML, built from one list of sections so the two never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import jinja2

from keel.train.report import EvaluationReport, GateResult

Section = tuple[str, list[str], list[list[str]] | None]  # title, paragraphs, table (header first)


def card_sections(
    name: str,
    version: int | None,
    spec: Mapping[str, Any],
    report: EvaluationReport,
    dataset: Mapping[str, Any],
) -> list[Section]:
    """The card's sections, in order: what the model is, its data, its measurements, its
    gates and its known limits. An ONNX graph imported without data gets one section."""
    title = f"{name}" + (f" version {version}" if version is not None else " (candidate)")
    if report.evaluated is False:  # an ONNX graph imported without data
        return [_unevaluated(title, report)]
    sections: list[Section] = [
        _overview(title, spec, report, dataset),
        _lineage(report, dataset),
        _holdout(report),
    ]
    seg = report.segments
    if seg:
        sections.append(_segments(seg))
    sections += [_fairness(col, fr) for col, fr in report.fairness.items()]
    if report.explanations:
        sections.append(_importance(report.explanations))
    if report.runtime:
        sections.append(_runtime(report.runtime))
    if report.gates:
        sections.append(_gates(report.gates))
    limits = [
        "Trained on the rows of one dataset version; performance on traffic unlike it is not known until monitoring says so."
    ]
    if seg.get("worst"):
        limits.append(f"Weakest on segment {seg['worst']!r} of {seg['column']!r}.")
    if not report.fairness:
        limits.append(
            "No fairness figures: the contract names no sensitive column, or the task is not binary."
        )
    sections.append(("Known limits", limits, None))
    return sections


def _unevaluated(title: str, report: EvaluationReport) -> Section:
    return (
        title,
        [
            f"An imported ONNX graph: {report.task} of `{report.target}` from "
            f"{len(report.features)} features ({', '.join(report.features)}).",
            "Not evaluated: it was imported without a dataset version, so it has no "
            "holdout metrics, no gates and no reference profile for drift.",
        ],
        None,
    )


def _overview(
    title: str, spec: Mapping[str, Any], report: EvaluationReport, dataset: Mapping[str, Any]
) -> Section:
    return (
        title,
        [
            f"Intended use: {report.task} of `{report.target}` from {len(report.features)} features of contract `{dataset.get('ref', '?').split('@')[0]}`; "
            "outputs are scores for decisions reviewed by people, not for uses the training data does not cover.",
            f"Estimator: `{spec['estimator']}` with params `{spec.get('params') or {}}`.",
        ],
        None,
    )


def _lineage(report: EvaluationReport, dataset: Mapping[str, Any]) -> Section:
    split = report.split
    return (
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
                f"{split['method']}: {split['train_rows']} train / {split['holdout_rows']} holdout rows",
            ],
            ["features", ", ".join(report.features)],
        ],
    )


def _holdout(report: EvaluationReport) -> Section:
    return (
        "Holdout metrics (95 % bootstrap intervals) and overfitting",
        [],
        [["metric", "holdout", "interval", "train", "gap (train - holdout)"]]
        + [
            [
                m,
                _f(e["value"]),
                f"{_f(e['low'])} .. {_f(e['high'])}",
                _f(report.train_metrics[m]["value"]),
                _f(report.overfit.get(m)),
            ]
            for m, e in report.metrics.items()
        ],
    )


def _segments(seg: Mapping[str, Any]) -> Section:
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
            f"Segments under {seg.get('min_group_rows')} holdout rows, or with "
            + (
                "one class only"
                if seg.get("min_group_minority", 1) <= 1
                else f"under {seg['min_group_minority']} holdout rows of a class"
            )
            + ", are not judged: no gate and no worst segment is decided by them."
        )
    return (f"Per segment ({seg['column']})", paragraphs, rows)


def _fairness(col: str, fr: Mapping[str, Any]) -> Section:
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
    return (f"Fairness on {col}", paragraphs, rows)


def _importance(exp: Mapping[str, Any]) -> Section:
    rows = [["feature", "mean |SHAP|"]] + [
        [f, _f(v)] for f, v in list(exp["importance"].items())[:15]
    ]
    return (
        "Global importance (SHAP, " + exp["method"] + f", {exp['rows_explained']} rows)",
        [],
        rows,
    )


def _runtime(rt: Mapping[str, Any]) -> Section:
    return (
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


def _gates(gates: tuple[GateResult, ...]) -> Section:
    rows = [["gate", "value", "threshold", "verdict"]] + [
        [
            g.name,
            _f(g.value)
            + (
                f" (95 % interval {_f(g.low)} .. {_f(g.high)})"
                if g.low is not None and g.high is not None
                else ""
            ),
            f"{g.op} {g.threshold:g}",
            ("pass" if g.passed else "FAIL") + (f" ({g.note})" if g.note else ""),
        ]
        for g in gates
    ]
    return ("Gates", [], rows)


def _f(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def render_card_markdown(
    name: str,
    version: int | None,
    spec: Mapping[str, Any],
    report: EvaluationReport,
    dataset: Mapping[str, Any],
) -> str:
    out: list[str] = []
    for i, (title, paragraphs, table) in enumerate(
        card_sections(name, version, spec, report, dataset)
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
    spec: Mapping[str, Any],
    report: EvaluationReport,
    dataset: Mapping[str, Any],
) -> str:
    """The card as one HTML page (`templates/card.html`, autoescaped; no script)."""
    sections = card_sections(name, version, spec, report, dataset)
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
