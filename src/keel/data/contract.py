"""Contracts: the schema of a model's input, read and written as YAML that people edit.

A contract says, per column, its type, whether it may be empty, its range or allowed values,
its role, how text is cleaned and how personal data is anonymized; and, for the whole frame,
how many bad rows are tolerated and which columns are quasi-identifiers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from keel.data.datetimes import check_timezone
from keel.store import ContractError, SourceError

ColumnType = Literal["int", "float", "bool", "string", "category", "datetime"]
Role = Literal["feature", "target", "id", "timestamp", "segment", "sensitive", "pii", "ignore"]
UnseenPolicy = Literal["keep", "other", "refuse", "reject"]
"""What a category column does with a value outside its list: keep it (and report it), map it
to `__other__`, or refuse the row. `reject` is the older spelling of `refuse`, kept so that
contracts written before `refuse` existed load, and hash, as they did."""
UNSEEN_POLICIES: tuple[str, ...] = get_args(UnseenPolicy)
Case = Literal["lower", "upper"]
Format = Literal["email", "phone", "ip", "iban", "card", "date"]
AnonymizeMethod = Literal["pseudonymize", "generalize", "mask", "drop"]
ExtraColumns = Literal["reject", "drop"]

COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
ROLES: tuple[str, ...] = get_args(Role)
FORMATS: tuple[str, ...] = get_args(Format)
ANONYMIZE_METHODS: tuple[str, ...] = get_args(AnonymizeMethod)
OTHER = "__other__"
"""The category that unseen values become under `unseen: other`."""
MISSING = "__missing__"
"""The one name of a missing category value wherever categories are counted: the reference
profile, window profiles, offline drift (and the model's own imputer). A model's input frame
carries missing categories as "" (`keel.train.features.to_pandas`); every count maps both
None and "" to this."""

DEFAULT_MISSING_MARKERS = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")


@dataclass(frozen=True)
class Anonymize:
    """How one column's personal data is anonymized before it reaches a dataset version.

    Args:
        method: pseudonymize (keyed HMAC-SHA256), generalize, mask or drop.
        band: generalize numbers into bands this wide (ages 37 -> "30-39").
        prefix: generalize text to its first `prefix` characters (postcodes).
        to: generalize datetimes to this unit: "hour", "day", "month" or "year".
        keep_last: mask all but the last `keep_last` characters.
    """

    method: AnonymizeMethod
    band: float | None = None
    prefix: int | None = None
    to: Literal["hour", "day", "month", "year"] | None = None
    keep_last: int = 4


@dataclass(frozen=True)
class Column:
    """One column of a contract. See `docs/contracts.md` for every key."""

    name: str
    type: ColumnType
    role: Role = "feature"
    nullable: bool = False
    min: float | dt.datetime | None = None
    max: float | dt.datetime | None = None
    categories: tuple[str, ...] | None = None
    unseen: UnseenPolicy = "reject"
    """The default of a hand-written contract is to refuse; inferred ones write `keep`."""
    format: Format | None = None
    datetime_format: str | None = None
    timezone: str | None = None
    """The zone naive date-times of this column were written in; they are stored as UTC."""
    case: Case | None = None
    unique: bool = False
    unique_across_versions: bool = False
    """Refuse ids already stored in an earlier version of the same dataset (ingest only)."""
    anonymize: Anonymize | None = None
    suggestion: str | None = field(default=None, compare=False)
    """A detector's note for people (e.g. a PII suggestion); never acted on."""

    @property
    def refuses_unseen(self) -> bool:
        """Whether a value outside `categories` refuses its row (`unseen: refuse` or `reject`)."""
        return self.categories is not None and self.unseen in ("refuse", "reject")


@dataclass(frozen=True)
class Contract:
    """The schema of a frame: its columns and the policies for the frame as a whole."""

    name: str
    columns: tuple[Column, ...]
    max_bad_share: float = 0.05
    extra_columns: ExtraColumns = "reject"
    duplicate_rows: Literal["reject", "allow"] = "reject"
    missing_markers: tuple[str, ...] = DEFAULT_MISSING_MARKERS
    quasi_identifiers: tuple[str, ...] = ()
    k_anonymity: int | None = None
    header: bool = True
    """Whether CSV sources have a header line; without one, columns are read in contract order."""

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            msg = f"Contract {self.name!r} declares the column(s) {dupes} more than once; expected each column once."
            raise ContractError(msg)
        for qi in self.quasi_identifiers:
            if qi not in names:
                msg = f"Contract {self.name!r} lists quasi-identifier {qi!r}, which is not a column; expected one of {names}."
                raise ContractError(msg)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        msg = f"Contract {self.name!r} has no column {name!r}; its columns are {self.names}."
        raise ContractError(msg)

    def with_role(self, role: Role) -> list[Column]:
        return [c for c in self.columns if c.role == role]

    @cached_property
    def sha256(self) -> str:
        """The hash of the canonical YAML: same rules, same hash, whatever the comments."""
        return hashlib.sha256(self.to_yaml(comments=False).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "max_bad_share": self.max_bad_share,
            "extra_columns": self.extra_columns,
            "duplicate_rows": self.duplicate_rows,
            "missing_markers": list(self.missing_markers),
            "quasi_identifiers": list(self.quasi_identifiers),
            "k_anonymity": self.k_anonymity,
        }
        if not self.header:  # written only when set, so older contracts keep their hash
            out["header"] = False
        out["columns"] = {c.name: _column_to_dict(c) for c in self.columns}
        return out

    def to_yaml(self, *, comments: bool = True) -> str:
        """YAML for people: one block per column, detector suggestions as comments."""
        head = {k: v for k, v in self.to_dict().items() if k != "columns"}
        lines = []
        if comments:
            lines += [
                f"# keel contract for {self.name!r}. Edit freely; keys are explained in docs/contracts.md.",
                "# Nulls in columns that had none are refused; unseen categories follow `unseen`.",
            ]
        lines.append(_dump(head).rstrip())
        lines.append("columns:")
        for col in self.columns:
            if comments and col.suggestion:
                lines.append(f"  # {col.suggestion}")
            lines.append(f"  {_scalar(col.name)}:")
            for key, value in _column_to_dict(col).items():
                lines.append(f"    {key}: {_flow(value)}")
        return "\n".join(lines) + "\n"

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=None, width=100)


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _flow(value: Any) -> str:
    # lists and mappings inline ([a, b], {method: mask}); one key per line reads best
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10_000)
        .strip()
        .removesuffix("...")
        .strip()
    )


