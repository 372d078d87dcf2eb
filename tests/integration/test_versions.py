"""Dataset versions end to end, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from keel.data import DatasetStore, contract_from_dict, infer_contract
from keel.data.faults import inject_faults
from keel.demo.simulate import TransactionSimulator
from keel.store import DatasetNotFoundError, SchemaError, SourceError, ValidationFailedError

pytestmark = pytest.mark.integration

CONTRACT = contract_from_dict(
    {
        "name": "people",
        "columns": {
            "id": {"type": "string", "role": "id", "unique": True},
            "email": {"type": "string", "role": "pii", "anonymize": "pseudonymize"},
            "age": {"type": "int", "min": 0, "max": 120},
            "region": {"type": "category", "categories": ["n", "s"]},
        },
    }
)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("id,email,age,region\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def good_csv(tmp_path: Path) -> Path:
    rows = [f"r{i},p{i}@example.com,{20 + i},{'n' if i % 2 else 's'}" for i in range(40)]
    rows += ["r90,x@example.com,200,n", "r91,y@example.com,30,w"]  # two bad rows
    return write_csv(tmp_path / "people.csv", rows)


def test_ingest_counts_add_up_and_quarantine_keeps_raw_rows(
    store: DatasetStore, good_csv: Path
) -> None:
    """Rows in = versioned + quarantined; quarantine holds rows as they arrived, with rule."""
    result = store.ingest(good_csv, CONTRACT, "people")
    v = result.version

    assert (v.rows_in, v.rows_versioned, v.rows_quarantined) == (42, 40, 2)
    assert v.quarantine_by_rule == {"range": 1, "category": 1}
    q = store.quarantine(v.ref)
    assert q.select("source_row", "rule", "age", "region").rows() == [
        (40, "range", "200", "n"),
        (41, "category", "30", "w"),
    ]
    assert q["email"].to_list() == ["x@example.com", "y@example.com"]


def test_raw_pii_never_reaches_the_version(store: DatasetStore, good_csv: Path) -> None:
    """The stored version holds pseudonyms, not emails."""
    v = store.ingest(good_csv, CONTRACT, "people").version

    data = store.load(v.ref)

    assert data.height == 40
    assert not data["email"].str.contains("@").any()
    assert data["email"].str.starts_with("p_").all()


def test_same_content_same_version_id(store: DatasetStore, good_csv: Path, tmp_path: Path) -> None:
    """Ingesting the same content twice (even from another file) gives the same id."""
    copy = tmp_path / "copy.csv"
    copy.write_bytes(good_csv.read_bytes())

    first = store.ingest(good_csv, CONTRACT, "people")
    second = store.ingest(copy, CONTRACT, "people")

    assert second.version.version == first.version.version
    assert not second.created
    assert len(store.versions("people")) == 1


def test_lineage_and_parents(store: DatasetStore, good_csv: Path, tmp_path: Path) -> None:
    """A version records its source hash, contract, parents and transforms."""
    first = store.ingest(good_csv, CONTRACT, "people").version
    more = write_csv(tmp_path / "more.csv", ["r100,q@example.com,44,s"])

    second = store.ingest(more, CONTRACT, "people", parents=[first.ref]).version

    assert second.parents == [first.ref]
    assert second.source_uri == str(more.resolve())
    assert len(second.source_sha256) == 64
    assert [t["step"] for t in second.transforms] == ["clean", "quarantine", "anonymize"]
    assert store.contract(second.ref) == CONTRACT
    assert store.get("people").version == second.version
    assert store.get(f"people@{first.version[:6]}").version == first.version


def test_diff(store: DatasetStore, good_csv: Path, tmp_path: Path) -> None:
    """Diff counts rows added and removed and shows statistics side by side."""
    a = store.ingest(good_csv, CONTRACT, "people").version
    rows = [f"r{i},p{i}@example.com,{20 + i},{'n' if i % 2 else 's'}" for i in range(5, 45)]
    b = store.ingest(write_csv(tmp_path / "b.csv", rows), CONTRACT, "people").version

    d = store.diff(a.ref, b.ref)

    assert (d["rows_added"], d["rows_removed"]) == (5, 5)
    assert d["columns"]["age"]["a"]["mean"] == pytest.approx(39.5)
    assert d["columns"]["age"]["b"]["mean"] == pytest.approx(44.5)


def test_missing_column_stores_nothing(store: DatasetStore, tmp_path: Path) -> None:
    """A source that does not fit the contract is refused whole; no version appears."""
    path = tmp_path / "bad.csv"
    path.write_text("id,email,age\nr1,a@b.com,3\n")

    with pytest.raises(
        SchemaError, match=r"Column 'region' \(category\) is missing.*Nothing was stored"
    ):
        store.ingest(path, CONTRACT, "people")

    with pytest.raises(
        DatasetNotFoundError, match=r"No dataset named 'people'; datasets now: none"
    ):
        store.versions("people")


def test_too_many_bad_rows_stores_nothing(store: DatasetStore, tmp_path: Path) -> None:
    """Over max_bad_share the ingest is refused and says how many rows broke which rule."""
    path = write_csv(tmp_path / "junk.csv", ["r1,a@b.com,999,n", "r2,c@d.com,3,n"])

    with pytest.raises(ValidationFailedError, match=r"1 of 2 rows \(50.0%\) break contract"):
        store.ingest(path, CONTRACT, "people")
    assert store.names() == []


def test_unknown_version_lists_the_real_ones(store: DatasetStore, good_csv: Path) -> None:
    """An unknown version id lists the versions there are."""
    v = store.ingest(good_csv, CONTRACT, "people").version

    with pytest.raises(DatasetNotFoundError) as exc:
        store.get("people@ffff")

    assert (
        str(exc.value)
        == f"Dataset 'people': 'ffff' is not a version of it; versions (newest first): {v.version}."
    )


def test_wrong_encoding_is_one_clear_error(store: DatasetStore, tmp_path: Path) -> None:
    """Latin-1 bytes in a UTF-8 read name the byte and the fix; with --encoding they load."""
    path = tmp_path / "latin.csv"
    path.write_bytes("id,email,age,region\nr1,jos\xe9@example.com,30,n\n".encode("latin-1"))

    with pytest.raises(
        SourceError, match=r"is not valid UTF-8 at byte 26 \(byte 0xe9\); name its encoding"
    ):
        store.ingest(path, CONTRACT, "people")
    assert store.ingest(path, CONTRACT, "people", encoding="latin-1").version.rows_versioned == 1


def test_two_processes_ingesting_the_same_content(
    make_store: Callable[[], DatasetStore], good_csv: Path
) -> None:
    """Concurrent ingests of one content agree on one version and store it once."""
    stores = [make_store(), make_store()]
    results: list[str] = []
    errors: list[BaseException] = []

    def run(s: DatasetStore) -> None:
        try:
            results.append(s.ingest(good_csv, CONTRACT, "people").version.version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in stores]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    assert errors == []
    assert len(set(results)) == 1
    assert len(stores[0].versions("people")) == 1


def test_audit_log_records_ingest(store: DatasetStore, good_csv: Path) -> None:
    """Every new version is an audit event with its counts."""
    v = store.ingest(good_csv, CONTRACT, "people", actor="alice").version

    events = store.db.events(prefix="dataset:")

    assert [(e["actor"], e["action"], e["subject"]) for e in events] == [
        ("alice", "dataset.ingest", f"dataset:{v.ref}")
    ]
    assert events[0]["details"]["rows_quarantined"] == 2


@pytest.mark.slow
def test_simulator_with_faults_every_fault_caught(store: DatasetStore, tmp_path: Path) -> None:
    """On the simulator, every injected fault lands in quarantine under its rule."""
    sim = TransactionSimulator(seed=11)
    clean = sim.generate(days=20, per_day=300)
    contract = infer_contract(
        clean,
        id="transaction_id",
        timestamp="ts",
        target="is_fraud",
        pii=["customer_name", "email", "card_number"],
    )
    faulty, truth = inject_faults(clean, contract, rate=0.03, seed=5)
    path = tmp_path / "tx.csv"
    faulty.write_csv(path)

    v = store.ingest(path, contract, "tx").version
    q = store.quarantine(v.ref)

    assert v.rows_in == v.rows_versioned + v.rows_quarantined == clean.height
    by_rule = {rule: sorted(rows) for rule, rows in truth.rows_by_rule.items()}
    got = {r: sorted(q.filter(pl.col("rule") == r)["source_row"].to_list()) for r in by_rule}
    assert got == by_rule
    assert q.height == len(truth.bad_rows)
