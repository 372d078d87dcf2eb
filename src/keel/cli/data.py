"""`keel data ...`: contracts, checks, ingest, versions, lineage, diff and quarantine."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from keel.cli._common import JSON_OPTION, open_datasets, print_json, steps
from keel.render import console, print_contract, print_report, print_version

app = typer.Typer(
    help="Contracts, validation with quarantine, and dataset versions.", no_args_is_help=True
)

ENCODING = typer.Option("utf-8", "--encoding", help="Text encoding of a CSV source, e.g. latin-1.")
NO_HEADER = typer.Option(
    False,
    "--no-header",
    help="The CSV file has no header line (default for check/ingest: as the contract says).",
)
NAMES = typer.Option(
    None,
    "--names",
    help="Column names of a headerless CSV, comma-separated, in file order (with --no-header).",
)


def _names(names: str | None, no_header: bool) -> list[str] | None:
    if names is None:
        return None
    if not no_header:
        from keel.store import SourceError

        msg = f"--names {names!r} was given without --no-header; add --no-header when the file has no header line."
        raise SourceError(msg)
    return [n.strip() for n in names.split(",")]


@app.command("infer")
def infer_cmd(
    source: str = typer.Argument(..., help="A CSV or Parquet file."),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="Write the contract YAML here."
    ),
    name: str | None = typer.Option(None, help="The contract's name (default: the file's stem)."),
    target: str | None = typer.Option(None, help="The target column."),
    id_column: str | None = typer.Option(None, "--id", help="The id column (must be unique)."),
    timestamp: str | None = typer.Option(None, help="The timestamp column."),
    segment: str | None = typer.Option(None, help="The segment column."),
    sensitive: list[str] = typer.Option([], help="A sensitive column (repeat for more)."),
    pii: list[str] = typer.Option([], help="A column with personal data to anonymize (repeat)."),
    ignore: list[str] = typer.Option([], help="A column never used as a feature (repeat)."),
    tolerance: float = typer.Option(
        1.0,
        help="Columns with negative values: widen the observed range by this share of its span.",
    ),
    encoding: str = ENCODING,
    no_header: bool = NO_HEADER,
    names: str | None = NAMES,
    as_json: bool = JSON_OPTION,
) -> None:
    """Infer a contract from data: types, nulls, ranges, categories, formats, roles, PII hints."""
    from dataclasses import replace

    from keel.data import infer_contract, read_source

    column_names = _names(names, no_header)
    frame = read_source(source, encoding=encoding, header=not no_header, names=column_names).frame
    contract = infer_contract(
        frame,
        name=name or Path(source).stem,
        target=target,
        id=id_column,
        timestamp=timestamp,
        segment=segment,
        sensitive=sensitive,
        pii=pii,
        ignore=ignore,
        tolerance=tolerance,
    )
    if no_header:
        contract = replace(contract, header=False)  # later reads use its column names
    if output is not None:
        contract.save(output)
    if as_json:
        print_json(
            {
                "contract": contract.to_dict(),
                "sha256": contract.sha256,
                "output": str(output) if output else None,
                "suggestions": {c.name: c.suggestion for c in contract.columns if c.suggestion},
            }
        )
        return
    if output is None:
        typer.echo(contract.to_yaml(), nl=False)
        return
    print_contract(contract)
    console.print(
        f"Wrote [bold]{output}[/] ({len(contract.columns)} columns). Edit it, then: keel data check {source} --contract {output}"
    )


@app.command("check")
def check_cmd(
    source: str = typer.Argument(..., help="A CSV or Parquet file."),
    contract_path: Path = typer.Option(..., "--contract", "-c", help="The contract YAML."),
    encoding: str = ENCODING,
    no_header: bool = NO_HEADER,
    names: str | None = NAMES,
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate every row and cell; exit 1 when the bad-row share is over the contract's limit.

    The report counts, for every rule the contract states (each inferred bound included), the
    rows it refuses, and lists the unseen category values that were kept or mapped."""
    from keel.data import load_contract

    contract = load_contract(contract_path)
    store = open_datasets()
    report = store.check(
        source,
        contract,
        encoding=encoding,
        header=False if no_header else None,
        names=_names(names, no_header),
    )
    if as_json:
        print_json(report.to_dict())
    else:
        print_report(report)
    if not report.passed:
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd(
    source: str = typer.Argument(..., help="A CSV or Parquet file."),
    contract_path: Path = typer.Option(..., "--contract", "-c", help="The contract YAML."),
    name: str = typer.Option(..., "--name", "-n", help="The dataset's name."),
    parent: list[str] = typer.Option([], help="A parent version NAME@ID (repeat for more)."),
    encoding: str = ENCODING,
    no_header: bool = NO_HEADER,
    names: str | None = NAMES,
    as_json: bool = JSON_OPTION,
) -> None:
    """Check, clean and anonymize; store good rows as a version and bad rows in quarantine."""
    from keel.data import load_contract

    contract = load_contract(contract_path)
    store = open_datasets()
    column_names = _names(names, no_header)
    with steps("ingest", ["read", "validate", "anonymize", "store"]) as step:
        result = store.ingest(
            source,
            contract,
            name,
            parents=parent,
            encoding=encoding,
            actor="cli",
            on_step=step,
            header=False if no_header else None,
            names=column_names,
        )
    if as_json:
        print_json(result.to_dict())
        return
    v = result.version
    state = "new version" if result.created else "same content as existing version"
    console.print(
        f"[bold]{v.ref}[/] ({state}): {v.rows_in} rows in = {v.rows_versioned} versioned + {v.rows_quarantined} quarantined"
    )
    for rule, count in v.quarantine_by_rule.items():
        console.print(f"  quarantined for {rule}: {count}")
    for column, values in result.report.unseen_categories.items():
        shown = ", ".join(f"{val!r}: {n}" for val, n in list(values.items())[:8])
        console.print(
            f"  unseen categories in {escape(column)} (kept as the contract says): {escape(shown)}"
        )
    if v.rows_quarantined:
        console.print(f"See them with: keel data quarantine {v.ref} -o bad.csv")