def _column_to_dict(col: Column) -> dict[str, Any]:
    out: dict[str, Any] = {"type": col.type, "role": col.role, "nullable": col.nullable}
    for key in ("min", "max"):
        value = getattr(col, key)
        if value is not None:
            out[key] = value.isoformat() if isinstance(value, dt.datetime) else value
    if col.categories is not None:
        out["categories"] = list(col.categories)
        out["unseen"] = col.unseen
    for key in ("format", "datetime_format", "timezone", "case"):
        if getattr(col, key) is not None:
            out[key] = getattr(col, key)
    if col.unique:
        out["unique"] = True
    if col.unique_across_versions:
        out["unique_across_versions"] = True
    if col.anonymize is not None:
        anon = {"method": col.anonymize.method}
        for f in fields(Anonymize):
            value = getattr(col.anonymize, f.name)
            if f.name != "method" and value is not None and value != f.default:
                anon[f.name] = value
        out["anonymize"] = anon
    return out


_COLUMN_KEYS = {f.name for f in fields(Column)} - {"name", "suggestion"}
_CONTRACT_KEYS = {f.name for f in fields(Contract)}


def contract_from_dict(data: Mapping[str, Any], *, where: str = "contract") -> Contract:
    """Build a contract from parsed YAML, naming the key and value of anything wrong."""
    if not isinstance(data, Mapping):
        msg = f"{where} is a {type(data).__name__}; expected a mapping with 'name' and 'columns'."
        raise ContractError(msg)
    unknown = sorted(set(data) - _CONTRACT_KEYS)
    if unknown:
        msg = f"{where} has unknown key(s) {unknown}; expected some of {sorted(_CONTRACT_KEYS)}."
        raise ContractError(msg)
    raw_columns = data.get("columns")
    if not isinstance(raw_columns, Mapping) or not raw_columns:
        msg = f"{where}: 'columns' is {raw_columns!r}; expected a mapping of column name to its rules."
        raise ContractError(msg)
    columns = tuple(_column_from_dict(str(name), spec, where) for name, spec in raw_columns.items())
    share = data.get("max_bad_share", 0.05)
    if not isinstance(share, int | float) or not 0 <= share <= 1:
        msg = f"{where}: max_bad_share is {share!r}; expected a number from 0 to 1."
        raise ContractError(msg)
    extra = data.get("extra_columns", "reject")
    _one_of(extra, ("reject", "drop"), f"{where}: extra_columns")
    dup = data.get("duplicate_rows", "reject")
    _one_of(dup, ("reject", "allow"), f"{where}: duplicate_rows")
    header = data.get("header", True)
    if not isinstance(header, bool):
        msg = f"{where}: header is {header!r}; expected true (the first line names the columns) or false."
        raise ContractError(msg)
    k = data.get("k_anonymity")
    if k is not None and (not isinstance(k, int) or k < 1):
        msg = f"{where}: k_anonymity is {k!r}; expected a whole number of at least 1."
        raise ContractError(msg)
    return Contract(
        name=str(data.get("name") or "unnamed"),
        columns=columns,
        max_bad_share=float(share),
        extra_columns=extra,
        duplicate_rows=dup,
        missing_markers=tuple(str(m) for m in data.get("missing_markers", DEFAULT_MISSING_MARKERS)),
        quasi_identifiers=tuple(data.get("quasi_identifiers") or ()),
        k_anonymity=k,
        header=header,
    )


