"""Storing fitted models safely: skops, native booster formats, a reviewed trust list, checks.

A scikit-learn model is one skops file (format "skops"). A model skops cannot store without
pickle (XGBoost, LightGBM, CatBoost) is a container: a zip holding `manifest.json` and members,
e.g. the preprocessing pipeline as skops (its last step "passthrough") plus the booster in its
library's own format. `FORMATS` maps a format name to its dump and load functions; the manifest
names the format, and the loader refuses a container that is malformed, names an unknown format,
or holds members other than those its manifest lists with their sha256.

skops refuses to load any type it does not trust. Some types that supported estimators need are
not trusted by skops, for good reason: scikit-learn does not bounds-check the node and feature
indices of `TreePredictor` (HistGradientBoosting) or `Tree` (decision trees and forests), so a
crafted file could crash the process or read out of bounds. keel trusts exactly the reviewed
types below, and before a loaded model is used it checks every node and feature index of every
such tree, and that its nodes form one tree of bounded depth (`keel.registry.tree_checks`: a
cycle with every index in range would make every descent spin forever). Anything else is
refused with the list of untrusted types.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from keel.registry import boosters
from keel.registry.onnx_model import FORMAT as ONNX_FORMAT, load_onnx
from keel.registry.tree_checks import tree_depths
from keel.store import UnsafeArtifactError

FORMAT = "skops"
"""The format of a plain scikit-learn model (one skops file, no container)."""
MANIFEST = "manifest.json"
_MAX_MEMBERS = 16
_MEMBER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_TREE = "sklearn.tree._tree.Tree"

REVIEWED_TYPES: dict[str, str] = {
    "numpy.dtype": "a dtype description; holds no code and no indices",
    _TREE_PREDICTOR: "HistGradientBoosting trees; node, feature and bitset indices checked on load",
    _TREE: "decision trees and forests; child and feature indices checked on load",
}
"""Types skops calls unsafe that keel trusts, each with the reason it may."""


@dataclass(frozen=True)
class Dumped:
    """What a format's dump gives: container members, JSON facts for its loader, and the
    skops types outside skops' defaults the members need (recorded on the model version)."""

    members: dict[str, bytes]
    meta: dict[str, Any]
    trusted: list[str]


@dataclass(frozen=True)
class ArtifactFormat:
    """One entry of the format table.

    `claims(model)` says whether this format stores the model; `dump(model, trusted_types)`
    returns its members; `load(members, meta, trusted_types)` rebuilds the model from them, by
    the library's own loader, raising UnsafeArtifactError on anything malformed. The container
    around the members (zip, manifest, hashes) is common to every format.
    """

    name: str
    claims: Callable[[Any], bool]
    dump: Callable[[Any, frozenset[str]], Dumped]
    load: Callable[[dict[str, bytes], dict[str, Any], frozenset[str]], Any]


@dataclass(frozen=True)
class SavedModel:
    """A model as artifact bytes: its format, the reviewed types it needs, and which of those
    came from the `trusted_types` setting rather than keel's own list (audited in lineage)."""

    data: bytes
    format: str
    trusted: list[str]
    extra_trusted: list[str]


def save_model(model: Any, *, trusted_types: Iterable[str] = ()) -> SavedModel:
    """Serialize a fitted model in the first format of `FORMATS` that claims it, else skops.

    Raises:
        UnsafeArtifactError: the model needs a type neither keel nor `trusted_types` trusts.
    """
    extra = frozenset(trusted_types)
    for fmt in FORMATS.values():
        if fmt.claims(model):
            dumped = fmt.dump(model, extra)
            data = write_container(fmt.name, dumped)
            return SavedModel(data, fmt.name, dumped.trusted, _extra(dumped.trusted))
    data, needed = _skops_dump(model, extra)
    return SavedModel(data, FORMAT, needed, _extra(needed))


def _extra(needed: list[str]) -> list[str]:
    return [t for t in needed if t not in REVIEWED_TYPES]


def dump_model(model: Any, *, trusted_types: Iterable[str] = ()) -> tuple[bytes, list[str]]:
    """Serialize a fitted model; returns the bytes and the untrusted types it needs.

    Raises:
        UnsafeArtifactError: the model needs a type outside the reviewed list.
    """
    saved = save_model(model, trusted_types=trusted_types)
    return saved.data, saved.trusted


