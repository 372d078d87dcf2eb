"""The served API's authorization defaults and its admin calls, on a real `keel serve`.

With tokens configured and open_predict unset, every predict path (keel's JSON, the OIP v2,
MLflow's /invocations, explain, model listing and metadata) needs a `predict` token; set
open_predict and they answer without one. An alias move over HTTP goes through the same
promotion as `keel models promote`: a failing gate is a 422 naming it and production stays;
`force` needs a reason and is audited; a version the server cannot load is a 422 and nothing
moves. Admin bodies that are wrong get a 400 naming the field, the value and what was expected.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from promotion_fixtures import FAILING, PASSING, fit_small, ingest_small, register
from serving_fixtures import Server, start_server, stop_server

from keel.cli import main
from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN, PREDICTOR, FEEDER = "adm-token", "pred-token", "feed-token"
TOKENS = f'{{"{ADMIN}": ["admin"], "{PREDICTOR}": ["predict"], "{FEEDER}": ["feedback"]}}'
ROW = {
    "customer_age": 32, "customer_sex": "F", "region": "north", "merchant_category": "grocery",
    "amount": 28.07, "device": "web", "distance_km": 8.6, "recent_tx_24h": 2,
}  # fmt: skip
OIP_TYPES = {int: "INT64", float: "FP64", str: "BYTES"}
OIP_BODY = {
    "inputs": [
        {"name": k, "shape": [1], "datatype": OIP_TYPES[type(v)], "data": [v]}
        for k, v in ROW.items()
    ]
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model 'm': v1 production; v2 fails its re-checked gate; v3 passes; v4's file is changed."""
    home = tmp_path_factory.mktemp("admin")
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    trained = fit_small(ds, ingest_small(ds))
    for gates in (PASSING, FAILING, PASSING, PASSING):
        register(ms, ds, "m", trained, gates=gates)
    ms.set_alias("m", "production", 1, reason="first")
    path = Path(ms.get("m@4").artifact_uri)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    db.dispose()
    return home


def serve(home: Path, copy_to: Path, **env: str | None) -> Server:
    shutil.copytree(home, copy_to)
    return start_server(
        copy_to, model="m", env={"KEEL_TOKENS": TOKENS, "KEEL_OPEN_PREDICT": None, **env}
    )


