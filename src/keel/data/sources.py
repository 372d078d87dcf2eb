"""Reading data sources: CSV and Parquet files, pandas and Polars frames.

Text sources are read with every column as text, so that a value that does not parse is
reported by the contract (and kept in quarantine as it arrived) rather than failing the read.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import polars as pl

from keel.store import SourceError, sha256_file

TEXT_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


@dataclass(frozen=True)
class Source:
    """A data source read into a frame, with where it came from and what its content hashes to."""

    frame: pl.DataFrame
    uri: str
    kind: str  # "csv", "parquet", "pandas", "polars"
    path: Path | None = None

    @cached_property
    def sha256(self) -> str:
        """The file's sha256, or the frame's content hash; computed on first use only, since
        hashing a large file or frame costs as much as checking it."""
        return sha256_file(self.path) if self.path is not None else frame_sha256(self.frame)


def read_source(
    source: Any,
    *,
    encoding: str = "utf-8",
    header: bool = True,
    names: Sequence[str] | None = None,
) -> Source:
    """Read a file path or a frame.

    Args:
        source: a path to a CSV/TSV or Parquet file, or a pandas or Polars frame.
        encoding: the text encoding of a CSV file (`utf-8`, `latin-1`, `cp1252`, ...).
        header: whether a CSV file's first line names its columns.
        names: the column names of a CSV file without a header, in file order (default
            `column_1`, `column_2`, ...).

    Raises:
        SourceError: the file is missing, empty, not a table, or not in `encoding`; its header
            repeats a name; `names` does not match its number of columns.
    """
    if names is not None:
        names = list(names)
        if header:
            msg = f"Column names {names} were given for a file with a header; pass --no-header too (header=False), or leave the names out."
            raise SourceError(msg)
        _check_names(names)
    if isinstance(source, pl.LazyFrame):
        source = source.collect()
    if isinstance(source, pl.DataFrame):
        return Source(source, "frame:polars", "polars")
    if _is_pandas(source):
        try:
            frame = pl.from_pandas(source)
        except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            msg = f"The pandas frame cannot be turned into a table ({exc}); expected columns of plain values."
            raise SourceError(msg) from exc
        return Source(frame, "frame:pandas", "pandas")
    if not isinstance(source, str | Path):
        msg = f"Data source {source!r} is a {type(source).__name__}; expected a file path or a pandas or Polars frame."
        raise SourceError(msg)
    path = Path(source)
    if not path.is_file():
        msg = f"Data file {str(path)!r} does not exist; expected a CSV or Parquet file."
        raise SourceError(msg)
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        if not header or names is not None:
            msg = f"Data file {str(path)!r} is Parquet, whose columns are always named; --no-header and --names apply to CSV files only."
            raise SourceError(msg)
        frame = _read_parquet(path)
        kind = "parquet"
    elif suffix in TEXT_SUFFIXES:
        separator = "\t" if suffix == ".tsv" else ","
        frame = _read_text(path, encoding, separator=separator, header=header, names=names)
        kind = "csv"
    else:
        msg = f"Data file {str(path)!r} has the suffix {suffix!r}; expected .csv, .tsv or .parquet."
        raise SourceError(msg)
    return Source(frame, str(path.resolve()), kind, path)


def _is_pandas(obj: Any) -> bool:
    return type(obj).__module__.startswith("pandas") and hasattr(obj, "columns")


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        msg = f"Data file {str(path)!r} is not a readable Parquet file ({_first_line(exc)})."
        raise SourceError(msg) from exc


def _check_names(names: list[str]) -> None:
    empty = [i + 1 for i, n in enumerate(names) if not n.strip()]
    if empty:
        msg = f"Column names {names} have an empty name at position(s) {empty}; expected a name for every column."
        raise SourceError(msg)
    dupes = _duplicates(names)
    if dupes:
        msg = f"Column names {names} repeat {_show_duplicates(dupes)}; expected each name once."
        raise SourceError(msg)


def _duplicates(names: list[str]) -> dict[str, list[int]]:
    """Names given more than once, with their 1-based positions."""
    at: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        at.setdefault(n, []).append(i + 1)
    return {n: pos for n, pos in at.items() if len(pos) > 1}


def _show_duplicates(dupes: dict[str, list[int]]) -> str:
    return "; ".join(
        f"{n!r} at columns {', '.join(str(p) for p in pos)}" for n, pos in dupes.items()
    )


def _header_names(raw: bytes, separator: str) -> list[str]:
    first = raw.lstrip(b"\xef\xbb\xbf").decode("utf-8", errors="replace")
    try:
        return next(csv.reader(io.StringIO(first), delimiter=separator), [])
    except csv.Error:
        return []  # the CSV reader reports a malformed header itself


def _read_text(
    path: Path,
    encoding: str,
    *,
    separator: str,
    header: bool = True,
    names: list[str] | None = None,
) -> pl.DataFrame:
    raw = path.read_bytes()
    if not raw.strip():
        msg = f"Data file {str(path)!r} is empty; expected a header line and rows."
        raise SourceError(msg)
    norm = encoding.lower().replace("_", "-")
    if norm not in ("utf-8", "utf8"):
        try:
            raw = raw.decode(encoding).encode("utf-8")
        except LookupError as exc:
            msg = f"Encoding {encoding!r} is unknown; expected a Python codec name such as 'utf-8' or 'latin-1'."
            raise SourceError(msg) from exc
        except UnicodeDecodeError as exc:
            msg = f"Data file {str(path)!r} is not valid {encoding} at byte {exc.start}."
            raise SourceError(msg) from exc
    else:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            msg = (
                f"Data file {str(path)!r} is not valid UTF-8 at byte {exc.start} "
                f"(byte 0x{raw[exc.start]:02x}); name its encoding, e.g. --encoding latin-1."
            )
            raise SourceError(msg) from exc
    if header:
        # the CSV reader renames repeats ('a', 'a_duplicated_0'): a silent rename would check
        # and store a column under a name nobody wrote, so repeats are refused here
        dupes = _duplicates(_header_names(raw, separator))
        if dupes:
            msg = (
                f"Data file {str(path)!r} has a header that repeats {_show_duplicates(dupes)}; "
                "expected each column name once. Rename them in the file's header line."
            )
            raise SourceError(msg)
    try:
        frame = pl.read_csv(
            io.BytesIO(raw), infer_schema=False, separator=separator, has_header=header
        )
    except pl.exceptions.PolarsError as exc:
        msg = f"Data file {str(path)!r} is not a readable CSV file: {_first_line(exc)}."
        raise SourceError(msg) from exc
    if not header and names is None:
        frame.columns = [f"column_{i + 1}" for i in range(frame.width)]
    if names is not None:
        if len(names) != frame.width:
            msg = (
                f"Data file {str(path)!r} has {frame.width} columns but {len(names)} names were "
                f"given ({names}); expected one name per column, in file order."
            )
            raise SourceError(msg)
        frame.columns = names
    return frame


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def frame_to_parquet(frame: pl.DataFrame) -> bytes:
    """Parquet bytes written with fixed settings, so the same frame gives the same bytes."""
    buf = io.BytesIO()
    frame.write_parquet(buf, compression="zstd", compression_level=3, statistics=True)
    return buf.getvalue()


def frame_sha256(frame: pl.DataFrame) -> str:
    """A content hash of a frame (its deterministic Parquet bytes)."""
    return hashlib.sha256(frame_to_parquet(frame)).hexdigest()
