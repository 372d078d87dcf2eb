"""`keel.Client`: predict, feedback and explain from Python, frames in and out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import orjson
import pandas as pd
import polars as pl

from keel.store import KeelError


class ClientError(KeelError, RuntimeError):
    """The server answered with an error; the message is the server's."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.details = details


class Client:
    """A client of one keel server.

    Args:
        url: the server, e.g. `http://127.0.0.1:8000`.
        token: a token with the scopes the calls need.
        timeout_s: per request.
    """

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        # orjson: datetimes, NumPy values and NaN-free floats as a server expects them
        response = self._http.post(
            path,
            content=orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY, default=str),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        if response.status_code >= 400:
            data = (
                response.json()
                if response.headers.get("content-type", "").startswith("application/json")
                else {"error": response.text}
            )
            raise ClientError(response.status_code, data.get("error", ""), data.get("details"))
        return response.json()

    def predict(
        self,
        model: str,
        rows: pd.DataFrame | pl.DataFrame | list[dict[str, Any]],
        *,
        key: str | None = None,
        at: dt.datetime | None = None,
        on_error: str = "fail",
    ) -> pl.DataFrame:
        """Predictions as a frame: prediction_id, prediction (of the label's type), and
        p_<class> per class.

        `key` keeps a caller on one side of a canary; `at` replays the rows at that time
        (the server must allow it with `replay_time`). With `on_error="fail"` (the default)
        one row that does not fit the model's contract raises ClientError (HTTP 422); with
        `"skip"` the frame has a row per input row, null for the refused ones, and an `error`
        column saying why ("field 'amount' has value 'x'; expected ...")."""
        if on_error not in ("fail", "skip"):
            msg = f"on_error has the value {on_error!r}; expected 'fail' or 'skip'."
            raise ValueError(msg)
        records = _records(rows)
        headers = {"X-Request-Key": key} if key else {}
        if at is not None:
            headers["X-Keel-Time"] = at.isoformat()
        body: dict[str, Any] = {"rows": records}
        if on_error != "fail":
            body["on_error"] = on_error
        answer = self._post(f"/v1/models/{model}/predict", body, headers)
        out = pl.DataFrame(
            {
                "prediction_id": pl.Series(answer["prediction_ids"], dtype=pl.String),
                "prediction": answer["predictions"],
            },
            strict=False,
        )
        if "probabilities" in answer:
            k = len(answer["classes"])
            probs = [p if p is not None else [None] * k for p in answer["probabilities"]]
            for i, c in enumerate(answer["classes"]):
                out = out.with_columns(pl.Series(f"p_{c}", [p[i] for p in probs], pl.Float64))
        out = out.with_columns(pl.lit(answer["version"]).alias("version"))
        if on_error == "skip":
            why: list[str | None] = [None] * out.height
            for e in answer.get("errors", []):
                why[e["row"]] = (
                    f"field {e['field']!r} has value {e['value']!r}; expected {e['expected']}"
                )
            out = out.with_columns(pl.Series("error", why, pl.String))
        return out

    def feedback(
        self,
        model: str,
        labels: dict[str, Any] | list[tuple[str, Any]],
        *,
        at: dt.datetime | None = None,
    ) -> dict[str, Any]:
        """Send labels by prediction id; returns {'accepted': n, 'unknown_ids': [...],
        'refused': [{'prediction_id', 'label', 'reason'}, ...]}.

        The server cleans each label by the target's contract rules (trimmed, case, missing
        markers, type: `' <=50K'` is `'<=50K'`) and refuses, by name, one that is missing,
        not one of the model's classes, or for a regression not a number."""
        pairs = labels.items() if isinstance(labels, dict) else labels
        result: dict[str, Any] = self._post(
            f"/v1/models/{model}/feedback",
            {"labels": [{"prediction_id": k, "label": v} for k, v in pairs]},
            {"X-Keel-Time": at.isoformat()} if at is not None else None,
        )
        return result

    def flush(self) -> dict[str, Any]:
        """Have the server write its buffered log and profiles now (admin scope)."""
        result: dict[str, Any] = self._post("/v1/admin/flush", {})
        return result

    def explain(
        self, model: str, rows: pd.DataFrame | pl.DataFrame | list[dict[str, Any]]
    ) -> pl.DataFrame:
        """SHAP values per feature, one row per input row."""
        answer = self._post(f"/v1/models/{model}/explain", {"rows": _records(rows)})
        return pl.DataFrame(answer["values"], schema=answer["features"], orient="row")


def _records(rows: Any) -> list[dict[str, Any]]:
    if isinstance(rows, pl.DataFrame):
        return rows.to_dicts()
    if isinstance(rows, pd.DataFrame):
        return pl.from_pandas(rows).to_dicts()
    return list(rows)
