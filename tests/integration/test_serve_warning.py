"""`keel serve` on an address that is not loopback, without tokens, warns at start: on its
console and in the server's log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from serving_fixtures import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# TEST-NET-1 (RFC 5737): never assigned to this machine, so binding fails at once and nothing
# listens beyond loopback; the warning comes before the bind.
UNASSIGNED = "192.0.2.1"


def serve_until_bind_fails(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("KEEL_TOKENS", "KEEL_OPEN_PREDICT")}
    return subprocess.run(
        [sys.executable, "-m", "keel", "serve", "--host", UNASSIGNED, "--port", str(free_port())],
        env={**base, "KEEL_HOME": str(home), "COLUMNS": "400", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_no_tokens_on_a_public_address_is_printed_and_logged(tmp_path: Path) -> None:
    """The console line starts with 'warning:'; the worker logs the same text (keel.serve)."""
    done = serve_until_bind_fails(tmp_path / "home")

    said = f"keel listens on {UNASSIGNED}, which is not loopback, with no tokens (KEEL_TOKENS is empty)"
    assert done.returncode != 0  # the address cannot be bound here
    assert f"warning: {said}" in done.stderr
    assert done.stderr.count(said) == 2, done.stderr  # printed, and logged by the worker


def test_tokens_silence_the_warning(tmp_path: Path) -> None:
    """With tokens configured (predict closed by default) nothing is said."""
    done = serve_until_bind_fails(tmp_path / "home", KEEL_TOKENS='{"t": ["admin"]}')

    assert done.returncode != 0
    assert "which is not loopback" not in done.stderr
