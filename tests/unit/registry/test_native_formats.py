"""Boosters stored in their library's own format inside a checked container, never pickle."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

import catboost
import lightgbm
import numpy as np
import pytest
import xgboost
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from keel.registry import check_storable, dump_model, load_container, load_model, save_model
from keel.store import ConfigError, UnsafeArtifactError, load_settings

X, Y = load_breast_cancer(return_X_y=True)
X = X[:, :8].copy()
X[::7, 2] = np.nan  # missing values reach the booster behind the imputer
Y3 = np.digitize(X[:, 0], [12.0, 16.0])

BOOSTERS = [
    pytest.param(lambda: xgboost.XGBClassifier(n_estimators=8, max_depth=3), Y, id="xgb-binary"),
    pytest.param(lambda: xgboost.XGBClassifier(n_estimators=5, max_depth=2), Y3, id="xgb-3-class"),
    pytest.param(lambda: xgboost.XGBRegressor(n_estimators=8), X[:, 1], id="xgb-regressor"),
    pytest.param(lambda: lightgbm.LGBMClassifier(n_estimators=8, verbose=-1), Y, id="lgbm-binary"),
    pytest.param(
        lambda: lightgbm.LGBMRegressor(n_estimators=8, verbose=-1), X[:, 1], id="lgbm-regressor"
    ),
    pytest.param(
        lambda: catboost.CatBoostClassifier(iterations=8, verbose=False, allow_writing_files=False),
        Y,
        id="catboost-binary",
    ),
    pytest.param(
        lambda: catboost.CatBoostRegressor(iterations=8, verbose=False, allow_writing_files=False),
        X[:, 1],
        id="catboost-regressor",
    ),
]


def _outputs(model: Any) -> np.ndarray:
    return np.asarray(
        model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)
    )


def _pipeline(make: Any) -> Pipeline:
    return Pipeline([("fill", SimpleImputer()), ("model", make())])


@pytest.mark.parametrize(("make", "y"), BOOSTERS)
def test_pipeline_with_a_booster_round_trips_in_its_native_format(make: Any, y: Any) -> None:
    """A pipeline ending in a booster loads back as the same pipeline with the same answers."""
    fitted = _pipeline(make).fit(X, y)

    saved = save_model(fitted)
    loaded = load_model(saved.data)

    members = zipfile.ZipFile(io.BytesIO(saved.data)).namelist()
    library = type(fitted[-1]).__module__.partition(".")[0]
    assert saved.format == library
    assert sorted(members) == sorted(
        ["manifest.json", "pipeline.skops", {"xgboost": "model.ubj", "lightgbm": "model.txt", "catboost": "model.cbm"}[library]]
    )  # fmt: skip
    assert type(loaded) is Pipeline
    assert type(loaded[-1]) is type(fitted[-1])
    assert np.array_equal(_outputs(loaded), _outputs(fitted))
    assert np.array_equal(loaded.predict(X), fitted.predict(X))


def test_bare_booster_round_trips_without_a_pipeline() -> None:
    """A booster registered on its own is a container with only the booster's bytes."""
    model = xgboost.XGBClassifier(n_estimators=4).fit(X, Y)

    saved = save_model(model)

    assert zipfile.ZipFile(io.BytesIO(saved.data)).namelist() == ["manifest.json", "model.ubj"]
    assert np.array_equal(load_model(saved.data).predict_proba(X), model.predict_proba(X))


def test_lightgbm_string_class_labels_come_back() -> None:
    """LightGBM's restored wrapper answers the fitted string labels."""
    labels = np.where(Y == 1, "benign", "malignant")
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, labels)

    loaded = load_model(dump_model(model)[0])

    assert list(loaded.classes_) == ["benign", "malignant"]
    assert np.array_equal(loaded.predict(X), model.predict(X))