def check_storable(model: Any, *, trusted_types: Iterable[str] = ()) -> str:
    """Before a fit: the format an (unfitted) estimator or pipeline will be stored in.

    A booster class of the native table needs JSON parameters; anything else is dumped with
    skops as it is, which names every type it holds (a custom estimator's class, a function).

    Raises:
        UnsafeArtifactError: the model could not be stored once fitted.
    """
    extra = frozenset(trusted_types)
    last = model.steps[-1][1] if _is_pipeline(model) else model
    entry = boosters.booster_class(last)
    if entry is not None:
        boosters.storable_params(last, entry.path)
        if _is_pipeline(model):
            _skops_dump(_without_last(model), extra)
        return entry.library
    _skops_dump(model, extra)
    return FORMAT


def load_model(data: bytes, *, trusted_types: Iterable[str] = ()) -> Any:
    """Load an artifact: a container by its manifest's format, or a plain skops file.

    Raises:
        UnsafeArtifactError: not a zip, a malformed container, an untrusted type, or tree
            contents out of range.
    """
    extra = frozenset(trusted_types)
    names = _zip_names(data)
    if MANIFEST in names or "schema.json" not in names:
        return load_container(data, trusted_types=extra)
    return _skops_load(data, extra)


def _zip_names(data: bytes) -> list[str]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        msg = f"The model artifact is not a zip file ({exc}); expected a skops file or a keel container. It was refused."
        raise UnsafeArtifactError(msg) from exc


def write_container(fmt: str, dumped: Dumped) -> bytes:
    """The zip of a format's members with a manifest that lists each one's sha256."""
    for name in dumped.members:
        if not _MEMBER_NAME.fullmatch(name) or name == MANIFEST:
            msg = f"Container member name {name!r} is not allowed; expected letters, digits, '_', '.', '-'."
            raise UnsafeArtifactError(msg)
    manifest = {
        "keel_artifact": 1,
        "format": fmt,
        "members": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(dumped.members.items())},
        "trusted_types": dumped.trusted,
        "meta": dumped.meta,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(MANIFEST, date_time=(1980, 1, 1, 0, 0, 0))
        zf.writestr(info, json.dumps(manifest, sort_keys=True, indent=1))
        for name, raw in sorted(dumped.members.items()):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), raw)
    return out.getvalue()


def _bad_container(what: str) -> NoReturn:
    msg = f"The model container {what}; it was refused."
    raise UnsafeArtifactError(msg)


def load_container(data: bytes, *, trusted_types: Iterable[str] = ()) -> Any:
    """Check a container's manifest and members, then load it with its format's loader.

    Raises:
        UnsafeArtifactError: not a zip, no manifest, an unknown format, members that differ
            from the manifest, or whatever the format's loader refuses.
    """
    names = _zip_names(data)
    if MANIFEST not in names:
        _bad_container(f"has no {MANIFEST} (it holds {sorted(names)[:10]})")
    if len(names) != len(set(names)) or len(names) > _MAX_MEMBERS + 1:
        _bad_container("holds repeated or too many members")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
        except (ValueError, UnicodeDecodeError) as exc:
            _bad_container(f"has a {MANIFEST} that is not JSON ({exc})")
        if not isinstance(manifest, dict) or manifest.get("keel_artifact") != 1:
            _bad_container(f"has a {MANIFEST} without keel_artifact: 1")
        fmt_name = manifest.get("format")
        fmt = FORMATS.get(fmt_name) if isinstance(fmt_name, str) else None
        if fmt is None:
            _bad_container(f"names the format {fmt_name!r}; expected one of {sorted(FORMATS)}")
        listed = manifest.get("members")
        if not isinstance(listed, dict) or sorted(listed) != sorted(
            n for n in names if n != MANIFEST
        ):
            _bad_container(f"holds members {sorted(names)} that its manifest does not list exactly")
        members = {}
        for name, digest in listed.items():
            raw = zf.read(name)
            if hashlib.sha256(raw).hexdigest() != digest:
                _bad_container(f"member {name!r} does not match the sha256 of its manifest")
            members[name] = raw
    meta = manifest.get("meta")
    if not isinstance(meta, dict):
        _bad_container("has no meta mapping in its manifest")
    return fmt.load(members, meta, frozenset(trusted_types))


def _skops_dump(model: Any, extra: frozenset[str]) -> tuple[bytes, list[str]]:
    import skops.io as sio  # see _skops_load

    data = sio.dumps(model)
    needed = sorted(sio.get_untrusted_types(data=data))
    _refuse_unreviewed(needed, "Saving", extra)
    return data, needed


