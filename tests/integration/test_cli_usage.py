"""Usage errors of the `keel` command line: usage and exit 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from keel import __version__

pytestmark = pytest.mark.integration


def keel(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-m", "keel", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_version_prints_the_version_and_exits_0(tmp_path: Path) -> None:
    """`keel --version` prints the version alone, with no command needed."""
    result = keel(tmp_path, "--version")

    assert (result.returncode, result.stdout, result.stderr) == (0, f"keel {__version__}\n", "")


def test_keel_alone_prints_the_help(tmp_path: Path) -> None:
    """`keel` with nothing else prints the help with its commands (exit 2, as click does), no traceback."""
    result = keel(tmp_path)

    assert result.returncode == 2
    assert "Usage: keel [OPTIONS] COMMAND [ARGS]..." in result.stdout
    assert "train" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], "No such command 'bogus'."),
        (["train"], "Missing option '--data' / '-d'."),
        (["train", "--data"], "Option '--data' requires an argument."),
        (["data", "show"], "Missing argument 'ref'."),
        (["models", "list", "--no-such-flag"], "No such option: --no-such-flag"),
    ],
    ids=[
        "mistyped-command",
        "missing-option",
        "option-without-value",
        "missing-argument",
        "unknown-option",
    ],
)
def test_usage_errors_print_usage_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """A usage error prints typer's usage and the reason on stderr and exits 2, with no traceback."""
    result = keel(tmp_path, *args)

    assert result.returncode == 2
    assert message in result.stderr
    if args != ["train", "--data"]:  # click fails before it knows the command: no usage line
        assert "Usage: keel" in result.stderr
    assert "Traceback" not in result.stderr
