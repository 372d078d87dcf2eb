"""The model registry: immutable model versions and movable aliases, every move audited.

A model version is an artifact (skops, or a container holding a booster in its library's own
format; hash-checked on every load) with its contract, spec,
lineage, evaluation and card. An alias (`production`, `staging`, `shadow`, `canary`) names one
version; moving it is one transaction that also writes the audit log. Moves are optimistic: a
move that expected the alias at version A fails with a ConflictError if another process moved
it first, so two processes never half-move an alias or silently overwrite each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import sqlalchemy as sa

from keel.data import Contract, contract_from_yaml, save_contract
from keel.registry.checks import check_model_name, check_move, check_reason
from keel.registry.events import AliasMove, AuditEvent
from keel.registry.records import AliasState, ModelVersion, ResolvedVersion, version_from_row
from keel.registry.serialization import SavedModel, load_model, save_model
from keel.store import (
    ArtifactStore,
    ConflictError,
    Database,
    ModelNotFoundError,
    Settings,
    StoredObject,
    load_settings,
    tables as t,
)

_UNSET = object()


class ModelStore:
    """Model versions and aliases in the metadata database, artifacts in the artifact store."""

    def __init__(
        self, db: Database, artifacts: ArtifactStore, *, trusted_types: tuple[str, ...] = ()
    ) -> None:
        self.db = db
        self.artifacts = artifacts
        self.trusted_types = tuple(trusted_types)
        """Types trusted beyond keel's reviewed list (the `trusted_types` setting)."""

    @classmethod
    def open(cls, settings: Settings | None = None) -> ModelStore:
        settings = settings or load_settings()
        return cls(
            Database.open(settings),
            ArtifactStore.open(settings),
            trusted_types=settings.trusted_types,
        )

    # ---- registering -----------------------------------------------------------------------

    def register(
        self,
        name: str,
        model: Any,
        *,
        contract: Contract,
        spec: Mapping[str, Any],
        evaluation: Mapping[str, Any],
        dataset_version: str | None = None,
        lineage: Mapping[str, Any] | None = None,
        card_markdown: str | None = None,
        actor: str = "user",
    ) -> ModelVersion:
        """Store a fitted model as the next version of `name` (made if new).

        `spec`, `evaluation` and `lineage` are the JSON of the version's stored columns (the
        training layer owns their meaning: `keel.train.EvaluationReport.to_json()` gives the
        evaluation). The artifact's format and any types trusted only through the
        `trusted_types` setting are recorded in the version's lineage (`artifact_format`,
        `extra_trusted_types`) and in the audit event of the registration.
        """
        check_model_name(name)
        saved = save_model(model, trusted_types=self.trusted_types)
        obj = self.artifacts.put_bytes(saved.data)
        card = self.artifacts.put_bytes(card_markdown.encode()) if card_markdown else None
        row = {
            "name": name,
            "artifact_sha256": obj.sha256,
            "artifact_uri": obj.uri,
            "artifact_size": obj.size,
            "trusted_types": saved.trusted,
            "contract_sha256": contract.sha256,
            "dataset_version": dataset_version,
            "spec": dict(spec),
            "evaluation": dict(evaluation),
            "lineage": {
                **(lineage or {}),
                "artifact_format": saved.format,
                "extra_trusted_types": saved.extra_trusted,
            },
            "card_sha256": card.sha256 if card else None,
        }
        for _attempt in range(5):
            try:
                version = self._insert_version(row, contract, saved, obj, actor)
                return self.get(f"{name}@{version}")
            except sa.exc.IntegrityError:
                continue  # another process took this version number; take the next
        msg = f"Could not register a version of {name!r}: five concurrent registrations won first; retry."
        raise ConflictError(msg)

    def _insert_version(
        self,
        row: dict[str, Any],
        contract: Contract,
        saved: SavedModel,
        obj: StoredObject,
        actor: str,
    ) -> int:
        """Write the next version of `row["name"]` and its audit event in one transaction;
        its number, or IntegrityError when another process took that number first."""
        name = row["name"]
        with self.db.begin() as conn:
            now = self.db.clock.now()
            known = conn.execute(sa.select(t.models.c.name).where(t.models.c.name == name))
            if known.first() is None:
                conn.execute(t.models.insert().values(name=name, created_at=now))
            save_contract(conn, contract, now)
            latest = conn.execute(
                sa.select(sa.func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.name == name
                )
            ).scalar()
            version = int(latest or 0) + 1
            conn.execute(t.model_versions.insert().values(**row, version=version, created_at=now))
            self.db.record_event(
                conn,
                actor=actor,
                action="model.register",
                subject=f"model:{name}",
                details={
                    "version": version,
                    "sha256": obj.sha256,
                    "dataset_version": row["dataset_version"],
                    "format": saved.format,
                    "extra_trusted_types": saved.extra_trusted,
                },
            )
        return version

    # ---- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.db.engine.connect() as conn:
            return [
                r[0] for r in conn.execute(sa.select(t.models.c.name).order_by(t.models.c.name))
            ]

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, newest first."""
        mv = t.model_versions
        with self.db.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(mv).where(mv.c.name == name).order_by(mv.c.version.desc()))
                .mappings()
                .all()
            )
        if not rows:
            self._unknown_model(name)
        by_version: dict[int, list[str]] = {}
        for a in self.aliases(name).values():
            by_version.setdefault(a.version, []).append(a.alias)
        return [version_from_row(r, tuple(sorted(by_version.get(r["version"], [])))) for r in rows]

    def _unknown_model(self, name: str) -> None:
        known = self.names()
        msg = f"No model named {name!r}; models now: {known or 'none'}. Register one with: keel train --spec SPEC --data DATASET --register {name}"
        raise ModelNotFoundError(msg)

    def get(self, ref: str) -> ModelVersion:
        """A version by `NAME@VERSION`, `NAME@ALIAS`, `NAME@latest`, or `NAME` (production).

        One indexed query for the version (joined with its alias when named by one) and one for
        the model's aliases; the slow path that lists what exists runs only to explain a miss.
        """
        name, _, which = ref.partition("@")
        which = which or "production"
        mv, a = t.model_versions, t.aliases
        query = sa.select(mv).where(mv.c.name == name)
        if which.isdigit():
            query = query.where(mv.c.version == int(which))
        elif which == "latest":
            query = query.order_by(mv.c.version.desc()).limit(1)
        else:
            query = query.join(
                a, sa.and_(a.c.name == mv.c.name, a.c.version == mv.c.version)
            ).where(a.c.alias == which)
        with self.db.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            alias_rows = (
                conn.execute(sa.select(a.c.alias, a.c.version).where(a.c.name == name)).all()
                if row
                else []
            )
        if row is not None:
            on_it = tuple(sorted(al for al, ver in alias_rows if ver == row["version"]))
            return version_from_row(row, on_it)
        return self._explain_miss(name, which)

    def resolve(self, ref: str) -> ResolvedVersion:
        """Which version `NAME@ALIAS` (or `NAME@VERSION`) names now: one indexed query."""
        name, _, which = ref.partition("@")
        which = which or "production"
        # Measured: building and executing this through SQLAlchemy Core costs ~300 us, the
        # driver call ~25 us. Resolution is the hot path of serving (every alias poll), so it
        # runs as one plain parameterized statement on a pooled DBAPI connection.
        mark = "?" if self.db.engine.dialect.paramstyle == "qmark" else "%s"
        if which.isdigit():
            sql = f"SELECT version, artifact_sha256, artifact_uri FROM model_versions WHERE name = {mark} AND version = {mark}"
            params: tuple[Any, ...] = (name, int(which))
        else:
            sql = (
                "SELECT mv.version, mv.artifact_sha256, mv.artifact_uri FROM model_versions mv "
                "JOIN aliases a ON a.name = mv.name AND a.version = mv.version "
                f"WHERE a.name = {mark} AND a.alias = {mark}"
            )
            params = (name, which)
        raw = self.db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(sql, params)
            row = cursor.fetchone()
            cursor.close()
        finally:
            raw.close()
        if row is None:
            self._explain_miss(name, which)
        assert row is not None
        return ResolvedVersion(name, row[0], row[1], row[2])

    def _explain_miss(self, name: str, which: str) -> NoReturn:
        versions = self.versions(name)  # raises for an unknown model
        if which.isdigit():
            shown = ", ".join(str(v.version) for v in versions[:10])
            msg = f"Model {name!r} has no version {which}; versions (newest first): {shown}."
            raise ModelNotFoundError(msg)
        now = ", ".join(f"{al} -> {st.version}" for al, st in self.aliases(name).items()) or "none"
        msg = (
            f"No model {name!r} has the alias {which!r}. Aliases now: {now}. "
            f"Promote with: keel models promote {name} {versions[0].version} --to {which}"
        )
        raise ModelNotFoundError(msg)

    def load(self, ref: str) -> tuple[ModelVersion, Any]:
        """The version and its fitted model; the artifact's hash and contents are checked."""
        version = self.get(ref)
        data = self.artifacts.get_bytes(version.artifact_sha256)
        return version, load_model(data, trusted_types=self.trusted_types)

    def load_artifact(self, resolved: ResolvedVersion) -> Any:
        """The fitted model of a resolved version (hash and contents checked), without reading
        its evaluation: what a server swapping in a new version needs."""
        return load_model(
            self.artifacts.get_bytes(resolved.artifact_sha256), trusted_types=self.trusted_types
        )

    def contract(self, ref: str) -> Contract:
        version = self.get(ref)
        with self.db.engine.connect() as conn:
            text = conn.execute(
                sa.select(t.contracts.c.yaml).where(t.contracts.c.sha256 == version.contract_sha256)
            ).scalar_one()
        return contract_from_yaml(text)

    def card(self, ref: str) -> str:
        version = self.get(ref)
        if version.card_sha256 is None:
            msg = f"Model {version.ref} was registered without a card."
            raise ModelNotFoundError(msg)
        return self.artifacts.get_bytes(version.card_sha256).decode()

    def aliases(self, name: str) -> dict[str, AliasState]:
        a = t.aliases
        with self.db.engine.connect() as conn:
            rows = (
                conn.execute(sa.select(a).where(a.c.name == name).order_by(a.c.alias))
                .mappings()
                .all()
            )
        return {
            r["alias"]: AliasState(r["alias"], r["version"], r["weight"], r["revision"])
            for r in rows
        }

    def history(self, name: str) -> list[AliasMove]:
        """Every alias move of a model, oldest first."""
        self.versions(name)
        return [
            AliasMove.from_record(e)
            for e in self.db.events(f"model:{name}")
            if e["action"].startswith("alias.")
        ]

    def audit(self, name: str | None = None) -> list[AuditEvent]:
        """The audit log (of one model, or of everything), oldest first."""
        events = self.db.events(f"model:{name}" if name else None)
        return [AuditEvent.from_record(e) for e in events]

    # ---- moving aliases --------------------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        reason: str | None = None,
        actor: str = "user",
        weight: float | None = None,
        expected: Any = _UNSET,
        numbers: Mapping[str, Any] | None = None,
        action: str = "alias.set",
    ) -> AliasState:
        """Point `alias` at `version` in one transaction, and audit it.

        Args:
            expected: the version the caller saw the alias at (None: not set). When given and
                another process moved the alias since, the move is refused with ConflictError.
            numbers: the figures that decided the move, kept in the audit log.
        """
        weight = check_move(alias, version, weight=weight, reason=reason)
        self.get(f"{name}@{version}")
        a = t.aliases
        try:
            with self.db.begin() as conn:
                row = (
                    conn.execute(sa.select(a).where(a.c.name == name, a.c.alias == alias))
                    .mappings()
                    .first()
                )
                current = row["version"] if row else None
                if expected is not _UNSET and expected != current:
                    _conflict(name, alias, expected, current)
                now = self.db.clock.now()
                if row is None:
                    conn.execute(
                        a.insert().values(
                            name=name,
                            alias=alias,
                            version=version,
                            weight=weight,
                            revision=1,
                            updated_at=now,
                        )
                    )
                    revision = 1
                else:
                    revision = row["revision"] + 1
                    done = conn.execute(
                        a.update()
                        .where(
                            a.c.name == name, a.c.alias == alias, a.c.revision == row["revision"]
                        )
                        .values(version=version, weight=weight, revision=revision, updated_at=now)
                    )
                    if done.rowcount != 1:
                        _conflict(name, alias, current, "changed")
                self.db.record_event(
                    conn,
                    actor=actor,
                    action=action,
                    subject=f"model:{name}",
                    reason=reason,
                    details={  # the move's own facts win over a caller's figure of the same name
                        **(numbers or {}),
                        "alias": alias,
                        "version": version,
                        "from_version": current,
                        "weight": weight,
                    },
                )
        except sa.exc.IntegrityError as exc:
            msg = f"Another process set alias {alias!r} of {name!r} at the same moment; nothing was changed. Look with: keel models history {name}"
            raise ConflictError(msg) from exc
        return AliasState(alias, version, weight, revision)

    def delete_alias(
        self, name: str, alias: str, *, reason: str | None = None, actor: str = "user"
    ) -> None:
        check_reason(reason)
        a = t.aliases
        with self.db.begin() as conn:
            row = (
                conn.execute(sa.select(a).where(a.c.name == name, a.c.alias == alias))
                .mappings()
                .first()
            )
            if row is None:
                now = ", ".join(f"{al} -> {st.version}" for al, st in self.aliases(name).items())
                msg = f"Model {name!r} has no alias {alias!r} to remove; aliases now: {now or 'none'}."
                raise ModelNotFoundError(msg)
            conn.execute(
                a.delete().where(
                    a.c.name == name, a.c.alias == alias, a.c.revision == row["revision"]
                )
            )
            self.db.record_event(
                conn,
                actor=actor,
                action="alias.delete",
                subject=f"model:{name}",
                reason=reason,
                details={"alias": alias, "version": None, "from_version": row["version"]},
            )

    def rollback(
        self,
        name: str,
        *,
        reason: str | None = None,
        actor: str = "user",
        numbers: Mapping[str, Any] | None = None,
    ) -> AliasState:
        """Move `production` back to the version it pointed at before the current one.

        Raises:
            ModelNotFoundError: there is no earlier production version.
            ConflictError: production moved since its history was read; nothing was changed.
        """
        current, previous = self.rollback_target(name)
        return self.set_alias(
            name,
            "production",
            previous,
            reason=reason,
            actor=actor,
            expected=current,
            numbers=numbers,
            action="alias.rollback",
        )

    def rollback_target(self, name: str) -> tuple[int, int]:
        """(current, previous): the production version now and the one a rollback returns to.

        Read from the audit history of exactly this model: each move of production pushes its
        version, each rollback pops one, removing the alias starts afresh.
        """
        stack: list[int] = []
        for e in self.history(name):
            if e.alias != "production":
                continue
            if e.action == "alias.rollback" and stack:
                stack.pop()
            elif e.action == "alias.delete" or e.version is None:
                stack.clear()
            else:
                stack.append(e.version)
        if len(stack) < 2:
            msg = f"Model {name!r} has no earlier production version to roll back to (production history: {stack or 'empty'})."
            raise ModelNotFoundError(msg)
        return stack[-1], stack[-2]


def _conflict(name: str, alias: str, expected: Any, current: Any) -> None:
    msg = (
        f"Alias {alias!r} of {name!r} moved while this change was prepared (expected {expected}, "
        f"found {current}); nothing was changed. Look with: keel models history {name}"
    )
    raise ConflictError(msg)
