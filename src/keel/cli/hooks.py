"""`keel hooks`: signed outgoing webhooks for registry and monitoring events."""

from __future__ import annotations

import time
from typing import Any

import typer

from keel.cli._common import JSON_OPTION, err_console, print_json
from keel.render import console

app = typer.Typer(help="Outgoing webhooks: signed, retried, every delivery recorded.")


def _store() -> Any:
    from keel.hooks import HookStore
    from keel.store import Database, load_settings

    return HookStore(Database.open(load_settings()))


@app.command("add")
def add_cmd(
    events: str = typer.Option(
        ...,
        "--events",
        help="Comma-separated: version_registered, alias_moved, promoted, rolled_back, alert_fired, loop_decision.",
    ),
    url: str = typer.Option(..., "--url", help="Where deliveries are POSTed (http or https)."),
    secret: str | None = typer.Option(
        None,
        "--secret",
        envvar="KEEL_HOOK_SECRET",
        help="The signing secret, whsec_<base64> (or KEEL_HOOK_SECRET). Left out: one is made and printed once.",
    ),
    fmt: str = typer.Option(
        "keel",
        "--format",
        help="keel ({type, timestamp, data}) or cloudevents (CloudEvents 1.0, structured).",
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Subscribe a URL to events from now on; each delivery is signed (Standard Webhooks)."""
    from keel.hooks import is_loopback

    hook = _store().add(
        url, [e.strip() for e in events.split(",") if e.strip()], secret=secret, fmt=fmt
    )
    made = secret is None
    if as_json:
        out = hook.to_json()
        if made:
            out["secret"] = hook.secret  # shown this once: the receiver needs it to verify
        print_json(out)
        return
    console.print(f"hook {hook.id}: {', '.join(hook.events)} -> {hook.url} ({hook.format})")
    if made:
        console.print(f"signing secret (shown once, keep it for the receiver): {hook.secret}")
    if is_loopback(url):
        err_console.print("[yellow]note:[/] the URL names this machine (loopback).")


@app.command("list")
def list_cmd(as_json: bool = JSON_OPTION) -> None:
    """The hooks, their secrets masked."""
    hooks = _store().hooks()
    if as_json:
        print_json([h.to_json() for h in hooks])
        return
    if not hooks:
        console.print("no hooks; add one with: keel hooks add --events promoted --url https://...")
    for h in hooks:
        console.print(
            f"{h.id}  {h.url}  {','.join(h.events)}  {h.format}  secret {h.masked}", soft_wrap=True
        )


@app.command("remove")
def remove_cmd(hook_id: int = typer.Argument(..., help="The hook's id (keel hooks list).")) -> None:
    """Remove a hook; its deliveries stay as history, pending ones are not sent."""
    hook = _store().remove(hook_id)
    console.print(f"removed hook {hook.id} ({hook.url})")


@app.command("deliveries")
def deliveries_cmd(
    hook_id: int | None = typer.Option(None, "--hook", help="Only this hook's deliveries."),
    status: str | None = typer.Option(None, help="pending, delivered or failed."),
    limit: int = typer.Option(50, min=1, max=10_000, help="Newest first, at most this many."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The delivery table: status, attempts, last answer, next attempt."""
    rows = _store().deliveries(hook_id=hook_id, status=status, limit=limit)
    if as_json:
        print_json([d.to_json() for d in rows])
        return
    for d in rows:
        last = d.last_status_code if d.last_status_code is not None else (d.last_error or "-")
        nxt = f" next {d.next_attempt_at:%Y-%m-%d %H:%M:%S}" if d.next_attempt_at else ""
        console.print(
            f"{d.id}  hook {d.hook_id}  {d.event}  {d.status}  attempts {d.attempts}  last {last}{nxt}",
            soft_wrap=True,
        )


@app.command("run")
def run_cmd(
    once: bool = typer.Option(False, "--once", help="One pass, then exit."),
    interval: float = typer.Option(2.0, min=0.05, help="Seconds between passes."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Deliver: turn new events into deliveries and send the due ones (under a lease: any
    number of these, `keel serve` and `keel loop` may run; each message is sent by one)."""
    from keel.hooks import Dispatcher
    from keel.store import Database, load_settings

    dispatcher = Dispatcher(Database.open(load_settings()))
    while True:
        done = dispatcher.run_once()
        if as_json:
            print_json(done.to_json())
        elif done.made or done.attempted:
            console.print(
                f"made {done.made}, sent {done.attempted}: {done.delivered} delivered, "
                f"{done.retrying} to retry, {done.failed} failed"
            )
        if once:
            return
        time.sleep(interval)


def start_dispatcher() -> Any:
    """The dispatcher as a background thread of a long-running command (serve, loop); the
    returned event stops it. None when KEEL_HOOKS=0."""
    import os

    if os.environ.get("KEEL_HOOKS", "1") == "0":
        return None
    from keel.hooks import Dispatcher
    from keel.store import Database, load_settings

    _thread, stop = Dispatcher(Database.open(load_settings())).start()
    return stop
