"""The user documentation stays a manual: README.md short, no notes about how it was made, every link alive.

README.md, CHANGELOG.md and docs/*.md are for users. They must not speak of run letters, work sessions, issue
numbers, the load of the machine that measured something, or paths of that machine; and every relative link
(pages, anchors, images) must point at something in the repository, so a reader finds each command's page in one
click.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]

#: What a user page must not say: (name, pattern). Patterns match case-sensitively unless they carry (?i).
FORBIDDEN = [
    ("run letter", re.compile(r"\b[Rr]uns? [A-Z]\d?\b")),
    # a work session (copick's --session of a result is a user concept and allowed)
    ("session", re.compile(r"(?i)\b(this|that|earlier|last|previous|next|work|each)\s+sessions?\b|\bsessions? ago\b")),
    ("issue number", re.compile(r"(?i)#\d|\bissues? \d")),
    ("load average", re.compile(r"(?i)load average")),
    ("absolute path of a machine", re.compile(r"/(work|tmp|root|home)/")),
]

#: Markdown links and images: [text](target) and ![alt](target); the target ends at whitespace or ')'.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped but '-' and '_', spaces to '-'."""
    text = re.sub(r"`|\*\*?|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """Anchors of a Markdown page's headings (outside code blocks), with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        match = re.match(r"#{1,6} (.+)", line)
        if in_code or not match:
            continue
        slug = _slug(match.group(1))
        n = seen.get(slug, 0)
        anchors.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return anchors


def _links(page: Path) -> list[str]:
    """Relative link targets of a page (web and mail links left out), outside fenced code blocks."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_pages_found() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "explain.md", "results.md", "slurm.md", "training.md", "gpu.md", "benchmarks.md",
            "architecture.md", "table1.md", "localisation.md"} <= names


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; move detail to a page under docs/"


def test_readme_keeps_the_setup_commands() -> None:
    """The two set-up commands, exactly: a new user copies them, and CI runs the second one's steps."""
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && .venv/bin/tomocam demo" in readme
    assert ("python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[test]'"
            " && .venv/bin/python -m pytest") in readme


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_notes_about_how_docs_were_made(page: Path) -> None:
    found = [
        f"{page.relative_to(ROOT)}:{n}: {name}: {line.strip()[:100]}"
        for n, line in enumerate(page.read_text().splitlines(), 1)
        for name, pattern in FORBIDDEN
        if pattern.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_readme_links_every_command_page() -> None:
    """Each command of `tomocam --help` has a row in README's table that links to its page."""
    readme = (ROOT / "README.md").read_text()
    commands = ["explain", "demo", "render", "export", "picks", "info", "simulate", "train", "evaluate table1",
                "evaluate localisation", "slurm"]
    rows = [line for line in readme.splitlines() if line.startswith("| `tomocam ")]
    for command in commands:
        row = next((r for r in rows if r.startswith(f"| `tomocam {command}")), None)
        assert row is not None, f"no row for tomocam {command}"
        assert LINK.search(row), f"the row of tomocam {command} links to no page"


def test_slug_matches_github() -> None:
    assert _slug("Explaining a dataset") == "explaining-a-dataset"
    assert _slug("Worker jobs from a login node: `--cluster slurm`") == "worker-jobs-from-a-login-node---cluster-slurm"
    assert _slug("2-core CPU") == "2-core-cpu"