def _container(members: dict[str, bytes], manifest: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        if manifest is not None:
            zf.writestr(
                "manifest.json", manifest if isinstance(manifest, str) else json.dumps(manifest)
            )
        for name, raw in members.items():
            zf.writestr(name, raw)
    return out.getvalue()


def _parts(model: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    zf = zipfile.ZipFile(io.BytesIO(dump_model(model)[0]))
    manifest = json.loads(zf.read("manifest.json"))
    return {n: zf.read(n) for n in zf.namelist() if n != "manifest.json"}, manifest


@pytest.fixture(scope="module")
def xgb_parts() -> tuple[dict[str, bytes], dict[str, Any]]:
    return _parts(_pipeline(lambda: xgboost.XGBClassifier(n_estimators=3)).fit(X, Y))


def _digests(members: dict[str, bytes]) -> dict[str, str]:
    return {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}


def test_non_zip_is_refused() -> None:
    """Bytes that are not a zip are refused before anything reads them."""
    with pytest.raises(UnsafeArtifactError, match=r"not a zip file"):
        load_model(b"\x80\x04 pickle bytes")


def test_container_without_manifest_is_refused() -> None:
    """A zip with no manifest.json is not a container."""
    with pytest.raises(UnsafeArtifactError, match=r"has no manifest.json"):
        load_container(_container({"model.ubj": b"x"}, None))


def test_unknown_format_is_refused_with_the_known_ones(xgb_parts: Any) -> None:
    """A manifest naming a format keel has no loader for is refused, listing the loaders."""
    members, manifest = xgb_parts

    with pytest.raises(UnsafeArtifactError) as exc:
        load_model(_container(members, {**manifest, "format": "pickle"}))

    assert str(exc.value) == (
        "The model container names the format 'pickle'; expected one of "
        "['catboost', 'lightgbm', 'onnx', 'xgboost']; it was refused."
    )


@pytest.mark.parametrize(
    "estimator", ["sklearn.ensemble.RandomForestClassifier", "os.system", "xgboost.Booster", None]
)
def test_manifest_naming_a_type_outside_the_table_is_refused(
    xgb_parts: Any, estimator: Any
) -> None:
    """Only the six booster classes of keel's table may be named; nothing is imported by name."""
    members, manifest = xgb_parts
    manifest = {**manifest, "meta": {**manifest["meta"], "estimator": estimator}}

    with pytest.raises(UnsafeArtifactError, match=r"names the estimator"):
        load_model(_container(members, manifest))


def test_member_not_matching_its_hash_is_refused(xgb_parts: Any) -> None:
    """A booster byte changed after the manifest was written is refused before the library reads it."""
    members, manifest = xgb_parts
    members = {**members, "model.ubj": members["model.ubj"][:-1] + b"\x00"}

    with pytest.raises(UnsafeArtifactError, match=r"member 'model.ubj' does not match the sha256"):
        load_model(_container(members, manifest))


def test_unlisted_member_is_refused(xgb_parts: Any) -> None:
    """A member the manifest does not list (say a pickle) is refused."""
    members, manifest = xgb_parts
    members = {**members, "extra.pkl": b"\x80\x04."}

    with pytest.raises(UnsafeArtifactError, match=r"that its manifest does not list exactly"):
        load_model(_container(members, manifest))


def test_garbage_booster_bytes_are_refused_by_the_library_loader(xgb_parts: Any) -> None:
    """Booster bytes the library cannot read (with a matching hash) are refused, not crashed on."""
    members, manifest = xgb_parts
    members = {**members, "model.ubj": b"{not a model"}
    manifest = {**manifest, "members": _digests(members)}

    with pytest.raises(UnsafeArtifactError, match=r"xgboost booster its library could not read"):
        load_model(_container(members, manifest))


def test_non_json_manifest_is_refused() -> None:
    """A manifest that is not JSON is refused."""
    with pytest.raises(UnsafeArtifactError, match=r"manifest.json that is not JSON"):
        load_model(_container({}, "{oops"))


def test_parameters_that_need_pickle_are_refused_before_the_fit() -> None:
    """A booster with a callable parameter is refused by the storability check, unfitted."""
    model = _pipeline(lambda: xgboost.XGBClassifier(eval_metric=_metric))

    with pytest.raises(
        UnsafeArtifactError,
        match=r"parameters keel cannot store without pickle: \{'eval_metric': 'function'\}",
    ):
        check_storable(model)


def _metric(*_: Any) -> float:
    return 0.0


def test_storability_names_the_format_before_the_fit() -> None:
    """Unfitted pipelines are checked: boosters by their library, scikit-learn by skops."""
    from sklearn.linear_model import LogisticRegression

    assert check_storable(_pipeline(lambda: lightgbm.LGBMClassifier())) == "lightgbm"
    assert check_storable(_pipeline(LogisticRegression)) == "skops"
    with pytest.raises(
        UnsafeArtifactError, match=r"needs types keel does not trust: \['.*_metric'\]"
    ):
        check_storable(FunctionTransformer(func=_metric))


def test_trusted_types_setting_lets_a_reviewed_type_through_and_says_so() -> None:
    """A type listed in trusted_types is stored and loaded, and reported as trusted by the setting."""
    model = FunctionTransformer(func=_metric).fit(X)
    name = f"{__name__}._metric"

    saved = save_model(model, trusted_types=[name])

    assert saved.extra_trusted == [name]
    assert load_model(saved.data, trusted_types=[name]).func is _metric
    with pytest.raises(UnsafeArtifactError, match=r"needs types keel does not trust"):
        load_model(saved.data)


def test_trusted_types_setting_refuses_system_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """KEEL_TRUSTED_TYPES cannot trust os, builtins and the like."""
    monkeypatch.setenv("KEEL_TRUSTED_TYPES", '["os.system"]')

    with pytest.raises(ConfigError, match=r"trusted type 'os.system' is in module 'os'"):
        load_settings()


def test_trusted_types_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """KEEL_TRUSTED_TYPES is a JSON list of dotted class paths."""
    monkeypatch.setenv("KEEL_TRUSTED_TYPES", '["mypkg.models.MyEstimator"]')

    assert load_settings().trusted_types == ("mypkg.models.MyEstimator",)


def test_lightgbm_fitted_on_a_frame_keeps_its_feature_names() -> None:
    """A bare LightGBM model fitted on a DataFrame answers a DataFrame after loading."""
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, Y)

    loaded = load_model(dump_model(model)[0])

    assert list(loaded.feature_names_in_) == list(frame.columns)
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))


