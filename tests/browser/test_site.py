"""The built site in a real browser (Debian's chromium, driven by Playwright), and its links.

Run with `make test-browser` (it builds site/ first). Every page of the nav is loaded in light and
dark colour schemes; screenshots go to build/screenshots/. Shared helpers are in browsing.py, the
fixtures in conftest.py.
"""

from __future__ import annotations

import functools
import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
import pytest
from browsing import NOTEBOOKS, PAGES, ROOT, SCREENSHOTS, SITE, _open, _url_path


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize(("title", "source"), PAGES, ids=[source for _, source in PAGES])
def test_page_loads_cleanly_and_is_screenshotted(
    browser: object, site_url: str, title: str, source: str, scheme: str
) -> None:
    with _open(browser, site_url + _url_path(source), scheme) as (_context, page, problems):
        assert problems == []
        assert page.locator("h1").first.is_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = source.rsplit(".", 1)[0]
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{scheme}.png"), full_page=True)
        theme = page.evaluate("document.body.getAttribute('data-md-color-scheme')")
        assert theme == ("slate" if scheme == "dark" else "default")


@pytest.mark.parametrize(("title", "source"), NOTEBOOKS, ids=[s for _, s in NOTEBOOKS])
def test_notebook_page_shows_the_tested_outputs(
    browser: object, site_url: str, title: str, source: str
) -> None:
    executed = nbformat.read(str(ROOT / "build" / "executed" / source), as_version=4)
    code_cells = [cell for cell in executed.cells if cell.cell_type == "code"]
    with_output = [bool(cell.outputs) for cell in code_cells]
    with _open(browser, site_url + _url_path(source)) as (_context, page, _):
        # nbconvert's template nests two divs per cell; the inner one carries the cell id.
        rendered = page.locator(".jp-CodeCell[id^='cell-id=']")
        assert rendered.count() == len(code_cells)
        shown = [
            rendered.nth(i).locator(".jp-OutputArea-output").count() > 0
            for i in range(rendered.count())
        ]
        assert shown == with_output, "every cell that had output in the test run shows it"
        body = page.locator("article").inner_text()
        for forbidden in ("Traceback (most recent call last)", "Warning:", "DeprecationWarning"):
            assert forbidden not in body
        assert page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count() == 0


@pytest.mark.parametrize(("title", "source"), NOTEBOOKS, ids=[s for _, s in NOTEBOOKS])
def test_notebook_download_and_colab_links(
    browser: object, site_url: str, title: str, source: str
) -> None:
    with _open(browser, site_url + _url_path(source)) as (context, page, _):
        download = page.get_by_role("link", name="Download notebook")
        href = urljoin(page.url, download.get_attribute("href"))
        response = context.request.get(href)
        assert response.ok
        notebook = nbformat.reads(response.text(), as_version=4)
        assert any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")
        colab = page.get_by_role("link", name="Open in Colab").get_attribute("href")
        assert colab.startswith("https://colab.research.google.com/github/")
        assert colab.endswith(f"/blob/main/docs/{source}")


def test_nav_lists_every_page(browser: object, site_url: str) -> None:
    with _open(browser, site_url) as (_context, page, _):
        nav = page.locator("nav.md-nav--primary").inner_text()
        for title, _ in PAGES:
            assert title in nav, f"{title!r} missing from the navigation"


def test_stand_in_notice_matches_the_assets_that_ran(browser: object, site_url: str) -> None:
    records = json.loads((ROOT / "build" / "execution.json").read_text())
    standin = {record["assets"] for record in records} == {"standin"}
    for _, source in PAGES:
        with _open(browser, site_url + _url_path(source)) as (_context, page, _):
            notice = page.locator(".tl-standin-notice")
            assert (notice.count() == 1 and notice.is_visible()) == standin, source


def test_search_finds_adaptive_concat_pool(browser: object, site_url: str) -> None:
    with _open(browser, site_url) as (_context, page, problems):
        search = page.locator("input.md-search__input")
        search.click()
        search.press_sequentially("AdaptiveConcatPool2d", delay=10)  # typed, as a reader does
        results = page.locator(".md-search-result__item")
        results.first.wait_for(timeout=15000)
        assert results.count() >= 1
        assert "AdaptiveConcatPool2d" in page.locator(".md-search-result").inner_text()
        assert problems == []


# --- links (no browser needed, but part of the same check of the built site) --------------------


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        for attribute in ("href", "src"):
            if tag in ("a", "link", "script", "img", "source") and values.get(attribute):
                self.links.append(values[attribute])


@functools.cache
def _parse(path: Path) -> _LinkParser:
    parser = _LinkParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def _internal_targets(page: Path, link: str) -> tuple[Path, str] | None:
    parsed = urlparse(link)
    if parsed.scheme or link.startswith(("//", "mailto:", "data:", "javascript:")):
        return None
    base = "/" + page.relative_to(SITE).as_posix()
    path = unquote(urlparse(urljoin(base, parsed.path or page.name)).path)
    target = SITE / path.lstrip("/")
    if target.is_dir() or path.endswith("/"):
        target = target / "index.html"
    return target, parsed.fragment


def test_internal_links_and_anchors_resolve() -> None:
    # 404.html is served at any path, so its links are absolute under site_url: not checked.
    pages = sorted(p for p in SITE.rglob("*.html") if p.name != "404.html")
    assert len(pages) >= len(PAGES)
    broken = []
    checked = 0
    for page in pages:
        for link in _parse(page).links:
            target = _internal_targets(page, link)
            if target is None:
                continue
            path, fragment = target
            checked += 1
            if not path.is_file():
                broken.append(f"{page.relative_to(SITE)}: {link} (no {path.relative_to(SITE)})")
            elif fragment and path.suffix == ".html" and unquote(fragment) not in _parse(path).ids:
                broken.append(f"{page.relative_to(SITE)}: {link} (no #{fragment})")
    assert checked > 100
    assert broken == []
