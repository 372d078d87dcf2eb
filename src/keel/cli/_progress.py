"""Progress of `keel train`: one bar per candidate on a terminal, plain lines otherwise.

The trainer calls `step("LABEL: STAGE")` as each candidate enters a stage (fit, evaluate,
explain, profile) and `step("register")` before registering. On a terminal each candidate
gets its own row (a bar over its four stages, the stage it is in, its elapsed time); when
standard error is not a terminal (CI logs, pipes), each stage is one plain line with the
time the previous stage took, so a log shows where the time went.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

STAGES = ("fit", "evaluate", "explain", "profile")
# what each stage does, as the user reads it
STAGE_TEXT = {
    "fit": "fit",
    "evaluate": "evaluation (holdout, segments, fairness)",
    "explain": "SHAP explanations",
    "profile": "runtime profile",
    "register": "register",
}


@contextmanager
def candidate_progress(
    labels: list[str], *, register: bool, console: Console
) -> Iterator[Callable[[str], None]]:
    """Yield the `step` callback for `train(on_step=...)`, drawing on `console`."""
    if console.is_terminal:
        with _bars(labels, register=register, console=console) as step:
            yield step
    else:
        with _lines(labels, console=console) as step:
            yield step


def _split(name: str) -> tuple[str, str]:
    label, sep, stage = name.rpartition(": ")
    return (label, stage) if sep else ("", name)


@contextmanager
def _bars(
    labels: list[str], *, register: bool, console: Console
) -> Iterator[Callable[[str], None]]:
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        TextColumn("{task.fields[stage]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks: dict[str, TaskID] = {
            label: progress.add_task(label, total=len(STAGES), stage="waiting", start=False)
            for label in labels
        }
        if register:
            tasks[""] = progress.add_task("register", total=1, stage="waiting", start=False)
        current: list[str] = []

        def step(name: str) -> None:
            label, stage = _split(name)
            if current and current[0] != label:  # the previous candidate (or stage owner) is done
                prev = tasks[current[0]]
                progress.update(prev, completed=progress.tasks[prev].total, stage="done")
                progress.stop_task(prev)
            task = tasks.get(label)
            if task is None:
                return
            if not current or current[0] != label:
                progress.start_task(task)
                current[:] = [label]
            done = STAGES.index(stage) if stage in STAGES else 0
            progress.update(task, completed=done, stage=STAGE_TEXT.get(stage, stage))
            progress.refresh()  # show the new stage now, not at the next 0.1 s tick

        yield step
        for task in tasks.values():
            progress.update(task, completed=progress.tasks[task].total, stage="done")


@contextmanager
def _lines(labels: list[str], *, console: Console) -> Iterator[Callable[[str], None]]:
    started = time.perf_counter()
    last: list[tuple[str, float]] = []

    def step(name: str) -> None:
        now = time.perf_counter()
        label, stage = _split(name)
        took = f" ({last[0][0]} took {now - last[0][1]:.2f} s)" if last else ""
        where = f"{label} ({labels.index(label) + 1}/{len(labels)}): " if label in labels else ""
        console.print(f"train: {where}{STAGE_TEXT.get(stage, stage)}{took}", markup=False)
        last[:] = [(name, now)]

    yield step
    now = time.perf_counter()
    took = f" ({last[0][0]} took {now - last[0][1]:.2f} s)" if last else ""
    console.print(f"train: done in {now - started:.2f} s{took}", markup=False)
