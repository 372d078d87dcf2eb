"""Rich renderings of domain objects, shared by the command line and the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # importing keel.train loads scikit-learn and SHAP: only when training
    from keel.data import Contract, DatasetVersion, ValidationReport
    from keel.train import EvaluationReport, TrainResult

console = Console(highlight=False)


def print_contract(contract: Contract) -> None:
    table = Table(title=f"contract {contract.name!r}", title_justify="left")
    for head in ("column", "type", "role", "nullable", "rules"):
        table.add_column(head)
    for c in contract.columns:
        rules = []
        if c.min is not None or c.max is not None:
            rules.append(f"{c.min} .. {c.max}")
        if c.categories:
            shown = ", ".join(c.categories[:5]) + (" ..." if len(c.categories) > 5 else "")
            rules.append(f"{{{shown}}} unseen: {c.unseen}")
        if c.format:
            rules.append(f"format {c.format}")
        if c.unique:
            rules.append("unique")
        if c.anonymize:
            rules.append(f"anonymize: {c.anonymize.method}")
        if c.suggestion:
            rules.append(f"[yellow]{c.suggestion.split(';')[0]}[/]")
        table.add_row(c.name, c.type, c.role, "yes" if c.nullable else "no", "; ".join(rules))
    console.print(table)


def print_report(report: ValidationReport) -> None:
    """The check report as tables: schema issues, then per rule and column with examples."""
    for issue in report.schema_issues:
        console.print(f"[red]{issue.rule}[/] {issue.message}")
    table = Table(
        title=f"check against {report.contract!r}: {report.rows} rows", title_justify="left"
    )
    for head in ("rule", "column", "rows", "expected", "examples (row: value)"):
        table.add_column(head)
    for f in report.failures:
        ex = ", ".join(f"{e['row']}: {e['value']!r}" for e in f.examples[:3])
        table.add_row(f.rule, f.column or "(row)", str(f.count), f.expected, ex)
    if report.failures:
        console.print(table)
    # every bound the contract states, with the rows it refuses (0 included), so an inferred
    # bound that would refuse real rows is seen before ingest; other rules only when they refuse
    bounds = Table(title="rows each rule refuses", title_justify="left")
    for head in ("column", "rule", "expected", "refused rows"):
        bounds.add_column(head)
    shown = [r for r in report.refusals if r["rule"] in ("range", "category") or r["rows"]]
    for r in shown:
        bounds.add_row(
            escape(r["column"] or "(row)"), r["rule"], escape(r["expected"]), str(r["rows"])
        )
    if shown:
        console.print(bounds)
    for column, values in report.unseen_categories.items():
        listed = ", ".join(f"{v!r}: {n}" for v, n in list(values.items())[:8])
        more = f" and {len(values) - 8} more" if len(values) > 8 else ""
        console.print(
            f"unseen categories in [bold]{escape(column)}[/] (not refused): {escape(listed)}{more}"
        )
    verdict = "[green]passed[/]" if report.passed else "[red]failed[/]"
    k = f"; k-anonymity {report.k_anonymity}" if report.k_anonymity is not None else ""
    target = report.k_anonymity_target
    if target is not None and report.k_anonymity is not None and report.k_anonymity < target:
        k += f" [red]under the contract's {target}[/]: generalize the quasi-identifiers further"
    console.print(
        f"{verdict}: {len(report.bad_rows)} of {report.rows} rows refused "
        f"({report.bad_share:.2%}; limit {report.max_bad_share:.2%}){k}"
    )


def print_version(v: DatasetVersion) -> None:
    """A version's lineage and per-column statistics."""
    console.print(f"[bold]{v.ref}[/]  created {v.created_at.isoformat()}")
    console.print(f"  source    {v.source_uri}  sha256 {v.source_sha256[:16]}")
    console.print(f"  contract  sha256 {v.contract_sha256[:16]}")
    console.print(f"  data      sha256 {v.data_sha256[:16]}")
    console.print(f"  parents   {', '.join(v.parents) or '-'}")
    console.print(
        f"  rows      {v.rows_in} in = {v.rows_versioned} versioned + {v.rows_quarantined} quarantined {v.quarantine_by_rule or ''}"
    )
    for t in v.transforms:
        detail = {k: val for k, val in t.items() if k != "step" and val}
        console.print(f"  transform {t['step']}: {detail}")
    table = Table(title="columns", title_justify="left")
    for head in ("column", "dtype", "nulls", "summary"):
        table.add_column(head)
    for col, s in v.stats.items():
        if "mean" in s:
            summary = (
                f"mean {s['mean']:.4g}  min {s['min']:.4g}  p50 {s['p50']:.4g}  max {s['max']:.4g}"
            )
        elif "top" in s:
            summary = f"{s['distinct']} distinct; " + ", ".join(
                f"{k} {n}" for k, n in list(s["top"].items())[:3]
            )
        else:
            summary = f"{s.get('min', '')} .. {s.get('max', '')}"
        table.add_row(col, s["dtype"], str(s["nulls"]), summary)
    console.print(table)