def _one_of(value: Any, allowed: Iterable[str], what: str) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        msg = f"{what} is {value!r}; expected one of {list(allowed)}."
        raise ContractError(msg)


def _column_from_dict(name: str, spec: Any, where: str) -> Column:
    here = f"{where}: column {name!r}"
    if not isinstance(spec, Mapping):
        msg = f"{here} is {spec!r}; expected a mapping with at least 'type'."
        raise ContractError(msg)
    unknown = sorted(set(spec) - _COLUMN_KEYS)
    if unknown:
        msg = f"{here} has unknown key(s) {unknown}; expected some of {sorted(_COLUMN_KEYS)}."
        raise ContractError(msg)
    ctype = spec.get("type")
    _one_of(ctype, COLUMN_TYPES, f"{here}: type")
    role = spec.get("role", "feature")
    _one_of(role, ROLES, f"{here}: role")
    kwargs: dict[str, Any] = {"name": name, "type": ctype, "role": role}
    kwargs["nullable"] = bool(spec.get("nullable", False))
    for key in ("min", "max"):
        if spec.get(key) is not None:
            kwargs[key] = _bound(spec[key], ctype, f"{here}: {key}")
    if spec.get("categories") is not None:
        cats = spec["categories"]
        if not isinstance(cats, list | tuple) or not cats:
            msg = (
                f"{here}: categories is {cats!r}; expected a non-empty list. "
                "Remove the key to allow any text, or list the allowed values."
            )
            raise ContractError(msg)
        folded = {"lower": str.lower, "upper": str.upper}.get(spec.get("case") or "", str)
        # categories are compared after cleaning, so they are kept in their cleaned form
        kwargs["categories"] = tuple(dict.fromkeys(folded(str(c).strip()) for c in cats))
    unseen = spec.get("unseen", "reject")
    _one_of(unseen, UNSEEN_POLICIES, f"{here}: unseen")
    kwargs["unseen"] = unseen
    if spec.get("format") is not None:
        _one_of(spec["format"], FORMATS, f"{here}: format")
        kwargs["format"] = spec["format"]
    if spec.get("case") is not None:
        _one_of(spec["case"], ("lower", "upper"), f"{here}: case")
        kwargs["case"] = spec["case"]
    if spec.get("datetime_format") is not None:
        kwargs["datetime_format"] = str(spec["datetime_format"])
    if spec.get("timezone") is not None:
        if ctype != "datetime":
            msg = f"{here}: timezone is set on a {ctype} column; expected it only on a datetime column."
            raise ContractError(msg)
        try:
            check_timezone(str(spec["timezone"]), f"{here}: timezone")
        except ValueError as exc:
            raise ContractError(str(exc)) from exc
        kwargs["timezone"] = str(spec["timezone"])
    kwargs["unique"] = bool(spec.get("unique", False))
    if spec.get("unique_across_versions"):
        if not kwargs["unique"] and role != "id":
            msg = f"{here}: unique_across_versions needs an id column; add `unique: true` (or `role: id`)."
            raise ContractError(msg)
        kwargs["unique_across_versions"] = True
    if spec.get("anonymize") is not None:
        kwargs["anonymize"] = _anonymize_from(spec["anonymize"], ctype, here)
    if role == "pii" and "anonymize" not in kwargs:
        msg = f"{here} has role 'pii' but no 'anonymize' policy; add e.g. `anonymize: {{method: pseudonymize}}` (or mask, generalize, drop)."
        raise ContractError(msg)
    return Column(**kwargs)


