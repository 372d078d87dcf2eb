"""`keel db upgrade`: bring the metadata database to the newest schema (Alembic)."""

from __future__ import annotations

import typer

from keel.cli._common import JSON_OPTION, print_json
from keel.render import console

app = typer.Typer(help="The metadata database.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_cmd(as_json: bool = JSON_OPTION) -> None:
    """Apply every migration the database lacks (a no-op when it is current); the password of
    the database URL is never printed. Every keel process also migrates when it opens the
    database; this runs it once, first, as the Kubernetes migration Job does."""
    import sqlalchemy as sa

    from keel.store import Database, load_settings

    settings = load_settings()
    db = Database.open(settings)  # opening migrates, under an advisory lock on PostgreSQL
    try:
        with db.begin() as conn:
            revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        db.dispose()
    url = sa.engine.make_url(settings.resolved_database_url).render_as_string(hide_password=True)
    if as_json:
        print_json({"database": url, "revision": revision})
    else:
        console.print(f"database {url} is at schema revision {revision} (the newest)")
