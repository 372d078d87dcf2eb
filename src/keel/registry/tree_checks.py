"""The shape of a stored tree: one root, every node reached once, a bounded depth.

Indices in range are not enough. A crafted file whose children point back up (a cycle), or
share a child (two parents), passes every range check; then a descent never ends: scikit-learn's
`apply`, XGBoost's and LightGBM's predictors and keel's batch evaluator spin forever, and
LightGBM's `dump_model` recurses until the process dies (measured: a segmentation fault). Every
tree-carrying format is checked here before any library walks it: scikit-learn's `Tree`,
HistGradientBoosting's `TreePredictor`, XGBoost's trees (from its JSON) and LightGBM's (from its
model text, which the library writes back without walking the trees).
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np

from keel.store import UnsafeArtifactError

MAX_TREE_DEPTH = 2048
"""Deeper trees are refused: no supported library grows anything near this, and a descent
(the library's or keel's batch evaluator, one step a level) must end."""


def _fail(what: str, problem: str) -> NoReturn:
    msg = f"The model artifact holds a {what} tree with {problem}; it was refused as corrupt or crafted."
    raise UnsafeArtifactError(msg)


def tree_depths(
    left: np.ndarray, right: np.ndarray, *, what: str, unreached_ok: bool = False
) -> np.ndarray:
    """Each node's depth (root 0), after checking the nodes form one tree from node 0.

    `left`/`right` hold each node's children, -1 at leaves. Refused: a node with one child, a
    child index outside 1..n-1 (the root is no one's child), a node reached twice from the
    root (a cycle, or two parents), a depth over MAX_TREE_DEPTH, and, unless `unreached_ok`
    (XGBoost keeps pruned nodes in its arrays), a node the root does not reach.

    Raises:
        UnsafeArtifactError: the nodes do not form such a tree.
    """
    left = np.asarray(left, dtype=np.int64)
    right = np.asarray(right, dtype=np.int64)
    n = len(left)
    if n == 0 or len(right) != n:
        _fail(what, "no nodes, or child arrays of different lengths")
    inner = left >= 0
    if (inner != (right >= 0)).any():
        _fail(what, "a node that has only one child")
    for idx in (left[inner], right[inner]):
        if ((idx <= 0) | (idx >= n)).any():
            _fail(what, f"a child index outside 1..{n - 1}")
    depth = np.full(n, -1, dtype=np.int64)
    depth[0] = 0
    frontier = np.zeros(1, dtype=np.int64)
    level = 0
    while True:
        frontier = frontier[inner[frontier]]
        children = np.concatenate([left[frontier], right[frontier]])
        if children.size == 0:
            break
        level += 1
        if level > MAX_TREE_DEPTH:
            _fail(what, f"a depth over {MAX_TREE_DEPTH}")
        if (depth[children] >= 0).any() or np.unique(children).size != children.size:
            _fail(what, "a node reached twice from the root (a cycle, or a node with two parents)")
        depth[children] = level
        frontier = children
    unreached = int((depth < 0).sum())
    if unreached and not unreached_ok:
        _fail(what, f"{unreached} nodes the root does not reach")
    return depth


def lightgbm_text_trees(text: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The trees of a LightGBM model text as (left, right, split_feature) in one index space:
    inner nodes 0..L-2 as LightGBM numbers them, then leaves L-1..2L-2 (LightGBM writes a leaf
    child j as ~j). Read from text, so nothing walks the trees before they are checked.

    Raises:
        UnsafeArtifactError: a tree block that is malformed.
    """
    trees = []
    for block in text.split("\nTree=")[1:]:
        fields: dict[str, str] = {}
        for line in block.split("\n\n", 1)[0].splitlines()[1:]:
            key, sep, value = line.partition("=")
            if sep:
                fields[key] = value
        try:
            leaves = int(fields["num_leaves"])
            n_inner = leaves - 1
            if leaves < 1:
                raise ValueError(leaves)
            if n_inner == 0:
                trees.append(
                    (np.full(1, -1, np.int64), np.full(1, -1, np.int64), np.zeros(1, np.int64))
                )
                continue
            lc, rc, feat = (
                np.array(fields[k].split(), dtype=np.int64)
                for k in ("left_child", "right_child", "split_feature")
            )
        except (KeyError, ValueError, OverflowError):
            _fail("LightGBM", "a malformed tree block (num_leaves, left_child, right_child)")
        if not len(lc) == len(rc) == len(feat) == n_inner:
            _fail("LightGBM", f"child arrays that do not hold num_leaves - 1 = {n_inner} nodes")

        def unified(child: np.ndarray, n_inner: int = n_inner) -> np.ndarray:
            leaf = child < 0
            out = np.where(leaf, n_inner + ~child, child)
            if ((out < 0) | (out > 2 * n_inner) | (~leaf & (child >= n_inner))).any():
                _fail("LightGBM", "a child index outside its tree")
            return out

        left = np.concatenate([unified(lc), np.full(n_inner + 1, -1, np.int64)])
        right = np.concatenate([unified(rc), np.full(n_inner + 1, -1, np.int64)])
        trees.append((left, right, np.concatenate([feat, np.zeros(n_inner + 1, np.int64)])))
    return trees
