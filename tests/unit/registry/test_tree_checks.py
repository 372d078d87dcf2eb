"""Crafted trees: every node reached once from the root, depth bounded and as recorded, in every
tree-carrying format (scikit-learn, HistGradientBoosting, XGBoost, LightGBM)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from keel.registry import dump_model, load_model
from keel.registry.tree_checks import MAX_TREE_DEPTH, tree_depths
from keel.store import UnsafeArtifactError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(400, 4))
Y = ((X[:, 0] + 0.5 * X[:, 1] + 0.3 * RNG.normal(size=400)) > 0).astype(int)
LEAF = -1


class TestTreeDepths:
    def test_a_tree_gives_each_nodes_depth(self) -> None:
        """Root 0 at depth 0; children one level below their parent."""
        left = np.array([1, 3, LEAF, LEAF, LEAF])
        right = np.array([2, 4, LEAF, LEAF, LEAF])

        assert tree_depths(left, right, what="test").tolist() == [0, 1, 1, 2, 2]

    @pytest.mark.parametrize(
        ("left", "right", "problem"),
        [
            ([1, 0, LEAF], [2, 2, LEAF], "child index outside 1..2"),  # back to the root
            ([1, 1, LEAF, LEAF], [2, 3, LEAF, LEAF], "reached twice"),  # node 1 is its own child
            ([1, 3, LEAF, LEAF], [2, 3, LEAF, LEAF], "reached twice"),  # node 3: two parents
            ([1, 3, 1, LEAF, LEAF], [2, 4, 4, LEAF, LEAF], "reached twice"),  # 1 -> ... -> 1
            ([1, LEAF, LEAF, LEAF], [2, LEAF, LEAF, LEAF], "1 nodes the root does not reach"),
            ([1, LEAF, LEAF], [LEAF, LEAF, LEAF], "only one child"),
        ],
    )
    def test_nodes_that_are_not_one_tree_are_refused(
        self, left: list[int], right: list[int], problem: str
    ) -> None:
        """Cycles, shared children, unreached nodes and one-child nodes are refused by name."""
        with pytest.raises(UnsafeArtifactError, match=problem):
            tree_depths(np.array(left), np.array(right), what="test")

    def test_depth_is_bounded(self) -> None:
        """A chain deeper than MAX_TREE_DEPTH is refused (every descent must end soon)."""
        levels = MAX_TREE_DEPTH + 1
        left = np.full(2 * levels + 1, LEAF)
        right = np.full(2 * levels + 1, LEAF)
        for k in range(levels):  # inner node 2k: left to the next inner node, right to a leaf
            left[2 * k], right[2 * k] = 2 * k + 2, 2 * k + 1

        with pytest.raises(UnsafeArtifactError, match=f"a depth over {MAX_TREE_DEPTH}"):
            tree_depths(left, right, what="test")

    def test_unreached_nodes_may_be_allowed(self) -> None:
        """XGBoost keeps pruned nodes in its arrays: unreached, they may be allowed; their
        depth is -1."""
        depths = tree_depths(
            np.array([1, LEAF, LEAF, LEAF]),
            np.array([2, LEAF, LEAF, LEAF]),
            what="test",
            unreached_ok=True,
        )

        assert depths.tolist() == [0, 1, 1, -1]


# ---- the formats ----------------------------------------------------------------------------


def _rewrite_npy(data: bytes, field: str, edit: Any) -> bytes:
    """A skops file whose structured array holding `field` is changed by `edit(arr)`."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    done = False
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = src.read(name)
            if name.endswith(".npy") and not done:
                arr = np.load(io.BytesIO(raw), allow_pickle=False)
                if arr.dtype.names and field in arr.dtype.names:
                    arr = arr.copy()
                    edit(arr)
                    buf = io.BytesIO()
                    np.save(buf, arr, allow_pickle=False)
                    raw, done = buf.getvalue(), True
            dst.writestr(name, raw)
    assert done, f"no array with {field!r}"
    return out.getvalue()


def _cycle_sklearn(arr: np.ndarray) -> None:
    # the deepest inner node's left child becomes the root's left child, an ancestor of it:
    # every index stays in range, a descent through it never ends
    inner = np.flatnonzero(arr["left_child"] >= 0)
    arr["left_child"][inner[-1]] = arr["left_child"][0]


def test_decision_tree_with_a_cycle_is_refused() -> None:
    """A scikit-learn tree whose deepest split points back up is refused at load."""
    data, _ = dump_model(DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y))

    with pytest.raises(UnsafeArtifactError, match="reached twice from the root"):
        load_model(_rewrite_npy(data, "left_child", _cycle_sklearn))


