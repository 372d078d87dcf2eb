"""Scores to a database table (`keel predict ... --to-sql URL --table T`): upserted by id.

The id is the contract's `id` column when the scored file has it, else `prediction_id`, made
from the source file's content hash and the row's position (`<sha256[:16]>-<row>`): the same
file scored again names the same rows. Each chunk is one transaction of upserts, in the
dialect's own statement: `INSERT ... ON CONFLICT (id) DO UPDATE` on PostgreSQL and SQLite,
`INSERT ... ON DUPLICATE KEY UPDATE` on MariaDB and MySQL. Scoring the same rows again
replaces their scores, model and time; the row count stays. A missing table is created with
typed columns and the id as primary key; an existing one must have the id as its key and
every column the scores have (a clear error names what is missing).

Only the scored rows go to the table; refused rows stay in the side file beside `-o`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import sqlalchemy as sa

from keel.registry import ModelStore
from keel.store import ConfigError, sha256_file
from keel.train.scoring import ProgressCallback, ScoreResult, score_file

PREDICTION_ID = "prediction_id"
_TABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}")
KEY_LENGTH = 191  # the longest VARCHAR MariaDB/MySQL index in utf8mb4 on every row format


def _shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


class SqlSink:
    """Upserts scored chunks into one table.

    Args:
        url: a SQLAlchemy URL (`postgresql+psycopg://...`, `mysql+pymysql://...`, `sqlite:///...`).
        table: the table's name, optionally `schema.table`.
        id_column: the contract's id column; the scores are keyed by it when they have it,
            else by `prediction_id`.
        model: the version that scored (written in the `model` column).
        source_sha256: the source's content hash, for `prediction_id`.
    """

    def __init__(
        self, url: str, table: str, *, id_column: str | None, model: str, source_sha256: str
    ) -> None:
        if not isinstance(table, str) or not _TABLE.fullmatch(table):
            msg = f"Table name {table!r} is not allowed; expected letters, digits and '_' (up to 63), optionally 'schema.table'."
            raise ConfigError(msg)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            msg = "The --to-sql value is not a SQLAlchemy URL; expected e.g. 'postgresql+psycopg://user@host/db', 'mysql+pymysql://user@host/db' or 'sqlite:///scores.db'."
            raise ConfigError(msg) from exc
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("postgresql", "sqlite", "mysql", "mariadb"):
            msg = f"Database {_shown(parsed)!r} is {self.dialect!r}; expected PostgreSQL, MariaDB, MySQL or SQLite."
            raise ConfigError(msg)
        try:
            self.engine = sa.create_engine(parsed, pool_pre_ping=True)
        except ModuleNotFoundError as exc:
            msg = f"Database {_shown(parsed)!r} needs a driver that is not installed ({exc.name}); install it with: pip install 'keel[sql]' (MariaDB/MySQL) or 'psycopg[binary]' (PostgreSQL)."
            raise ConfigError(msg) from exc
        self.url = _shown(parsed)
        schema, _, name = table.rpartition(".")
        self.schema = schema or None
        self.name = name
        self.id_column = id_column
        self.key = PREDICTION_ID
        self.model = model
        self.source_sha256 = source_sha256
        self.rows = 0
        self._table: sa.Table | None = None

    def write(self, chunk: pl.DataFrame) -> None:
        """Upsert one chunk of scores (as `score_file` hands them: source_row, id, prediction)."""
        if chunk.height == 0:
            return
        if self._table is None and self.id_column is not None and self.id_column in chunk.columns:
            self.key = (
                self.id_column
            )  # decided on the first chunk: every chunk has the same columns
        frame = self._rows(chunk)
        table = self._table if self._table is not None else self._prepare(frame)
        records = frame.to_dicts()
        with self.engine.begin() as conn:
            conn.execute(self._upsert(table), records)
        self.rows += len(records)

    def _rows(self, chunk: pl.DataFrame) -> pl.DataFrame:
        frame = chunk
        if self.key == PREDICTION_ID:
            prefix = self.source_sha256[:16]
            frame = frame.with_columns(
                (pl.lit(prefix + "-") + pl.col("source_row").cast(pl.String)).alias(PREDICTION_ID)
            )
        elif self.key not in frame.columns:
            msg = f"The scores have no id column {self.key!r}; expected it in the scored file, or leave it out to key by prediction_id."
            raise ConfigError(msg)
        now = dt.datetime.now(dt.UTC)
        frame = frame.with_columns(
            pl.lit(self.model).alias("model"), pl.lit(now).alias("scored_at")
        )
        return frame.select(self.key, *(c for c in frame.columns if c != self.key))

    def _prepare(self, frame: pl.DataFrame) -> sa.Table:
        """The table: reflected when it exists (and checked), else created with typed columns."""
        inspector = sa.inspect(self.engine)
        if inspector.has_table(self.name, schema=self.schema):
            table = sa.Table(
                self.name, sa.MetaData(), schema=self.schema, autoload_with=self.engine
            )
            key = [c.name for c in table.primary_key.columns]
            if key != [self.key]:
                msg = f"Table {self.name!r} in {self.url} has the primary key {key}; expected [{self.key!r}] to upsert by it. Use another --table, or give it that key."
                raise ConfigError(msg)
            missing = [c for c in frame.columns if c not in table.c]
            if missing:
                msg = f"Table {self.name!r} in {self.url} has no column(s) {missing}; expected every column of the scores. Add them, or use another --table."
                raise ConfigError(msg)
        else:
            # autoincrement off: MariaDB/MySQL would turn an id of 0 into the next number
            columns = [
                sa.Column(
                    name,
                    _sql_type(dtype, key=name == self.key),
                    primary_key=name == self.key,
                    autoincrement=False,
                )
                for name, dtype in frame.schema.items()
            ]
            table = sa.Table(self.name, sa.MetaData(), *columns, schema=self.schema)
            table.create(self.engine, checkfirst=True)
        self._table = table
        return table

    def _upsert(self, table: sa.Table) -> Any:
        updated = [c.name for c in table.c if c.name != self.key]
        if self.dialect in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql

            mine = mysql.insert(table)
            return mine.on_duplicate_key_update({c: mine.inserted[c] for c in updated})
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            pg = postgresql.insert(table)
            return pg.on_conflict_do_update(
                index_elements=[self.key], set_={c: pg.excluded[c] for c in updated}
            )
        from sqlalchemy.dialects import sqlite

        lite = sqlite.insert(table)
        return lite.on_conflict_do_update(
            index_elements=[self.key], set_={c: lite.excluded[c] for c in updated}
        )

    def dispose(self) -> None:
        self.engine.dispose()


def _sql_type(dtype: pl.DataType, *, key: bool) -> sa.types.TypeEngine[Any]:
    """The column type of a score column (the key as bounded text or an integer)."""
    if dtype.is_integer():
        return sa.BigInteger()
    if dtype.is_float():
        return sa.Float(53)
    if dtype == pl.Boolean:
        return sa.Boolean()
    if isinstance(dtype, pl.Datetime):  # MariaDB/MySQL keep whole seconds unless told (UTC)
        from sqlalchemy.dialects import mysql

        return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    if dtype == pl.Date:
        return sa.Date()
    return sa.String(KEY_LENGTH) if key else sa.Text()


@dataclass(frozen=True, slots=True)
class TableResult:
    """Where the scores went in the database: the table, its id column, rows upserted."""

    url: str
    table: str
    key: str
    rows: int

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "table": self.table, "key": self.key, "rows": self.rows}


def score_to_sql(
    ref: str,
    source: str | Path,
    output: str | Path,
    *,
    url: str,
    table: str,
    models: ModelStore,
    chunk_rows: int = 50_000,
    on_progress: ProgressCallback | None = None,
) -> tuple[ScoreResult, TableResult]:
    """`score_file`, each chunk's scores also upserted into `table` at `url` as it is made."""
    version = models.get(ref)  # pinned: the file and the table get the same version
    ids = models.contract(version.ref).with_role("id")
    sink = SqlSink(
        url,
        table,
        id_column=ids[0].name if ids else None,
        model=version.ref,
        source_sha256=sha256_file(source),
    )
    try:
        result = score_file(
            version.ref, source, output, models=models, chunk_rows=chunk_rows,
            on_progress=on_progress, on_chunk=sink.write,
        )  # fmt: skip
    finally:
        sink.dispose()
    return result, TableResult(sink.url, table, sink.key, sink.rows)
