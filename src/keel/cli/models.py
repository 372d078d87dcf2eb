"""`keel models ...` and `keel audit`: the registry from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from keel.cli._common import JSON_OPTION, open_datasets, open_models, print_json
from keel.render import console

if TYPE_CHECKING:  # the command line imports the stores only when a command runs
    from keel.registry import AuditEvent

app = typer.Typer(
    help="The model registry: versions, aliases, cards, promotion, rollback.", no_args_is_help=True
)


@app.command("list")
def list_cmd(as_json: bool = JSON_OPTION) -> None:
    """Every model with its newest version and aliases."""
    store = open_models()
    rows = []
    for name in store.names():
        versions = store.versions(name)
        aliases = {
            a: {"version": s.version, "weight": s.weight} for a, s in store.aliases(name).items()
        }
        rows.append(
            {
                "name": name,
                "latest": versions[0].version,
                "versions": len(versions),
                "aliases": aliases,
            }
        )
    if as_json:
        print_json(rows)
        return
    table = Table(title="models", title_justify="left")
    for head in ("model", "versions", "latest", "aliases"):
        table.add_column(head)
    for r in rows:
        shown = ", ".join(
            f"{a} -> {v['version']}" + (f" ({v['weight']:.0%})" if v["weight"] else "")
            for a, v in r["aliases"].items()
        )
        table.add_row(r["name"], str(r["versions"]), str(r["latest"]), shown or "-")
    console.print(table)


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Everything about a version: aliases, artifact and sha256, lineage, evaluation, gates."""
    from keel.train import report_of

    v = open_models().get(ref)
    if as_json:
        print_json(v.to_dict())
        return
    ev = report_of(v)
    console.print(
        f"[bold]{v.ref}[/]  created {v.created_at.isoformat()}  aliases: {', '.join(v.aliases) or '-'}"
    )
    console.print(f"  artifact  {v.artifact_uri}  ({v.artifact_size} bytes, {v.format})")
    console.print(f"  sha256    {v.artifact_sha256}")
    console.print(f"  trusted   {', '.join(v.trusted_types) or 'nothing beyond skops defaults'}")
    console.print(
        f"  dataset   {v.dataset_version}  source {v.lineage.get('source_uri')} ({str(v.lineage.get('source_sha256'))[:16]})"
    )
    console.print(f"  code      {v.lineage.get('code_revision') or 'unknown'}")
    console.print(f"  estimator {v.spec.get('estimator')} {v.spec.get('params') or ''}")
    metrics = "  ".join(
        f"{m} {e['value']:.4f}" for m, e in ev.metrics.items() if e.get("value") is not None
    )
    console.print(f"  holdout   {metrics}")
    for g in ev.gates:
        console.print(f"  gate      {g.name}: {g.value} -> {'pass' if g.passed else 'FAIL'}")