def _skops_load(data: bytes, extra: frozenset[str]) -> Any:
    """Load skops bytes, trusting only the reviewed types, then check every tree's indices."""
    # imported here: skops walks every scikit-learn estimator at import (several seconds), which
    # every `keel` command touching the registry paid even when it loads no model
    import skops.io as sio

    try:
        needed = sorted(sio.get_untrusted_types(data=data))
    except Exception as exc:  # skops raises many kinds on a malformed file
        msg = f"The model artifact could not be read by skops ({type(exc).__name__}: {exc}); it was refused."
        raise UnsafeArtifactError(msg) from exc
    _refuse_unreviewed(needed, "Loading", extra)
    try:
        model = sio.loads(data, trusted=needed)
    except Exception as exc:  # skops raises many kinds on a malformed file
        msg = f"The model artifact could not be read by skops ({type(exc).__name__}: {exc}); it was refused."
        raise UnsafeArtifactError(msg) from exc
    check_model_contents(model)
    return model


def _refuse_unreviewed(needed: list[str], verb: str, extra: frozenset[str]) -> None:
    unreviewed = [t for t in needed if t not in REVIEWED_TYPES and t not in extra]
    if unreviewed:
        msg = (
            f"{verb} the model needs types keel does not trust: {unreviewed}. Reviewed types: "
            f"{sorted(REVIEWED_TYPES)}; trusted by the trusted_types setting: {sorted(extra)}. "
            "Use a supported estimator (scikit-learn, xgboost, lightgbm, catboost), or review "
            "the type and add it to trusted_types in keel.toml (or KEEL_TRUSTED_TYPES); see "
            "docs/models.md."
        )
        raise UnsafeArtifactError(msg)


# ---- native boosters: the preprocessing as skops, the booster in its library's format ------


def _is_pipeline(model: Any) -> bool:
    from sklearn.pipeline import Pipeline

    return type(model) is Pipeline


def _without_last(pipeline: Any) -> Any:
    from sklearn.pipeline import Pipeline

    name = pipeline.steps[-1][0]
    return Pipeline(
        [*pipeline.steps[:-1], (name, "passthrough")],
        memory=pipeline.memory,
        verbose=pipeline.verbose,
    )


def _booster_of(model: Any) -> boosters.BoosterClass | None:
    last = model.steps[-1][1] if _is_pipeline(model) else model
    return boosters.booster_class(last)


def _booster_format(library: str) -> ArtifactFormat:
    def claims(model: Any) -> bool:
        entry = _booster_of(model)
        return entry is not None and entry.library == library

    def dump(model: Any, extra: frozenset[str]) -> Dumped:
        last = model.steps[-1][1] if _is_pipeline(model) else model
        entry = boosters.booster_class(last)
        assert entry is not None  # claims() said so
        raw, meta = boosters.save_booster(last, entry)
        members = {entry.member: raw}
        trusted: list[str] = []
        if _is_pipeline(model):
            members["pipeline.skops"], trusted = _skops_dump(_without_last(model), extra)
            meta["step"] = model.steps[-1][0]
        return Dumped(members, meta, trusted)

    def load(members: dict[str, bytes], meta: dict[str, Any], extra: frozenset[str]) -> Any:
        entry = boosters.BOOSTER_CLASSES.get(meta.get("estimator"))  # type: ignore[arg-type]
        if entry is None or entry.library != library:
            _bad_container(
                f"of format {library!r} names the estimator {meta.get('estimator')!r}; expected "
                f"one of {sorted(p for p, e in boosters.BOOSTER_CLASSES.items() if e.library == library)}"
            )
        expected = {entry.member, "pipeline.skops"} if "step" in meta else {entry.member}
        if set(members) != expected:
            _bad_container(
                f"of format {library!r} holds {sorted(members)}; expected {sorted(expected)}"
            )
        model = boosters.load_booster(members[entry.member], meta)
        if "step" not in meta:
            return model
        pipeline = _skops_load(members["pipeline.skops"], extra)
        if not _is_pipeline(pipeline) or pipeline.steps[-1] != (meta["step"], "passthrough"):
            _bad_container("holds a preprocessing pipeline that does not end in the booster's step")
        pipeline.steps[-1] = (meta["step"], model)
        return pipeline

    return ArtifactFormat(library, claims, dump, load)


