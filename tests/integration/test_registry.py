"""The registry on SQLite and PostgreSQL: versions, aliases, conflicts, rollback, safe loading."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from keel.data import contract_from_dict
from keel.registry import ModelStore, dump_model, load_model
from keel.store import (
    ConfigError,
    ConflictError,
    IntegrityError,
    ModelNotFoundError,
    UnsafeArtifactError,
)

pytestmark = pytest.mark.integration

CONTRACT = contract_from_dict(
    {
        "name": "xy",
        "columns": {
            "a": {"type": "float"},
            "b": {"type": "float"},
            "y": {"type": "int", "role": "target"},
        },
    }
)
X = pd.DataFrame({"a": np.linspace(0, 1, 200), "b": np.linspace(1, 0, 200) ** 2})
Y = (X["a"] + 0.1 * np.sin(np.arange(200)) > 0.5).astype(int)


def register(models: ModelStore, model: object = None, name: str = "m") -> int:
    fitted = model or LogisticRegression().fit(X, Y)
    return models.register(
        name, fitted, contract=CONTRACT, spec={"estimator": "x"}, evaluation={"auc": 0.9}
    ).version


def test_versions_count_up_and_load_round_trips(models: ModelStore) -> None:
    """Each registration is the next version; a loaded model predicts as the original."""
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, Y)
    v1, v2 = register(models, model), register(models)

    version, loaded = models.load(f"m@{v1}")

    assert (v1, v2) == (1, 2)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert version.trusted_types == [
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    ]
    assert models.contract("m@1") == CONTRACT


def test_aliases_resolve_and_history_is_kept(models: ModelStore) -> None:
    """Aliases move in the audit log with who, why and from where."""
    register(models), register(models)
    models.set_alias("m", "production", 1, reason="first", actor="alice")
    models.set_alias(
        "m", "production", 2, reason="better", actor="bob", expected=1, numbers={"roc_auc": 0.91}
    )

    history = models.history("m")

    assert models.get("m@production").version == 2
    assert models.get("m").version == 2
    assert [(e.version, e.from_version, e.actor, e.reason) for e in history] == [
        (1, None, "alice", "first"),
        (2, 1, "bob", "better"),
    ]
    assert history[1].details["roc_auc"] == 0.91
    assert models.versions("m")[0].aliases == ("production",)


def test_stale_move_is_a_conflict(models: ModelStore) -> None:
    """A move prepared against an alias that has since moved is refused; nothing changes."""
    register(models), register(models), register(models)
    models.set_alias("m", "production", 1)
    models.set_alias("m", "production", 2, expected=1)

    with pytest.raises(ConflictError, match=r"expected 1, found 2\); nothing was changed"):
        models.set_alias("m", "production", 3, expected=1)
    assert models.get("m@production").version == 2


def test_two_processes_moving_one_alias(make_models: Callable[[], ModelStore]) -> None:
    """Two stores move the same alias from the same version at once: one wins, one conflicts."""
    first = make_models()
    for _ in range(3):
        register(first)
    first.set_alias("m", "production", 1)
    stores = [make_models(), make_models()]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def move(s: ModelStore, target: int) -> None:
        barrier.wait()
        try:
            s.set_alias("m", "production", target, expected=1)
            outcomes.append("won")
        except ConflictError:
            outcomes.append("conflict")

    threads = [
        threading.Thread(target=move, args=(s, v)) for s, v in zip(stores, (2, 3), strict=True)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()

    assert sorted(outcomes) == ["conflict", "won"]
    assert first.get("m@production").version in (2, 3)
    assert len([e for e in first.history("m") if e.alias == "production"]) == 2


def test_rollback_walks_back_through_production(models: ModelStore) -> None:
    """Rollback returns to the previous production version, and again to the one before."""
    for _ in range(3):
        register(models)
    for v in (1, 2, 3):
        models.set_alias("m", "production", v)

    models.rollback("m", reason="regression")
    assert models.get("m@production").version == 2
    models.rollback("m")
    assert models.get("m@production").version == 1
    with pytest.raises(ModelNotFoundError, match=r"no earlier production version"):
        models.rollback("m")
    assert models.history("m")[-1].action == "alias.rollback"


def test_canary_needs_a_weight_and_unknown_alias_is_refused(models: ModelStore) -> None:
    """canary takes a traffic weight; aliases outside the known four are refused."""
    register(models)

    with pytest.raises(ConfigError, match=r"canary alias needs a weight between 0 and 1"):
        models.set_alias("m", "canary", 1)
    with pytest.raises(ConfigError, match=r"Alias 'prod' is not one keel knows"):
        models.set_alias("m", "prod", 1)
    assert models.set_alias("m", "canary", 1, weight=0.1).weight == 0.1


def test_unknown_names_list_what_exists(models: ModelStore) -> None:
    """Unknown models, versions and aliases name what there is and how to fix it."""
    register(models)

    with pytest.raises(ModelNotFoundError, match=r"No model named 'x'; models now: \['m'\]"):
        models.get("x")
    with pytest.raises(ModelNotFoundError, match=r"has no version 9; versions \(newest first\): 1"):
        models.get("m@9")
    with pytest.raises(ModelNotFoundError) as exc:
        models.get("m@production")
    assert (
        str(exc.value)
        == "No model 'm' has the alias 'production'. Aliases now: none. Promote with: keel models promote m 1 --to production"
    )


def test_changed_byte_in_artifact_is_refused(models: ModelStore) -> None:
    """A tampered artifact fails its hash check and is never unpickled."""
    register(models)
    path = Path(models.get("m@1").artifact_uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(IntegrityError, match=r"was changed"):
        models.load("m@1")


def test_untrusted_type_is_refused_with_the_list() -> None:
    """A model that needs a type outside the reviewed list is refused, naming it."""
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(func=_double).fit(X)

    with pytest.raises(
        UnsafeArtifactError, match=r"needs types keel does not trust: \['.*_double'\]"
    ):
        dump_model(model)


def _double(x: object) -> object:
    return x


def _tamper_nodes(data: bytes, field: str, value: int) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name.endswith(".npy"):
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
                if arr.dtype.names and field in arr.dtype.names:
                    arr = arr.copy()
                    inner = (
                        ~arr["is_leaf"].astype(bool)
                        if "is_leaf" in arr.dtype.names
                        else np.ones(len(arr), bool)
                    )
                    arr[field][np.flatnonzero(inner)[0]] = value
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    raw = buf.getvalue()
            dst.writestr(name, raw)
    return out.getvalue()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("left", 10_000, "child index"), ("feature_idx", 99, "feature index")],
)
def test_crafted_tree_indices_are_refused(field: str, value: int, message: str) -> None:
    """A HistGradientBoosting file whose node points outside the tree is refused before use."""
    data, _ = dump_model(HistGradientBoostingClassifier(max_iter=3).fit(X, Y))

    with pytest.raises(UnsafeArtifactError, match=message):
        load_model(_tamper_nodes(data, field, value))


def test_forest_trees_are_checked_and_load() -> None:
    """Random forests (sklearn Tree) load after their indices are checked."""
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)

    loaded = load_model(dump_model(model)[0])

    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_resolve_names_the_version_an_alias_points_at(models: ModelStore) -> None:
    """resolve() follows an alias (or a number) in one query and loads the same model."""
    register(models)
    register(models)
    models.set_alias("m", "staging", 2)

    resolved = models.resolve("m@staging")

    assert (resolved.ref, resolved.artifact_sha256) == ("m@2", models.get("m@2").artifact_sha256)
    assert models.resolve("m@1").version == 1
    assert np.array_equal(
        models.load_artifact(resolved).predict(X), models.load("m@2")[1].predict(X)
    )
    with pytest.raises(ModelNotFoundError, match=r"No model 'm' has the alias 'shadow'"):
        models.resolve("m@shadow")
    with pytest.raises(ModelNotFoundError, match=r"No model named 'zz'"):
        models.resolve("zz@production")


def _move_in_process(url: str, root: str, target: int, barrier: object, out: object) -> None:
    from keel.registry import ModelStore as Store
    from keel.store import ArtifactStore as Art, Database as Db

    store = Store(Db(url), Art(root))
    barrier.wait()  # type: ignore[attr-defined]
    try:
        store.set_alias("m", "production", target, expected=1)
        out.put("won")  # type: ignore[attr-defined]
    except ConflictError:
        out.put("conflict")  # type: ignore[attr-defined]


def test_two_os_processes_moving_one_alias(
    models: ModelStore, database_url: str, tmp_path: Path
) -> None:
    """Two real processes move the same alias from the same version: one wins, one conflicts."""
    import multiprocessing as mp

    for _ in range(3):
        register(models)
    models.set_alias("m", "production", 1)
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(
            target=_move_in_process,
            args=(database_url, str(tmp_path / "artifacts"), v, barrier, out),
        )
        for v in (2, 3)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)

    assert sorted([out.get(timeout=5), out.get(timeout=5)]) == ["conflict", "won"]
    assert models.get("m@production").version in (2, 3)


def _loop_a_node(data: bytes) -> bytes:
    """A HistGradientBoosting file whose second inner node is its own left child: every index
    stays in range, but a descent through that node never ends."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    done = False
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name.endswith(".npy") and not done:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
                if arr.dtype.names and "is_leaf" in arr.dtype.names:
                    inner = np.flatnonzero(~arr["is_leaf"].astype(bool))
                    if len(inner) > 1:
                        arr = arr.copy()
                        arr["left"][inner[1]] = inner[1]
                        buf = io.BytesIO()
                        np.save(buf, arr, allow_pickle=False)
                        raw, done = buf.getvalue(), True
            dst.writestr(name, raw)
    assert done, "no tree with two inner nodes to tamper with"
    return out.getvalue()


def test_crafted_cyclic_tree_is_refused() -> None:
    """A tree whose children form a cycle (indices in range) is refused, not loaded to spin."""
    data, _ = dump_model(HistGradientBoostingClassifier(max_iter=3).fit(X, Y))

    with pytest.raises(UnsafeArtifactError, match=r"node reached twice from the root \(a cycle"):
        load_model(_loop_a_node(data))