@pytest.fixture(scope="module")
def closed(home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Tokens set, open_predict left unset: the default once tokens exist."""
    server = serve(home, tmp_path_factory.mktemp("closed") / "home")
    yield server
    stop_server(server)


def models_of(server: Server) -> tuple[ModelStore, Database]:
    db = Database(f"sqlite:///{server.home / 'keel.db'}")
    return ModelStore(db, ArtifactStore(str(server.home / "artifacts"))), db


def calls(client: httpx.Client) -> dict[str, httpx.Response]:
    """One call on every path that answers predictions or tells about the model."""
    return {
        "predict": client.post("/v1/models/m/predict", json={"rows": [ROW]}),
        "predict@alias": client.post("/v1/models/m@production/predict", json={"rows": [ROW]}),
        "explain": client.post("/v1/models/m/explain", json={"rows": [ROW]}),
        "v2 infer": client.post("/v2/models/m/infer", json=OIP_BODY),
        "v2 version infer": client.post("/v2/models/m/versions/1/infer", json=OIP_BODY),
        "v2 metadata": client.get("/v2/models/m"),
        "v2 ready": client.get("/v2/models/m/ready"),
        "invocations": client.post("/invocations", json={"dataframe_records": [ROW]}),
        "invocations csv": client.post(
            "/invocations",
            content=",".join(ROW) + "\n" + ",".join(str(v) for v in ROW.values()) + "\n",
            headers={"Content-Type": "text/csv"},
        ),
        "list": client.get("/v1/models"),
    }


def test_every_predict_path_needs_a_predict_token_once_tokens_exist(closed: Server) -> None:
    """No token: 401 asking for the predict scope; a token without it: 403; with it: 200."""
    with (
        closed.client() as anon,
        closed.client(FEEDER) as feeder,
        closed.client(ADMIN) as admin,
        closed.client(PREDICTOR) as predictor,
    ):
        refused, wrong, wrong_admin, allowed = (
            calls(anon), calls(feeder), calls(admin), calls(predictor)
        )  # fmt: skip
        bad_token = httpx.post(
            f"{closed.url}/v1/models/m/predict",
            json={"rows": [ROW]},
            headers={"Authorization": "Bearer not-a-token"},
        )

    for path, r in refused.items():
        assert r.status_code == 401, (path, r.text)
        assert "needs a token with the 'predict' scope" in r.json()["error"], path
        assert r.headers["www-authenticate"] == "Bearer"
    for path, r in [*wrong.items(), *wrong_admin.items()]:
        assert r.status_code == 403, (path, r.text)
        assert "this call needs 'predict'" in r.json()["error"], path
    for path, r in allowed.items():
        assert r.status_code == 200, (path, r.text)
    assert allowed["predict"].json()["version"] == 1
    assert bad_token.status_code == 401
    assert bad_token.json()["error"] == "The token is not one this server knows; check KEEL_TOKENS."


def test_open_predict_opens_every_predict_path_and_nothing_else(home: Path, tmp_path: Path) -> None:
    """open_predict = true: the same paths answer without a token; admin and feedback do not."""
    server = serve(home, tmp_path / "home", KEEL_OPEN_PREDICT="true")
    try:
        with server.client() as anon:
            answered = calls(anon)
            move = anon.post("/v1/models/m/aliases/production", json={"version": 3})
            feedback = anon.post(
                "/v1/models/m/feedback", json={"labels": [{"prediction_id": "x", "label": 0}]}
            )
    finally:
        stop_server(server)

    assert {p: r.status_code for p, r in answered.items()} == dict.fromkeys(answered, 200)
    assert (move.status_code, feedback.status_code) == (401, 401)


BAD_BODIES: list[tuple[str, str, Any, int, str]] = [
    # (method, path, body, status, what the error must say)
    ("POST", "aliases/production", {"version": 2, "reason": {"sql": 1}}, 400, "Field 'reason' is '{\"sql\":1}' (object); expected text"),
    ("POST", "aliases/canary", {"version": 3, "weight": "0.5"}, 400, "Field 'weight' is '0.5' (string); expected a number in (0, 1]"),
    ("POST", "aliases/production", {"version": True}, 400, "Field 'version' is True (boolean); expected a version number"),
    ("POST", "aliases/production", {"version": 0}, 400, "Field 'version' is 0; expected a version number"),
    ("POST", "aliases/production", {"version": -3}, 400, "Field 'version' is -3; expected a version number"),
    ("POST", "aliases/production", {"version": 2**40}, 400, f"Field 'version' is {2**40}; expected a version number"),
    ("POST", "aliases/production", {"version": 1.5}, 400, "Field 'version' is 1.5 (number); expected a version number"),
    ("POST", "aliases/production", {"version": "2"}, 400, "Field 'version' is '2' (string); expected a version number"),
    ("POST", "aliases/production", {"reason": "no version"}, 400, "Field 'version' is None (null); expected a version number"),
    ("POST", "aliases/production", {"version": 3, "colour": "red"}, 400, "has the unknown field(s) ['colour']; expected only ['version', 'reason', 'weight', 'force']"),
    ("POST", "aliases/production", [1, 2], 400, "The body of an alias move is a JSON array; expected an object"),
    ("POST", "aliases/production", {"version": 2, "force": "yes"}, 400, "Field 'force' is 'yes' (string); expected true or false"),
    ("POST", "aliases/production", {"version": 2, "force": True}, 400, "Field 'reason' is None (null); expected text saying why: a forced move"),
    ("POST", "aliases/production", {"version": 2, "force": True, "reason": "  "}, 400, "Field 'reason' is '  ' (string); expected text saying why"),
    ("POST", "aliases/production", {"version": 3, "weight": 0.5}, 400, "Field 'weight' is 0.5; a weight applies to the canary alias only"),
    ("POST", "aliases/canary", {"version": 3, "weight": 0}, 400, "Field 'weight' is 0; the canary alias needs a weight between 0 and 1"),
    ("POST", "aliases/canary", {"version": 3, "weight": 1.5}, 400, "Field 'weight' is 1.5; the canary alias needs a weight between 0 and 1"),
    ("POST", "aliases/canary", {"version": 3}, 400, "Field 'weight' is None; the canary alias needs a weight"),
    ("POST", "aliases/prod", {"version": 3}, 400, "Alias 'prod' is not one keel knows"),
    ("POST", "aliases/production", {"version": 99, "reason": "x"}, 404, "Model 'm' has no version 99"),
    ("POST", "rollback", {"reason": {"x": 1}}, 400, "Field 'reason' is '{\"x\":1}' (object); expected text"),
    ("POST", "rollback", {"why": "x"}, 400, "The body of a rollback has the unknown field(s) ['why']; expected only ['reason']"),
    ("POST", "rollback", "[", 400, "The body is not valid JSON"),
    ("DELETE", "aliases/production", None, 409, "The production alias of 'm' cannot be removed over HTTP"),
    ("DELETE", "aliases/canary?reason=x&force=1", None, 400, "The query has the unknown parameter(s) ['force']"),
    ("DELETE", "aliases/canary", None, 404, "Model 'm' has no alias 'canary' to remove; aliases now: production -> 1."),
]  # fmt: skip


def test_bad_admin_bodies_are_4xx_naming_field_value_and_expectation(closed: Server) -> None:
    """Every wrong admin body is a 4xx that names the field, the value and what was expected,
    never a 500 nor SQL; nothing moves and nothing is audited."""
    ms, db = models_of(closed)
    before = (ms.aliases("m"), len(ms.audit("m")))
    answers = []
    with closed.client(ADMIN) as admin:
        for method, path, body, _status, _text in BAD_BODIES:
            kwargs: dict[str, Any] = {}
            if isinstance(body, str):
                kwargs["content"] = body
            elif body is not None:
                kwargs["json"] = body
            answers.append(admin.request(method, f"/v1/models/m/{path}", **kwargs))
    after = (ms.aliases("m"), len(ms.audit("m")))
    db.dispose()

    for (method, path, body, status, text), r in zip(BAD_BODIES, answers, strict=True):
        assert r.status_code == status, (method, path, body, r.text)
        assert text in r.json()["error"], (body, r.json()["error"])
        assert "INSERT" not in r.text
        assert "Traceback" not in r.text
    assert after == before


def test_an_http_move_runs_the_gates_the_cli_runs(
    closed: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Production to a version whose gate fails: 422 naming gate, value and threshold, the
    same refusal as `keel models promote`; production stays and keeps answering."""
    with closed.client(ADMIN) as admin, closed.client(PREDICTOR) as predictor:
        refused = admin.post(
            "/v1/models/m/aliases/production", json={"version": 2, "reason": "try"}
        )
        served = predictor.post("/v1/models/m/predict", json={"rows": [ROW]}).json()["version"]
    monkeypatch.setenv("KEEL_HOME", str(closed.home))
    monkeypatch.setenv("COLUMNS", "400")
    try:
        main(["models", "promote", "m", "2", "--to", "production"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    cli_err = capsys.readouterr().err
    ms, db = models_of(closed)
    production, moves = ms.get("m@production").version, len(ms.history("m"))
    db.dispose()

    assert refused.status_code == 422
    body = refused.json()
    assert body["kind"] == "PromotionRefusedError"
    assert body["error"].startswith(
        "Model 'm' version 2 failed gate 'holdout.accuracy >= 2' against production version 1: got 0."
    )
    assert "threshold >= 2. Production was not moved" in body["error"]
    assert (body["details"]["gate"], body["details"]["threshold"]) == ("holdout.accuracy >= 2", 2.0)
    assert 0.5 < body["details"]["value"] <= 1
    assert code == 1
    assert "failed gate 'holdout.accuracy >= 2' against production version 1" in cli_err
    assert (production, served, moves) == (1, 1, 1)


def test_forced_moves_are_audited_and_rollback_goes_through_the_same_path(
    closed: Server,
) -> None:
    """A forced move with a reason answers 200 and is served at once; the audit says forced,
    who and why; rollback goes back and is audited as alias.rollback."""
    with closed.client(ADMIN) as admin, closed.client(PREDICTOR) as predictor:
        forced = admin.post(
            "/v1/models/m/aliases/production",
            json={"version": 2, "force": True, "reason": "incident 42"},
        )
        served_forced = predictor.post("/v1/models/m/predict", json={"rows": [ROW]}).json()
        back = admin.post("/v1/models/m/rollback", json={"reason": "incident over"})
        served_back = predictor.post("/v1/models/m/predict", json={"rows": [ROW]}).json()
        gated = admin.post("/v1/models/m/aliases/production", json={"version": 3})
        canary = admin.post("/v1/models/m/aliases/canary", json={"version": 1, "weight": 0.5})
        removed = admin.delete("/v1/models/m/aliases/canary", params={"reason": "done"})
        back_again = admin.post("/v1/models/m/rollback")
    ms, db = models_of(closed)
    history = ms.history("m")[-6:]
    db.dispose()

    assert forced.status_code == 200, forced.text
    assert forced.json() == {
        "model": "m", "alias": "production", "version": 2, "weight": None, "forced": True, "gates": [],
    }  # fmt: skip
    assert served_forced["version"] == 2  # the answer came after the server swapped
    assert (back.status_code, back.json()["version"], served_back["version"]) == (200, 1, 1)
    assert gated.status_code == 200, gated.text
    assert [g["name"] for g in gated.json()["gates"]] == ["holdout.accuracy >= 0"]
    assert (canary.status_code, removed.status_code, back_again.status_code) == (200, 200, 200)
    assert [
        (e.action, e.alias, e.version, e.actor, e.reason, e.details.get("forced"))
        for e in history
    ] == [
        ("alias.set", "production", 2, "api", "incident 42", True),
        ("alias.rollback", "production", 1, "api", "incident over", None),
        ("alias.set", "production", 3, "api", None, False),
        ("alias.set", "canary", 1, "api", None, False),
        ("alias.delete", "canary", None, "api", "done", None),
        ("alias.rollback", "production", 1, "api", None, None),
    ]  # fmt: skip


def test_a_version_the_server_cannot_load_is_refused_before_the_alias_moves(
    closed: Server,
) -> None:
    """A version whose file was changed: 422 with the load failure, for production (forced or
    not) and canary alike; the alias stays, the audit is untouched, production answers."""
    ms, db = models_of(closed)
    before = (ms.aliases("m"), len(ms.audit("m")))
    with closed.client(ADMIN) as admin, closed.client(PREDICTOR) as predictor:
        answers = [
            admin.post("/v1/models/m/aliases/production", json={"version": 4, "reason": "x"}),
            admin.post(
                "/v1/models/m/aliases/production",
                json={"version": 4, "force": True, "reason": "x"},
            ),
            admin.post("/v1/models/m/aliases/canary", json={"version": 4, "weight": 0.2}),
            admin.post("/v1/models/m/aliases/shadow", json={"version": 4}),
        ]
        served = predictor.post("/v1/models/m/predict", json={"rows": [ROW]}).json()["version"]
    after = (ms.aliases("m"), len(ms.audit("m")))
    db.dispose()

    for r in answers:
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error.startswith("This server cannot serve m@4: ")
        assert "does not match" in error or "changed" in error, error
        assert "Nothing was moved" in error
        assert str(closed.home) not in error  # the store's paths are not shown
    assert "Nothing was moved: production stays at m@1." in answers[0].json()["error"]
    assert "Nothing was moved: canary was not set." in answers[2].json()["error"]
    assert after == before
    assert served == 1
