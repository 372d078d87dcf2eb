"""Batch jobs' paths stay under the job roots, judged after `..` and symlinks resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.serve.errors import RequestError
from keel.serve.jobs import job_path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    return (tmp_path / "data").resolve()


def test_relative_and_absolute_paths_inside_a_root_are_taken(root: Path) -> None:
    """A relative path starts at the first root; an absolute one inside it is the same file."""
    assert job_path("input", "in.csv", (root,), output=False) == root / "in.csv"
    assert job_path("input", str(root / "in.csv"), (root,), output=False) == root / "in.csv"
    assert (
        job_path("output", "sub/out.parquet", (root,), output=True) == root / "sub" / "out.parquet"
    )


@pytest.mark.parametrize(
    ("value", "output", "says"),
    [
        ("../secret.csv", False, "a path under the job roots"),
        ("sub/../../secret.csv", False, "a path under the job roots"),
        ("link.csv", False, "a path under the job roots"),
        ("s3://bucket/in.csv", False, "must lie under a job root"),
        ("in\x00.csv", False, "a path (text up to 1024 characters)"),
        ("in.csv", True, "does not exist yet"),
        ("out.refused.csv", True, "not ending in .refused.csv"),
        ("out.txt", True, "a file ending in one of"),
        ("nothere.csv", False, "an existing file"),
    ],
)
def test_paths_that_leave_the_root_or_do_not_fit_are_refused(
    root: Path, value: str, output: bool, says: str
) -> None:
    """Each refusal names the field and what was expected."""
    (root / "link.csv").symlink_to(root.parent / "secret.csv")
    with pytest.raises(RequestError, match="expected") as exc:
        job_path("input" if not output else "output", value, (root,), output=output)
    assert says in str(exc.value)
