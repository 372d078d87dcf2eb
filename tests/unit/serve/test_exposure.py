"""`keel serve` says at start when it is open to more than this machine."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.serve.exposure import exposure_warnings, is_loopback
from keel.store import Settings


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("example.internal", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    """Only 127.0.0.0/8, ::1 and localhost count as loopback; other names may resolve anywhere."""
    assert is_loopback(host) is loopback


def test_no_tokens_on_a_public_address_warns() -> None:
    """Without tokens on 0.0.0.0 the warning says what is open and how to close it."""
    (warning,) = exposure_warnings("0.0.0.0", Settings(tokens={}))

    assert "with no tokens (KEEL_TOKENS is empty)" in warning
    assert "predict, explain and read the dashboard's pages" in warning
    assert "docs/security.md" in warning


def test_tokens_or_loopback_do_not_warn() -> None:
    """Tokens configured (predict closed by default), or loopback: nothing to say."""
    assert exposure_warnings("0.0.0.0", Settings(tokens={"t": ["admin"]})) == []
    assert exposure_warnings("127.0.0.1", Settings(tokens={})) == []


def test_open_predict_with_tokens_is_said_too() -> None:
    """Tokens with open_predict = true on a public address: predict is open, and it says so."""
    (warning,) = exposure_warnings("0.0.0.0", Settings(tokens={"t": ["admin"]}, open_predict=True))

    assert "predict and explain open to callers without a token (open_predict = true)" in warning


def test_serve_help_explains_tokens_scopes_and_open_predict() -> None:
    """`keel serve --help` names every scope, the token header and open_predict."""
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "120"})

    assert result.exit_code == 0
    text = result.output
    for needed in (
        "KEEL_TOKENS",
        "Authorization: Bearer TOKEN",
        "predict   predict, explain",
        "feedback  POST /v1/models/NAME/feedback",
        "view      the dashboard's pages",
        "admin     alias moves",
        "open_predict (KEEL_OPEN_PREDICT)",
        "docs/security.md",
    ):
        assert needed in text, needed
