"""`keel train`: fit candidates from specs on a dataset version, gate, compare, register."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from keel.cli._common import JSON_OPTION, err_console, open_datasets, open_models, print_json
from keel.cli._progress import candidate_progress
from keel.render import console, print_train_result

if TYPE_CHECKING:  # importing keel.train loads scikit-learn: only when a command trains
    from keel.train import TrainResult


def train_cmd(
    data: str = typer.Option(..., "--data", "-d", help="Dataset version NAME[@ID]."),
    spec: list[Path] = typer.Option(
        ..., "--spec", "-s", help="A training spec YAML (repeat for candidates)."
    ),
    register: str | None = typer.Option(
        None, "--register", "-r", help="Register passing candidates under this model name."
    ),
    tolerance: float = typer.Option(
        0.005, help="Recommend the cheapest candidate within this much of the best metric."
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="Write the accuracy / latency / cost plot here (PNG)."
    ),
    card: Path | None = typer.Option(
        None, "--card", help="Write the recommended candidate's card here (.md or .html)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Train one or more candidates; exit 1 when none passes its gates.

    A candidate that fails (bad params, a fit error, a model that cannot be stored safely) is
    shown with its error; the others are still evaluated and registered. The exit code is 1
    only when no candidate passed (so with --register, nothing was registered).
    """
    from keel.store import load_settings
    from keel.train import load_spec, train

    specs = [load_spec(p) for p in spec]
    datasets = open_datasets()
    models = open_models() if register else None
    trusted = models.trusted_types if models is not None else load_settings().trusted_types
    with candidate_progress(
        [s.label for s in specs], register=register is not None, console=err_console
    ) as step:
        result = train(
            specs,
            data,
            datasets=datasets,
            models=models,
            register=register,
            tolerance=tolerance,
            on_step=step,
            trusted_types=trusted,
        )
    if plot is not None:
        _plot(result, plot)
    if card is not None and result.candidates:
        _write_card(result, card, register or "candidate", datasets.get(data).to_dict())
    if as_json:
        print_json(result.to_dict())
    else:
        print_train_result(result)
        if plot is not None:
            console.print(f"plot: {plot}")
    for f in result.failed:
        err_console.print(
            f"[red]{escape(f.name)}[/] ({escape(f.estimator)}) failed at {f.stage}: {escape(f.error)}",
            highlight=False,
        )
    for c in result.candidates:
        for g in c.failed_gates:
            err_console.print(
                f"[red]{c.spec.label}[/] stopped by {g.describe()}, threshold {g.op} {g.threshold:g}"
            )
    if not any(c.passed and (c.version is not None or not register) for c in result.candidates):
        raise typer.Exit(1)


def _write_card(result: TrainResult, path: Path, name: str, dataset: dict[str, Any]) -> None:
    """The card of the recommended candidate (the first when none is recommended)."""
    from keel.train import render_card_html, render_card_markdown

    chosen = next(
        (c for c in result.candidates if c.spec.label == result.recommended),
        result.candidates[0],
    )
    args = (name, chosen.version, chosen.spec.to_dict(), chosen.report, dataset)
    path.write_text(
        render_card_html(*args) if path.suffix == ".html" else render_card_markdown(*args)
    )


def _plot(result: object, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keel.train import TrainResult

    assert isinstance(result, TrainResult)
    m = result.primary_metric
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in (
        (axes[0], "p99_ms", "single-row latency p99 (ms)"),
        (axes[1], "cost_per_million_usd", "cost of 1M predictions (USD)"),
    ):
        for c in result.candidates:
            x, y = c.report.runtime[key], c.metric(m)
            color = "tab:green" if c.passed else "tab:red"
            ax.scatter(
                [x], [y], color=color, s=60, marker="o" if c.spec.label in result.pareto else "x"
            )
            ax.annotate(c.spec.label, (x, y), textcoords="offset points", xytext=(5, 5))
        ax.set_xlabel(label)
        ax.set_ylabel(f"holdout {m}")
        ax.grid(alpha=0.3)
    fig.suptitle(f"candidates on {result.dataset_version}: o Pareto front, green passed gates")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