def _tamper_max_depth(data: bytes, value: str) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = json.loads(src.read("schema.json"))

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("__class__") == "Tree":
                depth = node["content"]["content"]["max_depth"]
                node["content"]["content"]["max_depth"] = {**depth, "content": value, "__id__": 1}
            for v in node.values():
                visit(v)
        elif isinstance(node, list):
            for v in node:
                visit(v)

    visit(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            raw = json.dumps(schema).encode() if name == "schema.json" else src.read(name)
            dst.writestr(name, raw)
    return out.getvalue()


def test_decision_tree_whose_max_depth_lies_is_refused() -> None:
    """keel's batch evaluator descends max_depth levels: a recorded max_depth of a billion
    (a billion steps at warm-up) is refused for not being the tree's depth."""
    data, _ = dump_model(DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y))

    with pytest.raises(UnsafeArtifactError, match="max_depth 1000000000 while its nodes reach"):
        load_model(_tamper_max_depth(data, "1000000000"))


def test_histgradientboosting_depth_field_must_match_the_nodes() -> None:
    """A TreePredictor whose recorded node depths differ from the tree is refused."""
    data, _ = dump_model(HistGradientBoostingClassifier(max_iter=3).fit(X, Y))

    def deepen(arr: np.ndarray) -> None:
        arr["depth"][np.flatnonzero(arr["is_leaf"])[0]] = 10**9

    with pytest.raises(UnsafeArtifactError, match="node depths that differ"):
        load_model(_rewrite_npy(data, "depth", deepen))


def _digests(members: dict[str, bytes]) -> dict[str, str]:
    return {n: hashlib.sha256(b).hexdigest() for n, b in sorted(members.items())}


def _container_with(data: bytes, member: str, raw: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    manifest = json.loads(src.read("manifest.json"))
    members = {n: src.read(n) for n in src.namelist() if n != "manifest.json"}
    members[member] = raw
    manifest["members"] = _digests(members)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        dst.writestr("manifest.json", json.dumps(manifest))
        for name, body in members.items():
            dst.writestr(name, body)
    return out.getvalue()


def test_xgboost_tree_with_a_cycle_is_refused() -> None:
    """XGBoost loads a tree whose node points back at its parent without complaint (and
    would then predict forever); keel refuses it before anything predicts."""
    data, _ = dump_model(xgboost.XGBClassifier(n_estimators=3, max_depth=3).fit(X, Y))
    booster = xgboost.XGBClassifier()
    booster.load_model(bytearray(zipfile.ZipFile(io.BytesIO(data)).read("model.ubj")))
    model = json.loads(bytes(booster.get_booster().save_raw(raw_format="json")))
    tree = model["learner"]["gradient_booster"]["model"]["trees"][0]
    left = tree["left_children"]
    child = left[1]
    assert child > 0, "node 1 must be a split"
    assert left[child] > 0, "node 1's left child must be a split"
    left[child] = 1  # node 1 -> its child -> node 1

    with pytest.raises(UnsafeArtifactError, match="XGBoost tree with a node reached twice"):
        load_model(_container_with(data, "model.ubj", json.dumps(model).encode()))


def test_lightgbm_tree_with_a_cycle_is_refused_before_the_library_walks_it() -> None:
    """LightGBM loads a cyclic tree, then crashes the process in dump_model (measured: a
    segmentation fault) and predicts forever: keel reads the trees from the model text the
    library writes back, and refuses the cycle first."""
    data, _ = dump_model(
        lightgbm.LGBMClassifier(n_estimators=3, num_leaves=8, verbose=-1).fit(X, Y)
    )
    text = zipfile.ZipFile(io.BytesIO(data)).read("model.txt").decode()
    start = text.index("\nTree=0")
    line = text.index("left_child=", start)
    end = text.index("\n", line)
    left = [int(v) for v in text[line + len("left_child=") : end].split()]
    inner = [c for c in left if c > 0]
    assert inner, "the first tree needs an inner child to point back from"
    left[inner[-1]] = 1 if left[inner[-1]] != 1 else 0  # a deeper split points at node 1
    crafted = text[:line] + "left_child=" + " ".join(map(str, left)) + text[end:]

    with pytest.raises(UnsafeArtifactError, match="LightGBM tree with"):
        load_model(_container_with(data, "model.txt", crafted.encode()))


def test_lightgbm_text_whose_tree_sizes_disagree_does_not_abort_the_process() -> None:
    """LightGBM reads trees in parallel by the `tree_sizes` header, and a block whose size
    differs aborts the whole process; keel drops the header so the library reads the trees
    one by one, and a changed but well-formed block simply loads."""
    model = lightgbm.LGBMClassifier(n_estimators=3, num_leaves=8, verbose=-1).fit(X, Y)
    data, _ = dump_model(model)
    text = zipfile.ZipFile(io.BytesIO(data)).read("model.txt").decode()
    start = text.index("\nTree=0")
    line = text.index("leaf_count=", start)
    end = text.index("\n", line)
    longer = text[:end] + " " + text[end:]  # one more byte in tree 0: its size is now wrong

    loaded = load_model(_container_with(data, "model.txt", longer.encode()))

    assert np.array_equal(loaded.predict(X), model.predict(X))