@app.command("versions")
def versions_cmd(name: str = typer.Argument(...), as_json: bool = JSON_OPTION) -> None:
    """Every version of a dataset, newest first."""
    versions = open_datasets().versions(name)
    if as_json:
        print_json([v.to_dict() for v in versions])
        return
    table = Table(title=f"dataset {name!r}", title_justify="left")
    for head in ("version", "created", "rows", "quarantined", "source"):
        table.add_column(head)
    for v in versions:
        table.add_row(
            v.version,
            v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(v.rows_versioned),
            str(v.rows_quarantined),
            v.source_uri,
        )
    console.print(table)


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., help="NAME@ID, NAME@latest or NAME."),
    as_json: bool = JSON_OPTION,
) -> None:
    """A version's lineage: source hash, contract, parents, transforms, counts, quarantine."""
    v = open_datasets().get(ref)
    if as_json:
        print_json(v.to_dict())
        return
    print_version(v)


@app.command("diff")
def diff_cmd(
    a: str = typer.Argument(...), b: str = typer.Argument(...), as_json: bool = JSON_OPTION
) -> None:
    """Rows added and removed, contract changes, per-column statistics side by side."""
    d = open_datasets().diff(a, b)
    if as_json:
        print_json(d)
        return
    console.print(
        f"[bold]{d['a']}[/] -> [bold]{d['b']}[/]: {d['rows']['a']} -> {d['rows']['b']} rows, +{d['rows_added']} added, -{d['rows_removed']} removed"
    )
    for ch in d["contract_changes"]:
        console.print(f"  contract {ch['column']}: {ch['a']} -> {ch['b']}")
    table = Table(title="columns", title_justify="left")
    for head in ("column", "A", "B"):
        table.add_column(head)
    for col, pair in d["columns"].items():
        table.add_row(col, _brief(pair["a"]), _brief(pair["b"]))
    console.print(table)


def _brief(s: dict[str, object] | None) -> str:
    if s is None:
        return "-"
    if "mean" in s:
        return f"mean {s['mean']:.4g} (nulls {s['nulls']})"
    if "top" in s:
        return f"{s['distinct']} distinct (nulls {s['nulls']})"
    return f"{s['count']} values"


@app.command("quarantine")
def quarantine_cmd(
    ref: str = typer.Argument(..., help="NAME@ID."),
    output: Path = typer.Option(..., "-o", "--output", help="CSV file for the refused rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Write the refused rows as they arrived, with `source_row` and `rule`, to a CSV file."""
    frame = open_datasets().quarantine(ref)
    tmp = output.with_name(output.name + ".tmp")
    frame.write_csv(tmp)
    tmp.replace(output)
    by_rule = {r: n for r, n in frame.group_by("rule").len().sort("rule").iter_rows()}
    if as_json:
        print_json({"ref": ref, "output": str(output), "rows": frame.height, "by_rule": by_rule})
        return
    console.print(f"Wrote {frame.height} refused rows of {ref} to {output} (by rule: {by_rule})")
