"""Date-times with zones: accepted, stored as UTC; naive ones localized only where a zone is named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from keel.data import RecordChecker, contract_from_dict, infer_contract, validate
from keel.store import ContractError

# an export of sensor readings as a real system writes it: UTC 'Z', a local offset that
# changes with daylight saving, fractional seconds, and one row with no zone at all
READINGS = """reading_id,taken_at,celsius
1,1997-07-01T10:00:00Z,21.5
2,1997-07-01T12:00:00+02:00,21.7
3,1997-12-01T11:00:00+01:00,4.2
4,1997-07-01 05:00:00.250-05:00,22.0
5,1997-07-01T10:30:00,21.9
"""


def readings(tmp_path: Path) -> Path:
    path = tmp_path / "readings.csv"
    path.write_text(READINGS)
    return path


def contract(**extra: object) -> object:
    return contract_from_dict(
        {
            "name": "readings",
            "columns": {
                "reading_id": {"type": "int", "role": "id", "unique": True},
                "taken_at": {"type": "datetime", **extra},
                "celsius": {"type": "float"},
            },
        }
    )


def test_zoned_iso_values_are_accepted_and_stored_as_utc(tmp_path: Path) -> None:
    """'Z', '+02:00' and mixed offsets parse and become UTC; the naive value stays as written."""
    report = validate(readings(tmp_path), contract())  # type: ignore[arg-type]

    assert report.bad_rows.tolist() == []
    assert report.cleaned["taken_at"].to_list() == [
        dt.datetime(1997, 7, 1, 10, 0),
        dt.datetime(1997, 7, 1, 10, 0),
        dt.datetime(1997, 12, 1, 10, 0),
        dt.datetime(1997, 7, 1, 10, 0, 0, 250000),
        dt.datetime(1997, 7, 1, 10, 30),
    ]


def test_named_zone_localizes_naive_values_then_converts_to_utc(tmp_path: Path) -> None:
    """With `timezone: Europe/Paris` a naive 10:30 in July is 08:30 UTC; zoned values are unchanged."""
    report = validate(readings(tmp_path), contract(timezone="Europe/Paris"))  # type: ignore[arg-type]

    assert report.cleaned["taken_at"][0] == dt.datetime(1997, 7, 1, 10, 0)
    assert report.cleaned["taken_at"][4] == dt.datetime(1997, 7, 1, 8, 30)


def test_local_time_skipped_by_daylight_saving_is_refused() -> None:
    """02:30 on 31 March 2024 never happened in Paris: refused as not a date-time."""
    c = contract(timezone="Europe/Paris")
    frame = pl.DataFrame(
        {
            "reading_id": ["1", "2"],
            "taken_at": ["2024-03-31 02:30:00", "2024-10-27 02:30:00"],
            "celsius": ["1", "2"],
        }
    )

    report = validate(frame, c)  # type: ignore[arg-type]

    assert report.counts_by_check == {"taken_at:timestamp": 1}
    assert report.cleaned["taken_at"][1] == dt.datetime(2024, 10, 27, 0, 30)  # first of the two


def test_typed_columns_follow_the_same_rules() -> None:
    """A zoned Parquet column becomes UTC; a naive one is localized when the contract names a zone."""
    aware = pl.Series([dt.datetime(2024, 1, 1, 12)]).dt.replace_time_zone("Asia/Tokyo")
    naive = pl.Series([dt.datetime(2024, 1, 1, 12)])
    c = contract(timezone="America/New_York")

    got_aware = validate(pl.DataFrame({"reading_id": [1], "taken_at": aware, "celsius": [1.0]}), c)  # type: ignore[arg-type]
    got_naive = validate(pl.DataFrame({"reading_id": [1], "taken_at": naive, "celsius": [1.0]}), c)  # type: ignore[arg-type]

    assert got_aware.cleaned["taken_at"][0] == dt.datetime(2024, 1, 1, 3)
    assert got_naive.cleaned["taken_at"][0] == dt.datetime(2024, 1, 1, 17)


def test_inference_reads_a_zoned_column_as_datetime(tmp_path: Path) -> None:
    """A column of zoned ISO values is inferred as datetime with no format, and passes."""
    path = readings(tmp_path)

    inferred = infer_contract(path, id="reading_id")

    assert inferred.column("taken_at").type == "datetime"
    assert inferred.column("taken_at").datetime_format is None
    assert validate(path, inferred).bad_rows.tolist() == []


def test_unknown_zone_is_refused_with_an_example() -> None:
    """A misspelt zone names the column and the value, and shows a valid one."""
    with pytest.raises(ContractError) as exc:
        contract(timezone="Europe/Pariss")

    assert str(exc.value) == (
        "contract: column 'taken_at': timezone is 'Europe/Pariss', which is not a time zone; "
        "expected an IANA name such as 'Europe/Paris' or 'UTC'."
    )


@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_record_checker_and_validate_agree_on_date_times(zone: str | None) -> None:
    """Serving's RecordChecker keeps, refuses and normalizes the same date-times as validate."""
    values = [
        "1997-07-01T10:00:00Z",
        "1997-07-01 12:00:00+02:00",
        "1997-07-01T10:30",
        "1997-07-01",
        "2024-03-31 02:30:00",
        "2024-10-27 02:30:00",
        "01/07/1997",
        "tomorrow",
    ]
    c = contract_from_dict(
        {"name": "t", "columns": {"t": {"type": "datetime", "nullable": True, "timezone": zone}}}
    )

    report = validate(pl.DataFrame({"t": values}), c)
    kept, errors = RecordChecker(c, ["t"]).check([{"t": v} for v in values])

    assert sorted(e.row for e in errors) == report.bad_rows.tolist()
    good = [v for i, v in enumerate(report.cleaned["t"].to_list()) if i not in report.bad_rows]
    assert [r["t"] for r in kept] == good
