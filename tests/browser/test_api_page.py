"""The API reference pages as a reader sees them: Returns tables and cross-references.

mkdocstrings renders a ``Returns:`` section as a table. Parsed with the wrong options, a docstring's
first word ("The", "A") lands in a Name or Type column, and a Sphinx role (:class:`X`), which
Google-style docstrings do not know, shows as literal text. Both are caught here on the built
pages, after the browser has rendered them.
"""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from browsing import _open

#: The reference pages built by mkdocstrings.
API_PAGES = ["api/", "tutorial-api/"]
#: Words that start a sentence, never a name or a type.
SENTENCE_WORDS = {"the", "a", "an", "one", "each", "every", "where", "what", "which", "true"}
ROLES = (":class:", ":func:", ":meth:", ":mod:", ":attr:", ":data:", ":exc:", ":obj:")


class _ReturnsTables(HTMLParser):
    """Collects, for each Returns/Yields table: its header cells and its rows' cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[tuple[list[str], list[list[str]]]] = []
        self._title = ""
        self._in_title = False
        self._wanted = False
        self._depth = 0  # nesting of <table> inside a wanted table
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if tag == "span" and "doc-section-title" in classes:
            self._in_title, self._title = True, ""
        elif tag == "table":
            if self._depth:
                self._depth += 1
            elif self._wanted:
                self._depth = 1
                self.tables.append(([], []))
            self._wanted = False
        elif self._depth == 1 and tag == "tr":
            self._row = []
        elif self._depth == 1 and tag in ("th", "td"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._in_title:
            self._in_title = False
            self._wanted = self._title.strip().rstrip(":") in ("Returns", "Yields")
        elif tag == "table" and self._depth:
            self._depth -= 1
        elif self._depth == 1 and tag in ("th", "td") and self._cell is not None:
            text = " ".join("".join(self._cell).split())
            if tag == "th":
                self.tables[-1][0].append(text)
            else:
                self._row.append(text)  # type: ignore[union-attr]
            self._cell = None
        elif self._depth == 1 and tag == "tr" and self._row is not None:
            if self._row:
                self.tables[-1][1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title += data
        if self._cell is not None:
            self._cell.append(data)


def returns_table_problems(html: str) -> list[str]:
    """What is wrong with the Returns/Yields tables of a rendered page (empty when nothing)."""
    parser = _ReturnsTables()
    parser.feed(html)
    problems = []
    for header, rows in parser.tables:
        for row in rows:
            for column, cell in zip(header, row, strict=False):
                words = cell.split()
                if column in ("Name", "Type") and words and words[0].lower() in SENTENCE_WORDS:
                    problems.append(f"{column} column reads like a sentence: {cell!r} in {row}")
    return problems


def role_problems(text: str) -> list[str]:
    """Sphinx roles shown as literal text on a rendered page."""
    return [line.strip() for line in text.splitlines() if any(role in line for role in ROLES)]


def count_returns_tables(html: str) -> int:
    parser = _ReturnsTables()
    parser.feed(html)
    return len(parser.tables)


@pytest.mark.parametrize("path", API_PAGES)
def test_returns_tables_hold_no_sentence_words(browser: object, site_url: str, path: str) -> None:
    with _open(browser, site_url + path) as (_context, page, problems):
        assert problems == []
        html = page.content()
    assert count_returns_tables(html) >= 5, "no Returns tables found: did the markup change?"
    assert returns_table_problems(html) == []


@pytest.mark.parametrize("path", API_PAGES)
def test_no_sphinx_role_shows_as_text(browser: object, site_url: str, path: str) -> None:
    with _open(browser, site_url + path) as (_context, page, problems):
        assert problems == []
        text = page.locator("article").inner_text()
    assert "Returns" in text
    assert role_problems(text) == []


def test_the_checks_catch_what_they_are_for() -> None:
    # The markup mkdocstrings-python renders for a Returns item parsed as "name: description".
    bad = (
        '<p><span class="doc-section-title">Returns:</span></p><table><thead><tr><th>Name</th>'
        '<th>Type</th><th>Description</th></tr></thead><tbody><tr class="doc-section-item">'
        "<td><code>The</code></td><td><code>int | None</code></td><td>cut, or None.</td></tr>"
        "</tbody></table>"
    )
    good = bad.replace("<th>Name</th>", "").replace("<td><code>The</code></td>", "")
    assert returns_table_problems(bad) != [] and returns_table_problems(good) == []
    assert count_returns_tables(good) == 1
    assert role_problems("Build it with :func:`one_cycle`.") != []
    assert role_problems("Build it with one_cycle.") == []