@app.command("history")
def history_cmd(name: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Every alias move of a model."""
    events = open_models().history(name)
    if as_json:
        print_json([e.to_json() for e in events])
        return
    _events_table(events, f"alias history of {name!r}")


def _events_table(events: Sequence[AuditEvent], title: str) -> None:
    table = Table(title=title, title_justify="left")
    for head in ("time", "action", "alias", "version", "from", "actor", "reason"):
        table.add_column(head)
    for e in events:
        shown = (
            e.time.isoformat(),
            e.action,
            e.alias,
            e.version,
            e.from_version,
            e.actor,
            e.reason,
        )
        table.add_row(*(str(v if v is not None else "-") for v in shown))
    console.print(table)


@app.command("card")
def card_cmd(
    ref: str = typer.Argument(...),
    output: Path = typer.Option(..., "-o", "--output", help="card.md or card.html"),
) -> None:
    """Write a version's model card as Markdown or HTML."""
    from keel.train import render_card_html, render_card_markdown, report_of

    store = open_models()
    v = store.get(ref)
    dataset = open_datasets().get(v.dataset_version).to_dict() if v.dataset_version else {}
    args = (v.name, v.version, v.spec, report_of(v), dataset)
    output.write_text(
        render_card_html(*args)
        if output.suffix.lower() in (".html", ".htm")
        else render_card_markdown(*args)
    )
    console.print(f"Wrote the card of {v.ref} to {output}")


@app.command("promote")
def promote_cmd(
    name: str = typer.Argument(...),
    version: int = typer.Argument(...),
    to: str = typer.Option("production", "--to", help="production, staging, shadow or canary."),
    weight: float | None = typer.Option(None, help="Share of traffic for canary (0..1)."),
    reason: str | None = typer.Option(None, help="Why; kept in the audit log."),
    force: bool = typer.Option(False, "--force", help="Skip the gate re-check (needs --reason)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move an alias to a version; production re-runs the gates against the current production.

    The same checks as the HTTP API (`POST /v1/models/NAME/aliases/ALIAS`), the dashboard and
    the loop: production is refused when a gate fails (the gate, value and threshold are named)
    unless `--force --reason` is given, and the audit records `forced`; canary needs `--weight`
    in (0, 1].
    """
    from keel.train import promote

    state, numbers = promote(
        name,
        version,
        to,
        models=open_models(),
        datasets=open_datasets(),
        reason=reason,
        force=force,
        weight=weight,
        actor="cli",
    )
    if as_json:
        print_json(
            {
                "name": name,
                "alias": to,
                "version": state.version,
                "weight": state.weight,
                "numbers": numbers,
            }
        )
        return
    vs = numbers.get("vs_production", {})
    extra = (
        f" (vs production: {', '.join(f'{k} {v:+.4f}' for k, v in vs.items() if isinstance(v, float))})"
        if vs
        else ""
    )
    console.print(f"{name}: {to} -> {state.version}{extra}")


@app.command("rollback")
def rollback_cmd(
    name: str = typer.Argument(...),
    reason: str | None = typer.Option(None),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move production back to the previous production version (audited, like every move)."""
    from keel.train import rollback

    state = rollback(name, models=open_models(), reason=reason, actor="cli")
    if as_json:
        print_json({"name": name, "alias": "production", "version": state.version})
        return
    console.print(f"{name}: production -> {state.version}")


@app.command("export")
def export_cmd(
    ref: str = typer.Argument(...),
    fmt: str = typer.Option("onnx", "--format", help="onnx"),
    output: Path = typer.Option(..., "-o", "--output"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Export a version to ONNX, with a parity check on its dataset's holdout."""
    from keel.train import export_onnx

    report = export_onnx(ref, output, models=open_models(), datasets=open_datasets(), fmt=fmt)
    if as_json:
        print_json(report.to_json())
        return
    console.print(
        f"Wrote {output} ({report.bytes} bytes); parity on {report.rows} holdout rows: largest |Δp| = {report.parity_max_abs_diff:.2e}"
    )


@app.command("import")
def import_cmd(
    model: Path = typer.Argument(..., help="The .onnx file (one self-contained graph)."),
    contract: Path = typer.Option(..., "--contract", help="contract.yaml of the model's input."),
    name: str = typer.Option(..., "--name", help="Model name to register the version under."),
    data: str | None = typer.Option(
        None, "--data", help="Dataset version to evaluate on (metrics, gates, drift reference)."
    ),
    spec: Path | None = typer.Option(
        None, "--spec", help="YAML with gates (and split, target, features); needs --data."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register an ONNX graph trained elsewhere; it is served through onnxruntime."""
    from keel.train import import_onnx, report_of

    v = import_onnx(
        model,
        contract_path=contract,
        name=name,
        models=open_models(),
        datasets=open_datasets(),
        data=data,
        spec_path=spec,
        actor="cli",
    )
    if as_json:
        print_json(v.to_dict())
        return
    ev = report_of(v)
    shown = "  ".join(
        f"{m} {e['value']:.4f}" for m, e in ev.metrics.items() if e.get("value") is not None
    )
    console.print(
        f"Registered {v.ref} (onnx, {v.artifact_size} bytes, {ev.task}, inputs {list(ev.features)}); "
        + (f"holdout {shown}" if ev.evaluated else "not evaluated (no --data)")
    )


def audit_cmd(
    name: str | None = typer.Argument(None, help="A model name, or nothing for all."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The audit log: registrations, alias moves, ingests; who, when, why and the numbers."""
    events = open_models().audit(name)
    if as_json:
        print_json([e.to_json() for e in events])
        return
    _events_table(events, "audit log" + (f" of {name!r}" if name else ""))
