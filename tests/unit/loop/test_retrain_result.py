"""The retrain's result: a typed, validated object; only its audited figures go to JSON."""

from __future__ import annotations

import pytest

from keel.loop import RetrainResult


def test_a_failed_retrain_says_why() -> None:
    """Not ok needs the error; its JSON carries the error and the row counts."""
    result = RetrainResult(ok=False, error="the retrain process died (exit code -9)")

    assert result.to_json() == {
        "ok": False,
        "rows": {},
        "error": "the retrain process died (exit code -9)",
    }


def test_a_candidate_that_failed_its_gates_has_no_version() -> None:
    """A trained candidate stopped by its gates is ok (it ran) but not registered."""
    result = RetrainResult(ok=True, passed=False, failed_gates=("holdout.roc_auc",))

    assert result.to_json()["failed_gates"] == ["holdout.roc_auc"]
    assert result.version is None


def test_the_trace_is_not_audited() -> None:
    """The child's traceback stays out of the audited figures."""
    result = RetrainResult(ok=False, error="ValueError: x", trace="Traceback ...")

    assert "trace" not in result.to_json()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"ok": True, "error": "x"},
            "RetrainResult ok=True with error='x': expected an error exactly when not ok",
        ),
        (
            {"ok": False},
            "RetrainResult ok=False with error=None: expected an error exactly when not ok",
        ),
        (
            {"ok": True, "passed": True},
            "RetrainResult passed=True without a version: expected the registered version",
        ),
    ],
)
def test_inconsistent_results_are_refused(kwargs: dict[str, object], message: str) -> None:
    """An error exactly when not ok; a version exactly when it passed."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as exc:
        RetrainResult(**kwargs)  # type: ignore[arg-type]

    assert str(exc.value) == message
