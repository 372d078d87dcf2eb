"""Every link in the repository's Markdown stays inside the repository."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1"}

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
_URL = re.compile(r"https?://[^\s)\]>`'\"]+")


def markdown_files() -> list[Path]:
    """README.md, docs/ and any other Markdown the repository tracks (not the virtualenv)."""
    return sorted(
        p
        for p in ROOT.rglob("*.md")
        if not any(
            part.startswith(".") or part in ("node_modules",) for part in p.relative_to(ROOT).parts
        )
    )


def link_problems(path: Path, text: str) -> list[str]:
    """What is wrong with the links of one Markdown file (its path is used to resolve relative links)."""
    problems = []
    code = " ".join(m.group(0) for m in _FENCE.finditer(text))
    prose = _FENCE.sub(" ", text)
    code += " " + " ".join(m.group(2) for m in _CODE_SPAN.finditer(prose))
    prose = _CODE_SPAN.sub(" ", prose)
    for url in (u.rstrip(".,;:") for u in _URL.findall(code)):
        if urlparse(url).hostname not in LOCAL_HOSTS:
            problems.append(
                f"{url}: a URL outside the repository (in code; only localhost examples may be)"
            )
    targets = _INLINE_LINK.findall(prose) + _REFERENCE.findall(prose)
    for url in _URL.findall(_INLINE_LINK.sub(" ", _REFERENCE.sub(" ", prose))):
        targets.append(url.rstrip(".,;:"))  # the full stop ends the sentence, not the URL
    for target in targets:
        scheme = urlparse(target).scheme
        if scheme in ("http", "https"):
            problems.append(f"{target}: a link outside the repository")
        elif scheme:
            problems.append(
                f"{target}: a {scheme}: link; only relative links to files of the repository are allowed"
            )
        elif not target.startswith("#"):
            relative = target.split("#", 1)[0].split("?", 1)[0]
            if not (path.parent / relative).exists():
                problems.append(f"{target}: no such file (relative to {path.relative_to(ROOT)})")
    return problems


def test_the_readme_and_docs_are_scanned() -> None:
    """The scan covers README.md and every page under docs/."""
    names = {str(p.relative_to(ROOT)) for p in markdown_files()}

    assert {"README.md", "docs/specs.md", "docs/contracts.md", "docs/architecture.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_inside_the_repository(path: Path) -> None:
    """No http(s) link leaves the repository and every relative link names a file that exists."""
    assert link_problems(path, path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "See [the docs](https://example.org/keel).",
            "https://example.org/keel: a link outside the repository",
        ),
        (
            "Read https://example.org in prose.",
            "https://example.org: a link outside the repository",
        ),
        ("[ref]: http://example.com/x", "http://example.com/x: a link outside the repository"),
        ("See <https://example.org/a>.", "https://example.org/a: a link outside the repository"),
        (
            "Open http://127.0.0.1:8080/ui now.",
            "http://127.0.0.1:8080/ui: a link outside the repository",
        ),
        (
            "```\ncurl https://example.org/x\n```",
            "https://example.org/x: a URL outside the repository (in code; only localhost examples may be)",
        ),
        (
            "Keys: [specs](docs/nope.md#keys).",
            "docs/nope.md#keys: no such file (relative to README.md)",
        ),
        (
            "![shot](docs/screenshots/none.png)",
            "docs/screenshots/none.png: no such file (relative to README.md)",
        ),
        (
            "[mail](mailto:a@b.c)",
            "mailto:a@b.c: a mailto: link; only relative links to files of the repository are allowed",
        ),
    ],
    ids=[
        "inline",
        "bare",
        "reference",
        "autolink",
        "localhost-in-prose",
        "code-block",
        "missing-file",
        "missing-image",
        "mailto",
    ],
)
def test_the_checker_finds_each_kind_of_bad_link(text: str, problem: str) -> None:
    """Outside links (inline, bare, reference, autolink, in code) and links to missing files are each reported."""
    assert problem in link_problems(ROOT / "README.md", text)


def test_the_checker_allows_localhost_examples_in_code_and_existing_files() -> None:
    """Localhost URLs in code, anchors and relative links to existing files pass."""
    text = (
        "Run `keel ui` and open `http://127.0.0.1:8080/ui`.\n\n"
        "```bash\ncurl -s http://localhost:8080/healthz\n```\n\n"
        "Keys: [specs](docs/specs.md#keys), [top](#keel), ![models](docs/screenshots/models.png)\n"
    )

    assert link_problems(ROOT / "README.md", text) == []
