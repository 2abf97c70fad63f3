"""The docstrings read well on the API reference pages (mkdocstrings, Google style).

Two things went wrong there before: Sphinx roles (:class:`X`), which Google-style docstrings do not
know, showed as literal text; and ``Returns:`` sections were parsed as ``name: description``, so a
sentence's first word ("The", "A") filled the table's Name column. These tests read the sources
and parse the docstrings the way the site does (griffe, with mkdocs.yml's options), so they need
no built site; tests/browser/test_api_page.py checks the rendered pages.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "transferlens"
SOURCES = sorted(PACKAGE.rglob("*.py"))
#: A Sphinx role (``:class:`X```, ``:py:func:`f```): roles are reST, not Google style or Markdown.
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|ref|const|term):`")


def docstrings(path: Path) -> Iterator[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text is not None:
                yield getattr(node, "lineno", 1), text


def test_there_are_sources_with_docstrings() -> None:
    assert len(SOURCES) >= 10
    assert sum(1 for path in SOURCES for _ in docstrings(path)) >= 100


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_docstring_uses_a_sphinx_role(path: Path) -> None:
    found = [
        f"{path.name}:{line}: {match.group(0)}"
        for line, text in docstrings(path)
        for match in ROLE.finditer(text)
    ]
    assert found == [], "write `name` in backticks instead of a Sphinx role"


def test_the_role_pattern_finds_roles() -> None:
    assert ROLE.search("Build it with :func:`one_cycle`.")
    assert ROLE.search("A :py:class:`OneCycle` plan.")
    assert not ROLE.search("Build it with `one_cycle`: the plan.")


def _mkdocstrings_options() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    plugin = next(p["mkdocstrings"] for p in config["plugins"] if isinstance(p, dict) and
                  "mkdocstrings" in p)  # fmt: skip
    return plugin["handlers"]["python"]["options"]


def _returns_sections() -> Iterator[tuple[str, str, object]]:
    """(object path, first line of its Returns/Yields section, parsed item) for the package."""
    griffe = pytest.importorskip("griffe")
    options = _mkdocstrings_options()
    package = griffe.load(
        "transferlens",
        search_paths=[str(ROOT / "src")],
        docstring_parser=options["docstring_style"],
        docstring_options=options.get("docstring_options", {}),
    )

    def walk(obj: object) -> Iterator[object]:
        yield obj
        for member in obj.members.values():  # type: ignore[attr-defined]
            if not member.is_alias:
                yield from walk(member)

    for obj in walk(package):
        docstring = obj.docstring  # type: ignore[attr-defined]
        if docstring is None:
            continue
        lines = docstring.value.splitlines()
        for section in docstring.parsed:
            if section.kind.value not in ("returns", "yields"):
                continue
            title = "Returns:" if section.kind.value == "returns" else "Yields:"
            start = next(i for i, line in enumerate(lines) if line.strip() == title)
            for item in section.value:
                yield obj.path, lines[start + 1].strip(), item  # type: ignore[attr-defined]


def test_returns_sections_render_as_one_description() -> None:
    sections = list(_returns_sections())
    assert len(sections) >= 30
    wrong = [
        f"{path}: {first!r} -> name {item.name!r}, type {str(item.annotation)!r}"  # type: ignore[attr-defined]
        for path, first, item in sections
        if item.name  # type: ignore[attr-defined]
        or not item.description.startswith(first)  # type: ignore[attr-defined]
    ]
    assert wrong == [], (
        "the first line of a Returns section must not read as `name: description`: "
        "rephrase it without a colon"
    )
