"""The one promotion path (keel.train.promote / rollback) that the CLI, the HTTP API, the
dashboard and the loop share: gates against production unless forced with a reason, checks
per alias, a verify hook before the move, and the audit of every move."""

from __future__ import annotations

from pathlib import Path

import pytest
from promotion_fixtures import FAILING, PASSING, Trained, fit_small, ingest_small, register

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ArtifactStore, ConfigError, Database, KeelError, ModelNotFoundError
from keel.train import PromotionRefusedError, promote, rollback

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trained]:
    """One ingested dataset and one fitted candidate, copied into each test's registry."""
    home = tmp_path_factory.mktemp("promotion")
    db = Database(f"sqlite:///{home / 'keel.db'}")
    ds = DatasetStore(db, ArtifactStore(str(home / "art")), b"k")
    trained = fit_small(ds, ingest_small(ds))
    db.dispose()
    return home, trained


@pytest.fixture
def stores(home: tuple[Path, Trained], tmp_path: Path) -> tuple[DatasetStore, ModelStore, Trained]:
    import shutil

    src, trained = home
    shutil.copy(src / "keel.db", tmp_path / "keel.db")
    db = Database(f"sqlite:///{tmp_path / 'keel.db'}")
    art = ArtifactStore(str(src / "art"))
    return DatasetStore(db, art, b"k"), ModelStore(db, art), trained


def moves(models: ModelStore, name: str) -> list[tuple[str, str, int, bool | None]]:
    return [(e.action, e.alias, e.version, e.details.get("forced")) for e in models.history(name)]