def test_lightgbm_manifest_with_foreign_attributes_is_refused() -> None:
    """LightGBM attributes outside the reviewed few are refused, not set on the wrapper."""
    members, manifest = _parts(lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, Y))
    manifest["meta"]["attributes"]["_Booster"] = "anything"

    with pytest.raises(UnsafeArtifactError, match=r"holds LightGBM attributes other than"):
        load_model(_container(members, manifest))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("split_indices", 999, "feature index out of range"),
        ("left_children", 10**6, "child index outside 1..18"),
    ],
)
def test_crafted_xgboost_tree_is_refused_although_xgboost_loads_it(
    xgb_parts: Any, field: str, value: int, message: str
) -> None:
    """XGBoost's loader accepts a tree whose indices point outside it; keel's check refuses it
    before anything predicts with it."""
    members, manifest = xgb_parts
    booster = xgboost.XGBClassifier()
    booster.load_model(bytearray(members["model.ubj"]))
    model = json.loads(bytes(booster.get_booster().save_raw(raw_format="json")))
    model["learner"]["gradient_booster"]["model"]["trees"][0][field][0] = value
    members = {**members, "model.ubj": json.dumps(model).encode()}
    manifest = {**manifest, "members": _digests(members)}

    with pytest.raises(UnsafeArtifactError, match=message):
        load_model(_container(members, manifest))