def print_train_result(result: TrainResult) -> None:
    """Candidates side by side: metric with interval, overfit gap, latency, cost, verdict."""
    m = result.primary_metric
    table = Table(
        title=f"candidates on {result.dataset_version} ({m} on the holdout, 95 % interval)",
        title_justify="left",
    )
    for head in (
        "candidate",
        m,
        "interval",
        f"overfit {m}",
        "pipeline p50 ms",
        "pipeline p99 ms",
        "$ / 1M",
        "gates",
        "version",
    ):
        table.add_column(head)
    for c in result.candidates:
        e = c.report.metrics[m]
        rt = c.report.runtime
        verdict = "[green]pass[/]" if c.passed else "[red]fail[/]"
        mark = " *" if c.spec.label in result.pareto else ""
        table.add_row(
            c.spec.label + mark,
            _fmt(e["value"]),
            f"{_fmt(e['low'])}..{_fmt(e['high'])}",
            _fmt(c.report.overfit.get(m)),
            f"{rt['p50_ms']:.2f}",
            f"{rt['p99_ms']:.2f}",
            f"{rt['cost_per_million_usd']:.3g}",
            verdict,
            str(c.version) if c.version is not None else "-",
        )
    console.print(table)
    for f in result.failed:
        console.print(
            f"[red]failed[/] {escape(f.name)} ({escape(f.estimator)}) at {f.stage}: {escape(f.error)}",
            highlight=False,
        )
    console.print(
        "pipeline p50/p99 ms: one-row predict of the fitted pipeline, called in the training "
        "process on one core (not the HTTP serving path); $ / 1M from its best batch throughput"
    )
    console.print("* on the Pareto front (no other candidate is both better and cheaper)")
    for c in result.candidates:
        for line in _group_lines(c.report):
            console.print(f"{c.spec.label}: {line}", soft_wrap=True, markup=False)
        for g in c.gates:
            verdict = "pass" if g.passed else "FAIL"
            console.print(
                f"{c.spec.label}: {verdict} {g.describe()}",  # the gate's name holds its threshold
                soft_wrap=True,
                markup=False,
            )
    console.print(f"recommended: [bold]{result.recommended or 'none (no candidate passed)'}[/]")


def _group_lines(report: EvaluationReport) -> list[str]:
    """One line per segment or fairness column that has groups too small to judge."""
    lines = []
    seg = report.segments
    if seg.get("not_judged"):
        groups = ", ".join(f"{g['group']} ({g['reason']})" for g in seg["not_judged"])
        lines.append(f"segments of {seg['column']!r} not judged: {groups}")
    for col, fr in report.fairness.items():
        if fr.get("bands"):
            lines.append(
                f"fairness on {col!r}: {len(fr['by_group'])} judged band(s) "
                f"({fr['bands']['method']}, cut at {', '.join(f'{e:g}' for e in fr['bands']['edges'])})"
            )
        if fr.get("not_judged"):
            groups = ", ".join(f"{g['group']} ({g['reason']})" for g in fr["not_judged"])
            lines.append(f"fairness groups of {col!r} not judged: {groups}")
    return lines


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
