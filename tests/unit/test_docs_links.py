"""The repository explains itself without dangling references: every docs/*.md path and
every relative Markdown link in README.md and docs/ names a file that exists (and a
#anchor names a heading of it), and every docs/*.md path the code mentions exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKDOWN = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
CODE_DIRS = ("ledger", "consumers", "projectors", "schemas", "bench")

DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*?\.md\b")
INLINE_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`]*`")


def prose(text: str) -> str:
    """The text without fenced code blocks (their lines blanked)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        match = HEADING.match(line)
        if match:
            base = slug(match.group(1))
            name, n = base, 0
            while name in found:  # repeated headings get -1, -2, …
                n += 1
                name = f"{base}-{n}"
            found.add(name)
    return found


def links(path: Path) -> list[str]:
    text = INLINE_CODE.sub("", prose(path.read_text(encoding="utf-8")))
    return INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None  # http:, https:, mailto:


def test_there_is_something_to_check() -> None:
    assert ROOT / "README.md" in MARKDOWN
    assert len(MARKDOWN) >= 10


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_paths_in_markdown_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    missing = sorted({m for m in DOCS_PATH.findall(text) if not (ROOT / m).is_file()})
    assert not missing, f"{path.relative_to(ROOT)} names missing files: {missing}"


@pytest.mark.parametrize("path", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    broken = []
    for target in links(path):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{path.relative_to(ROOT)}: {broken}"


def test_docs_paths_in_code_exist() -> None:
    missing = []
    for folder in CODE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for match in DOCS_PATH.findall(text):
                if not (ROOT / match).is_file():
                    missing.append(f"{path.relative_to(ROOT)}: {match}")
    assert not missing, missing


def test_the_slug_follows_github() -> None:
    assert slug("§4.5 Deterministic") == "45-deterministic"
    assert slug("Publishing a file: `ledger produce`") == "publishing-a-file-ledger-produce"
    assert slug("Why it is publish order") == "why-it-is-publish-order"
