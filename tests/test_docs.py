"""The README and docs/ pages: every relative link and image resolves, and the README stays short."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target); an optional "title" after the target is dropped.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~)")
EXTERNAL = ("http://", "https://", "mailto:")

README_MAX_LINES = 160
TOP_COMMANDS = (
    "python3 -m pip install . && gancli train mnist --k 1",
    "python3 -m pip install '.[test]' && python3 -m pytest -q",
)


def prose_lines(text: str):
    """(line number, line) outside fenced code blocks, where a link is a link."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    broken = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        # Inline code is not a link: `a[i](x)` in an example must not count.
        line = re.sub(r"`[^`]*`", "", line)
        for target in LINK.findall(line):
            if target.startswith(EXTERNAL) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(root)}:{number}: {target}")
    return broken


def first_code_block(text: str) -> list[str]:
    block, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            if inside:
                return block
            inside = True
            continue
        if inside:
            block.append(line.strip())
    return block


def test_the_pages_exist():
    names = {page.name for page in PAGES}
    for name in ("training.md", "evaluation.md", "datasets.md", "scaling.md", "performance.md",
                 "architecture.md", "results.md"):
        assert name in names, f"docs/{name} is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page):
    broken = broken_links(page)
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines, more than {README_MAX_LINES}"


def test_readme_starts_with_the_two_commands():
    block = first_code_block(README.read_text(encoding="utf-8"))
    for command in TOP_COMMANDS:
        assert command in block, f"README.md's first code block lacks: {command}"


def test_a_broken_link_is_reported(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.png").write_bytes(b"")
    page.write_text(
        "[ok](there.png#x) ![img](there.png) [web](https://example.org) [a](#anchor)\n"
        "```\n[in code](nowhere.md)\n```\n"
        "![gone](missing.png) and [gone too](docs/none.md#part)\n",
        encoding="utf-8",
    )
    assert broken_links(page, tmp_path) == ["page.md:5: missing.png", "page.md:5: docs/none.md#part"]