def _onnx_format() -> ArtifactFormat:
    """An ONNX graph trained elsewhere (`keel models import`): the .onnx file as one member,
    checked by onnx.checker and onnxruntime when loaded (`keel.registry.onnx_model`)."""

    def claims(model: Any) -> bool:
        return getattr(model, "format", None) == ONNX_FORMAT

    def dump(model: Any, _extra: frozenset[str]) -> Dumped:
        return Dumped({"model.onnx": model.data}, {}, [])

    def load(members: dict[str, bytes], _meta: dict[str, Any], _extra: frozenset[str]) -> Any:
        if set(members) != {"model.onnx"}:
            _bad_container(f"of format 'onnx' holds {sorted(members)}; expected ['model.onnx']")
        return load_onnx(members["model.onnx"])

    return ArtifactFormat(ONNX_FORMAT, claims, dump, load)


FORMATS: dict[str, ArtifactFormat] = {
    **{name: _booster_format(name) for name in ("xgboost", "lightgbm", "catboost")},
    ONNX_FORMAT: _onnx_format(),
}
"""Container formats by name. Add one entry to store another kind of model; a plain skops
file (FORMAT) is what every model no entry claims becomes."""


def check_model_contents(model: Any) -> None:
    """Check every tree reachable from a model: indices in range, shapes consistent."""
    for obj, n_features in _walk(model, None, set()):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        checker = _CHECKERS.get(name)
        if checker is not None:
            checker(obj, n_features)


def _walk(obj: Any, n_features: int | None, seen: set[int]) -> Iterator[tuple[Any, int | None]]:
    """Every object reachable from `obj`, with the input width of the nearest estimator."""
    if id(obj) in seen or isinstance(obj, str | bytes | int | float | np.ndarray | np.generic):
        return
    seen.add(id(obj))
    yield obj, n_features
    width = getattr(obj, "__dict__", {}).get("n_features_in_")
    if isinstance(width, int | np.integer):
        n_features = int(width)
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, list | tuple | set):
        children = obj
    elif hasattr(obj, "__dict__"):
        children = vars(obj).values()
    else:
        return  # sklearn's Tree is a Cython object without __dict__: a leaf here
    for v in children:
        yield from _walk(v, n_features, seen)


def _fail(what: str) -> NoReturn:
    msg = f"The model artifact holds a tree with {what}; it was refused as corrupt or crafted."
    raise UnsafeArtifactError(msg)


def _check_tree_predictor(pred: Any, n_features: int | None) -> None:
    nodes = pred.nodes
    if len(nodes) == 0:
        _fail("no nodes")
    leaf = nodes["is_leaf"].astype(bool)
    inner = ~leaf
    left = np.where(leaf, -1, nodes["left"].astype(np.int64))
    right = np.where(leaf, -1, nodes["right"].astype(np.int64))
    depths = tree_depths(left, right, what="HistGradientBoosting")
    if not np.array_equal(nodes["depth"].astype(np.int64), depths):
        _fail("node depths that differ from where the nodes are")  # keel's evaluator reads them
    if n_features is None:
        _fail("no owning estimator that says how many features it takes")
    feat = nodes["feature_idx"][inner].astype(np.int64)
    if (feat < 0).any() or (n_features is not None and (feat >= n_features).any()):
        _fail("a feature index out of range")
    cat = inner & nodes["is_categorical"].astype(bool)
    if cat.any():
        bitsets = pred.raw_left_cat_bitsets
        bidx = nodes["bitset_idx"][cat].astype(np.int64)
        if ((bidx < 0) | (bidx >= len(bitsets))).any():
            _fail("a category bitset index out of range")


def _check_tree(tree: Any, _n_features: int | None) -> None:
    n = int(tree.node_count)
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    feature = np.asarray(tree.feature, dtype=np.int64)
    if not (len(left) == len(right) == len(feature) == n) or n == 0:
        _fail("arrays whose lengths disagree with its node count")
    depths = tree_depths(left, right, what="scikit-learn")
    if int(tree.max_depth) != int(depths.max()):
        _fail(f"max_depth {int(tree.max_depth)} while its nodes reach depth {int(depths.max())}")
    inner = left >= 0
    if ((feature[inner] < 0) | (feature[inner] >= int(tree.n_features))).any():
        _fail("a feature index out of range")
    if np.asarray(tree.value).shape[0] != n:
        _fail("values for a different number of nodes")


_CHECKERS: dict[str, Callable[[Any, int | None], None]] = {
    _TREE_PREDICTOR: _check_tree_predictor,
    _TREE: _check_tree,
}
