"""`keel db upgrade`: the migration Job's command, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.cli import main

pytestmark = pytest.mark.integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import keel.store

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(keel.store.__file__).parent / "migrations"))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_brings_an_empty_database_to_the_newest_schema(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty database gets every table and the head revision; a second run changes nothing."""
    monkeypatch.setenv("KEEL_DATABASE_URL", database_url)

    code, out, _ = run(capsys, "db", "upgrade", "--json")
    again, out2, _ = run(capsys, "db", "upgrade", "--json")

    assert code == again == 0
    assert json.loads(out)["revision"] == head_revision()
    assert json.loads(out2) == json.loads(out)
    assert {"alembic_version", "audit_events", "aliases", "window_profiles"} <= tables(database_url)


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_database_password_is_never_printed(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL is printed with its password masked (the test server trusts any password)."""
    url = sa.engine.make_url(database_url).set(password="hunter2-secret")
    monkeypatch.setenv("KEEL_DATABASE_URL", url.render_as_string(hide_password=False))

    code, out, err = run(capsys, "db", "upgrade")

    assert code == 0
    assert "hunter2-secret" not in out + err
    assert "***" in out
    assert "is at schema revision" in out


def test_a_bad_database_url_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL SQLAlchemy cannot parse fails as a one-line error, not a traceback."""
    monkeypatch.setenv("KEEL_DATABASE_URL", "not a url")

    code, _, err = run(capsys, "db", "upgrade")

    assert code == 1
    assert err.startswith("error:")
