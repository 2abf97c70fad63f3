"""The built site's weight: light notebook pages, mkdocs-jupyter's styles in one shared file.

Run with `make test-browser` (tools/mkdocs_weight.py does the work). A page's weight here is its
HTML without its inline images (base64 ``data:`` URIs in ``src``), which are the page's content.
Only the last test needs the browser.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nbformat
import pytest
from browsing import NOTEBOOKS, ROOT, SITE, _open, _url_path

KIB = 1024
PAGE_LIMIT = 150 * KIB
INLINE_IMAGE = re.compile(rb'(?<=src=")data:[^"]*')
STYLESHEET_LINK = re.compile(r'<link rel="stylesheet" href="([^"]+)">')
# Two rules only mkdocs-jupyter's notebook CSS has: JupyterLab's, and its pygments theme's.
NOTEBOOK_CSS_MARKERS = (".jupyter-wrapper .jp-OutputArea-output pre{", ".highlight-ipynb .hll")


def _page_html(source: str) -> Path:
    return SITE / _url_path(source) / "index.html"


def _notebook_stylesheets() -> list[Path]:
    return sorted((SITE / "assets" / "notebook").glob("*.css"))


@pytest.mark.parametrize(("title", "source"), NOTEBOOKS, ids=[s for _, s in NOTEBOOKS])
def test_notebook_page_weight(title: str, source: str) -> None:
    weight = len(INLINE_IMAGE.sub(b"", _page_html(source).read_bytes()))
    limit = PAGE_LIMIT
    assert weight <= limit, f"{source}: {weight / KIB:.0f} KiB without images, over {limit // KIB}"


def test_notebook_css_is_one_file_that_every_notebook_page_links() -> None:
    stylesheets = _notebook_stylesheets()
    assert len(stylesheets) == 1, f"one notebook stylesheet for the site, not {stylesheets}"
    css = stylesheets[0].read_text(encoding="utf-8")
    assert all(marker in css for marker in NOTEBOOK_CSS_MARKERS)
    for page in sorted(SITE.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        inline = [marker for marker in NOTEBOOK_CSS_MARKERS if marker in text]
        assert inline == [], f"{page.relative_to(SITE)} inlines notebook CSS"
    for _, source in NOTEBOOKS:
        page = _page_html(source)
        head = page.read_text(encoding="utf-8").split("</head>")[0]
        links = STYLESHEET_LINK.findall(head)
        # Last of <head>: after the theme's and extra.css, where the inline styles were.
        assert links[-1].startswith("../assets/notebook/"), f"{source}: {links}"
        assert (page.parent / links[-1]).resolve() == stylesheets[0].resolve(), source


def test_copy_buttons_copy_each_cell_source() -> None:
    """What a code cell's copy button copies is the cell's source, indentation and all."""
    copy_text = re.compile(r'<div class="clipboard-copy-txt" id="cell-\d+">(.*?)</div>', re.S)
    for _, source in NOTEBOOKS:
        executed = nbformat.read(str(ROOT / "build" / "executed" / source), as_version=4)
        sources = [cell.source for cell in executed.cells if cell.cell_type == "code"]
        page = _page_html(source).read_text(encoding="utf-8")
        assert [html.unescape(text) for text in copy_text.findall(page)] == sources, source


def test_no_source_maps_are_shipped() -> None:
    assert sorted(SITE.rglob("*.map")) == []


def test_notebook_pages_load_the_shared_files(browser: object, site_url: str) -> None:
    """In the browser: each notebook page applies the shared stylesheet, runs the shared copy
    button script, and draws the copy icon it shares."""
    checks = """() => {
        const sheet = Array.from(document.styleSheets)
            .find(s => s.href && s.href.includes('/assets/notebook/'));
        const icon = document.querySelector('.clipboard-copy-icon use');
        return {
            rules: sheet ? sheet.cssRules.length : 0,
            copyButton: customElements.get('clipboard-copy') !== undefined,
            iconWidth: icon ? icon.getBoundingClientRect().width : 0,
            outputWordBreak: getComputedStyle(
                document.querySelector('.jp-OutputArea-output pre')).wordBreak,
        };
    }"""
    for _, source in NOTEBOOKS:
        with _open(browser, site_url + _url_path(source)) as (_context, page, problems):
            loaded = page.evaluate(checks)
            assert problems == [], source
        assert loaded["rules"] > 1000, f"{source}: {loaded}"
        assert loaded["copyButton"] and loaded["iconWidth"] > 0, f"{source}: {loaded}"
        # mkdocs-jupyter's CSS says break-all here; extra.css must still win over the shared file.
        assert loaded["outputWordBreak"] == "normal", f"{source}: {loaded}"