def test_a_failing_gate_is_refused_by_name_and_production_stays(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """The refusal names the gate, the value and the threshold; nothing moves, nothing is audited."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)
    register(ms, ds, "m", trained, gates=FAILING)
    promote("m", 1, "production", models=ms, datasets=ds, reason="first")

    with pytest.raises(PromotionRefusedError) as exc:
        promote("m", 2, "production", models=ms, datasets=ds, reason="try")

    assert str(exc.value).startswith(
        "Model 'm' version 2 failed gate 'holdout.accuracy >= 2' against production version 1: got 0."
    )
    assert "threshold >= 2. Production was not moved" in str(exc.value)
    details = exc.value.details
    assert (details["gate"], details["op"], details["threshold"]) == (
        "holdout.accuracy >= 2",
        ">=",
        2.0,
    )
    assert 0.5 < details["value"] <= 1
    assert details["production_version"] == 1
    assert ms.get("m@production").version == 1
    assert moves(ms, "m") == [("alias.set", "production", 1, False)]


def test_force_needs_a_reason_and_is_audited(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """A forced move skips the gates only with a non-blank reason; the audit says `forced`."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)
    register(ms, ds, "m", trained, gates=FAILING)
    promote("m", 1, "production", models=ms, datasets=ds)

    for reason in (None, "", "   "):
        with pytest.raises(ConfigError, match=r"forced promotion of m@2 needs a reason"):
            promote("m", 2, "production", models=ms, datasets=ds, force=True, reason=reason)
    state, checked = promote(
        "m", 2, "production", models=ms, datasets=ds, force=True, reason="incident 42", actor="api"
    )

    assert (state.version, checked) == (2, {})
    last = ms.history("m")[-1]
    assert (last.actor, last.reason, last.details["forced"]) == (
        "api",
        "incident 42",
        True,
    )


def test_a_passing_recheck_is_audited_with_its_figures(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """Gates re-run against production pass: the audit keeps the verdicts and vs_production."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)
    register(ms, ds, "m", trained, gates=PASSING)
    promote("m", 1, "production", models=ms, datasets=ds)

    _, checked = promote("m", 2, "production", models=ms, datasets=ds, reason="better")

    details = ms.history("m")[-1].details
    assert details["forced"] is False
    assert [g["name"] for g in details["gates"]] == ["holdout.accuracy >= 0"]
    assert details["production_version"] == 1
    assert isinstance(details["vs_production"], dict)
    assert checked["gates"] == details["gates"]


def test_without_production_the_gates_of_training_decide(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """With no production to measure against, a version whose stored gates failed is refused."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained, trained_gates_pass=False)

    with pytest.raises(
        PromotionRefusedError,
        match=r"failed gate 'holdout.roc_auc >= 0.99' when it was trained: got 0.7",
    ):
        promote("m", 1, "production", models=ms, datasets=ds)
    assert "production" not in ms.aliases("m")
    promote("m", 1, "production", models=ms, datasets=ds, force=True, reason="known weak")
    assert ms.get("m@production").version == 1


def test_other_aliases_keep_their_own_checks(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """Canary needs a weight in (0, 1]; no alias but canary takes one; the version must exist;
    shadow and staging run no gate."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)
    register(ms, ds, "m", trained, gates=FAILING)
    promote("m", 1, "production", models=ms, datasets=ds)

    with pytest.raises(ConfigError, match=r"Field 'weight' is '0.5'; the canary alias needs"):
        promote("m", 2, "canary", models=ms, datasets=ds, weight="0.5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"applies to the canary alias only"):
        promote("m", 2, "shadow", models=ms, datasets=ds, weight=0.5)
    with pytest.raises(ConfigError, match=r"Field 'version' is True"):
        promote("m", True, "staging", models=ms, datasets=ds)
    with pytest.raises(ModelNotFoundError, match=r"has no version 9"):
        promote("m", 9, "shadow", models=ms, datasets=ds)
    promote("m", 2, "canary", models=ms, datasets=ds, weight=0.25)
    promote("m", 2, "shadow", models=ms, datasets=ds)
    promote("m", 2, "staging", models=ms, datasets=ds)

    aliases = {a: (s.version, s.weight) for a, s in ms.aliases("m").items()}
    assert aliases == {
        "canary": (2, 0.25),
        "production": (1, None),
        "shadow": (2, None),
        "staging": (2, None),
    }


def test_a_reason_that_is_not_text_never_reaches_the_database(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """An object as reason is a ConfigError naming the field; the audit is untouched."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)

    with pytest.raises(
        ConfigError, match=r"^Field 'reason' is \{'x': \[1\]\} \(dict\); expected text"
    ):
        promote("m", 1, "production", models=ms, datasets=ds, reason={"x": [1]})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^Field 'reason'"):
        ms.delete_alias("m", "production", reason=["no"])  # type: ignore[arg-type]
    assert ms.history("m") == []


def test_verify_runs_before_the_gates_and_the_move(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """A verify hook that refuses stops the move (promote and rollback); one that accepts sees
    exactly the move about to be made."""
    ds, ms, trained = stores
    for _ in range(2):
        register(ms, ds, "m", trained)
    seen: list[tuple[str, str, int]] = []

    def accept(name: str, alias: str, version: int) -> None:
        seen.append((name, alias, version))

    def refuse(name: str, alias: str, version: int) -> None:
        msg = f"{name}@{version} does not load here"
        raise KeelError(msg)

    promote("m", 1, "production", models=ms, datasets=ds, verify=accept)
    with pytest.raises(KeelError, match=r"m@2 does not load here"):
        promote("m", 2, "production", models=ms, datasets=ds, verify=refuse)
    assert ms.get("m@production").version == 1
    promote("m", 2, "production", models=ms, datasets=ds, verify=accept)
    with pytest.raises(KeelError, match=r"m@1 does not load here"):
        rollback("m", models=ms, verify=refuse)
    assert ms.get("m@production").version == 2
    rollback("m", models=ms, reason="back", actor="cli", verify=accept)

    assert seen == [("m", "production", 1), ("m", "production", 2), ("m", "production", 1)]
    assert ms.get("m@production").version == 1
    last = ms.history("m")[-1]
    assert (last.action, last.version, last.from_version, last.actor) == (
        "alias.rollback", 1, 2, "cli",
    )  # fmt: skip


def test_the_moves_own_facts_win_over_a_callers_figures(
    stores: tuple[DatasetStore, ModelStore, Trained],
) -> None:
    """A caller's evidence named like a fact of the move (the loop passes the canary's old
    weight as `weight`) cannot overwrite what the audit says the move did."""
    ds, ms, trained = stores
    register(ms, ds, "m", trained)
    promote("m", 1, "canary", models=ms, datasets=ds, weight=0.1)

    promote(
        "m", 1, "canary", models=ms, datasets=ds, weight=0.5,
        numbers={"weight": 0.1, "version": 99, "error_rate": 0.0},
    )  # fmt: skip

    details = ms.history("m")[-1].details
    assert (details["weight"], details["version"], details["error_rate"]) == (0.5, 1, 0.0)