def _bound(value: Any, ctype: Any, what: str) -> float | dt.datetime:
    if ctype == "datetime":
        if isinstance(value, dt.datetime):
            return value
        if isinstance(value, dt.date):
            return dt.datetime(value.year, value.month, value.day)
        try:
            return dt.datetime.fromisoformat(str(value))
        except ValueError as exc:
            msg = f"{what} is {value!r}; expected an ISO date-time like '2024-01-31 00:00:00'."
            raise ContractError(msg) from exc
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"{what} is {value!r}; expected a number for a column of type {ctype!r}."
        raise ContractError(msg)
    return value


def _anonymize_from(spec: Any, ctype: Any, here: str) -> Anonymize:
    if isinstance(spec, str):
        spec = {"method": spec}
    if not isinstance(spec, Mapping):
        msg = f"{here}: anonymize is {spec!r}; expected a method name or a mapping with 'method'."
        raise ContractError(msg)
    method = spec.get("method")
    _one_of(method, ANONYMIZE_METHODS, f"{here}: anonymize.method")
    unknown = sorted(set(spec) - {f.name for f in fields(Anonymize)})
    if unknown:
        msg = f"{here}: anonymize has unknown key(s) {unknown}; expected method, band, prefix, to, keep_last."
        raise ContractError(msg)
    anon = Anonymize(**spec)
    if method == "generalize":
        need = {"int": "band", "float": "band", "datetime": "to"}.get(ctype, "prefix")
        if getattr(anon, need) is None:
            msg = f"{here}: generalizing a {ctype} column needs '{need}' (e.g. band: 10, to: day, prefix: 3)."
            raise ContractError(msg)
        if anon.to is not None:
            _one_of(anon.to, ("hour", "day", "month", "year"), f"{here}: anonymize.to")
    return anon


def load_contract(path: str | Path) -> Contract:
    """Read a contract from a YAML file.

    Raises:
        SourceError: the file is missing or unreadable.
        ContractError: the YAML is malformed or breaks a rule; the message names the key.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        msg = f"Contract file {str(path)!r} does not exist; write one with: keel data infer SOURCE -o {path}"
        raise SourceError(msg) from exc
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Contract file {str(path)!r} cannot be read ({exc}); expected a UTF-8 YAML file."
        raise SourceError(msg) from exc
    try:
        data = _parse_yaml(text)
    except yaml.YAMLError as exc:
        msg = f"Contract file {str(path)!r} is not valid YAML: {str(exc).splitlines()[0]}."
        raise ContractError(msg) from exc
    return contract_from_dict(data, where=f"contract {str(path)!r}")


def contract_from_yaml(text: str) -> Contract:
    """Parse a contract from YAML text (as stored with every dataset version)."""
    return contract_from_dict(_parse_yaml(text))


def _parse_yaml(text: str) -> Any:
    # libyaml's safe loader when present: the same documents, ~10x faster on wide contracts
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def with_column(contract: Contract, column: Column) -> Contract:
    """A copy of the contract with one column replaced."""
    return replace(
        contract,
        columns=tuple(column if c.name == column.name else c for c in contract.columns),
    )
