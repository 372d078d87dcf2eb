"""The registry against a model of its rules (hypothesis stateful), and two processes moving one
alias at once, on SQLite and on PostgreSQL.

The model: three models `m`, `m2`, `m_x` (names a LIKE pattern would confuse); versions whose
re-checked gates pass or fail; production moves through `keel.train.promote` (gates against
production unless forced with a reason), canary with a weight, shadow, alias removal and
rollback. After every step the aliases are those of the model, each model's audit holds only
its own events and exactly its own moves, and a rollback returned to the previous production.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from promotion_fixtures import FAILING, PASSING, Trained, fit_small, ingest_small, register

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ArtifactStore, ConfigError, ConflictError, Database, ModelNotFoundError
from keel.train import PromotionRefusedError, promote, rollback

pytestmark = pytest.mark.integration

MODELS = ("m", "m2", "m_x")
POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")


# ---- fresh registries per example ------------------------------------------------------------


@dataclass
class Registries:
    """Makes a fresh, empty registry (with the one dataset version) for each example."""

    backend: str
    root: Path
    trained: Trained | None = None
    _template: Path | None = None
    _schemas: list[str] = field(default_factory=list)
    _opened: list[Database] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    @property
    def artifacts(self) -> str:
        return str(self.root / "art")

    def url(self) -> str:
        if self.backend == "sqlite":
            path = self.root / f"{uuid.uuid4().hex[:8]}.db"
            if self._template is not None:
                shutil.copy(self._template, path)
            return f"sqlite:///{path}"
        assert POSTGRES_URL is not None
        schema = f"keel_test_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        self._schemas.append(schema)
        sep = "&" if "?" in POSTGRES_URL else "?"
        return f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"

    def fresh(self) -> tuple[DatasetStore, ModelStore]:
        """Stores over a new database holding the dataset version the versions train on."""
        db = Database(self.url())
        self._opened.append(db)
        art = ArtifactStore(self.artifacts)
        ds = DatasetStore(db, art, b"k")
        if self.trained is None:  # the first registry: ingest and fit once
            self.trained = fit_small(ds, ingest_small(ds))
            if self.backend == "sqlite":  # copied per example: the WAL goes into the file first
                with db.engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
                self._template = Path(db.engine.url.database or "")
        elif self.backend != "sqlite":
            assert ingest_small(ds) == self.trained.dataset  # same rows, same id
        return ds, ModelStore(db, art)

    def close(self) -> None:
        for db in self._opened:
            db.dispose()
        if self._schemas:
            admin = sa.create_engine(POSTGRES_URL or "")
            with admin.begin() as conn:
                for schema in self._schemas:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def registries(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registries]:
    if request.param == "postgresql" and not POSTGRES_URL:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    made = Registries(request.param, tmp_path_factory.mktemp(f"stateful-{request.param}"))
    made.fresh()  # the dataset and the fitted candidate, once
    yield made
    made.close()


# ---- the state machine ------------------------------------------------------------------------


class RegistryRules(RuleBasedStateMachine):
    """The registry, driven through the promotion functions, against a model of the rules."""

    def __init__(self, registries: Registries) -> None:
        super().__init__()
        self.ds, self.ms = registries.fresh()
        assert registries.trained is not None
        self.trained = registries.trained
        self.passing: dict[str, list[bool]] = {n: [] for n in MODELS}
        self.aliases: dict[str, dict[str, tuple[int, float | None]]] = {n: {} for n in MODELS}
        self.stack: dict[str, list[int]] = {n: [] for n in MODELS}  # production, for rollback
        self.moves: dict[str, int] = dict.fromkeys(MODELS, 0)  # alias events audited
        self.seen = registries.seen  # which branches the examples took

    # -- helpers

    def _registered(self) -> list[str]:
        return [n for n in MODELS if self.passing[n]]

    def _pick(self, data: st.DataObject) -> tuple[str, int]:
        name = data.draw(st.sampled_from(self._registered()), label="model")
        # now and then a version that does not exist
        version = data.draw(st.integers(1, len(self.passing[name]) + 1), label="version")
        return name, version

    def _exists(self, name: str, version: int) -> bool:
        return version <= len(self.passing[name])

    # -- rules

    @initialize()
    def two_versions_each(self) -> None:
        """Every model starts with a version whose gates pass and one whose gates fail."""
        for name in MODELS:
            for passes in (True, False):
                self.register_version(name, passes)

    @rule(name=st.sampled_from(MODELS), passes=st.booleans())
    def register_version(self, name: str, passes: bool) -> None:
        version = register(
            self.ms, self.ds, name, self.trained, gates=PASSING if passes else FAILING
        )
        self.passing[name].append(passes)
        assert version == len(self.passing[name])

    @precondition(lambda self: bool(self._registered()))
    @rule(data=st.data())
    def promote_to_production(self, data: st.DataObject) -> None:
        self._production(data, force=False)

    @precondition(lambda self: bool(self._registered()))
    @rule(data=st.data())
    def force_to_production(self, data: st.DataObject) -> None:
        self._production(data, force=True)

    def _production(self, data: st.DataObject, *, force: bool) -> None:
        name, version = self._pick(data)
        current = self.aliases[name].get("production")
        reason = "forced in the model" if force else None
        if not self._exists(name, version):
            with pytest.raises(ModelNotFoundError):
                promote(name, version, "production", models=self.ms, datasets=self.ds, force=force, reason=reason)  # fmt: skip
            return
        refused = (
            not force
            and current is not None
            and current[0] != version
            and not self.passing[name][version - 1]
        )
        self.seen.append(
            "production: " + ("refused by a gate" if refused else "forced" if force else "moved")
        )
        if refused:
            with pytest.raises(PromotionRefusedError, match=r"failed gate 'holdout.accuracy >= 2'"):
                promote(name, version, "production", models=self.ms, datasets=self.ds)
            return
        state, _ = promote(
            name, version, "production", models=self.ms, datasets=self.ds, force=force, reason=reason
        )  # fmt: skip
        assert state.version == version
        self.aliases[name]["production"] = (version, None)
        self.stack[name].append(version)
        self.moves[name] += 1
        assert self.ms.history(name)[-1].details["forced"] is force

    @precondition(lambda self: bool(self._registered()))
    @rule(
        data=st.data(),
        weight=st.one_of(
            st.sampled_from([0.0, 1.0, 0.5, math.nan, -0.1, 1.5]), st.floats(-1, 2, width=32)
        ),
    )
    def set_canary(self, data: st.DataObject, weight: float) -> None:
        name, version = self._pick(data)
        self.seen.append("canary: " + ("weight refused" if not 0 < weight <= 1 else "moved"))
        if not 0 < weight <= 1:
            with pytest.raises(ConfigError, match=r"canary alias needs a weight between 0 and 1"):
                promote(name, version, "canary", models=self.ms, datasets=self.ds, weight=weight)
            return
        if not self._exists(name, version):
            with pytest.raises(ModelNotFoundError):
                promote(name, version, "canary", models=self.ms, datasets=self.ds, weight=weight)
            return
        promote(name, version, "canary", models=self.ms, datasets=self.ds, weight=weight)
        self.aliases[name]["canary"] = (version, weight)
        self.moves[name] += 1

    @precondition(lambda self: bool(self._registered()))
    @rule(data=st.data())
    def set_shadow(self, data: st.DataObject) -> None:
        name, version = self._pick(data)
        if not self._exists(name, version):
            with pytest.raises(ModelNotFoundError):
                promote(name, version, "shadow", models=self.ms, datasets=self.ds)
            return
        promote(name, version, "shadow", models=self.ms, datasets=self.ds)
        self.aliases[name]["shadow"] = (version, None)
        self.moves[name] += 1

    @precondition(lambda self: bool(self._registered()))
    @rule(data=st.data(), alias=st.sampled_from(["production", "canary", "shadow"]))
    def delete_alias(self, data: st.DataObject, alias: str) -> None:
        name = data.draw(st.sampled_from(self._registered()), label="model")
        if alias not in self.aliases[name]:
            with pytest.raises(ModelNotFoundError, match=rf"has no alias '{alias}' to remove"):
                self.ms.delete_alias(name, alias, reason="model")
            return
        self.ms.delete_alias(name, alias, reason="model")
        del self.aliases[name][alias]
        if alias == "production":
            self.stack[name].clear()
        self.moves[name] += 1

    @precondition(lambda self: any(self.stack.values()))  # some production to roll back
    @rule(data=st.data())
    def roll_back(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(self._registered()), label="model")
        stack = self.stack[name]
        self.seen.append(
            "rollback: " + ("nothing to go back to" if len(stack) < 2 else "moved back")
        )
        if len(stack) < 2:
            with pytest.raises(ModelNotFoundError, match=r"no earlier production version"):
                rollback(name, models=self.ms, reason="model")
            return
        previous = stack[-2]
        state = rollback(name, models=self.ms, reason="model")
        assert state.version == previous  # back to the previous production
        stack.pop()
        self.aliases[name]["production"] = (previous, None)
        self.moves[name] += 1

    # -- invariants

    @invariant()
    def aliases_are_those_of_the_model(self) -> None:
        for name in self._registered():
            now = {a: (s.version, s.weight) for a, s in self.ms.aliases(name).items()}
            assert now == self.aliases[name], name

    @invariant()
    def each_history_is_its_own_model_and_every_move(self) -> None:
        for name in self._registered():
            history = self.ms.history(name)
            assert {e.subject for e in history} <= {f"model:{name}"}
            assert {e.subject for e in self.ms.audit(name)} == {f"model:{name}"}
            assert len(history) == self.moves[name]  # refused moves leave no event


def test_registry_follows_its_rules(registries: Registries) -> None:
    """Random sequences of register, promote (gates pass or fail, forced or not), canary,
    shadow, delete and rollback over m, m2 and m_x keep the registry equal to the model."""
    run_state_machine_as_test(
        lambda: RegistryRules(registries),
        settings=settings(
            max_examples=20,
            stateful_step_count=25,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )

    # the examples reached every kind of outcome (fixed by derandomize)
    assert set(registries.seen) >= {
        "production: refused by a gate",
        "production: forced",
        "production: moved",
        "rollback: moved back",
        "rollback: nothing to go back to",
        "canary: weight refused",
        "canary: moved",
    }, sorted(set(registries.seen))


# ---- two processes, one alias ---------------------------------------------------------------

ROUNDS = 4


def _contender(
    url: str, artifacts: str, version: int, barrier: Any, results: Any, rounds: int
) -> None:
    """In a process of its own: at each round, move production from 1 to `version`."""
    models = ModelStore(Database(url), ArtifactStore(artifacts))
    for r in range(rounds):
        barrier.wait(timeout=600)  # the round starts: production is at 1
        try:
            models.set_alias(
                "m", "production", version, expected=1, actor=f"process-{version}", reason=f"round {r}"
            )  # fmt: skip
            results.put((r, version, "won"))
        except ConflictError:
            results.put((r, version, "conflict"))
        barrier.wait(timeout=600)  # the round is over
    models.db.dispose()


def test_two_processes_moving_production_at_once(registries: Registries) -> None:
    """Two processes move production from 1 to 2 and to 3 with `expected=1`, round after round:
    exactly one wins each time, the other gets ConflictError, and the audit holds exactly the
    winner's move."""
    ds, ms = registries.fresh()
    assert registries.trained is not None
    for _ in range(3):
        register(ms, ds, "m", registries.trained)
    url = str(ms.db.url)
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(
            target=_contender, args=(url, registries.artifacts, v, barrier, results, ROUNDS)
        )
        for v in (2, 3)
    ]
    for p in procs:
        p.start()
    outcomes: list[list[tuple[int, str]]] = []
    audited: list[list[tuple[Any, ...]]] = []
    try:
        for r in range(ROUNDS):
            ms.set_alias("m", "production", 1, actor="test", reason=f"reset {r}")
            mark = len(ms.history("m"))
            barrier.wait(timeout=600)
            barrier.wait(timeout=600)
            outcomes.append(
                sorted((v, o) for _r, v, o in (results.get(timeout=60) for _ in range(2)))
            )
            audited.append(
                [(e.action, e.version, e.from_version, e.actor) for e in ms.history("m")[mark:]]
            )
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()

    for r in range(ROUNDS):
        won = [v for v, o in outcomes[r] if o == "won"]
        assert [o for _v, o in outcomes[r]].count("conflict") == 1, outcomes[r]
        assert audited[r] == [("alias.set", won[0], 1, f"process-{won[0]}")]
    assert all(p.exitcode == 0 for p in procs)
