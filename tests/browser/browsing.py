"""What the browser tests share: the site's pages, where things go, and one way to open a page.

The fixtures that serve the site and start chromium are in this folder's conftest.py.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("TRANSFERLENS_SITE_DIR") or ROOT / "site")
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _nav_pages() -> list[tuple[str, str]]:
    """(title, source file) for every entry of mkdocs.yml's nav, in order."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    nav = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)["nav"]

    def walk(entries: list) -> Iterator[tuple[str, str]]:
        for entry in entries:
            for title, value in entry.items():
                if isinstance(value, list):
                    yield from walk(value)
                else:
                    yield title, value

    return list(walk(nav))


def _url_path(source: str) -> str:
    stem = source.rsplit(".", 1)[0]
    return "" if stem == "index" else f"{stem}/"


PAGES = _nav_pages()
NOTEBOOKS = [(title, source) for title, source in PAGES if source.endswith(".ipynb")]


@contextlib.contextmanager
def _open(
    browser: object, url: str, scheme: str = "light"
) -> Iterator[tuple[object, object, list[str]]]:
    """A fresh browser context on ``url``: (context, page, problems seen so far); closed after."""
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" else None)  # fmt: skip
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    # The site's own files must all load. A request to an outside host would fail on a machine
    # without network, which says nothing about the site; a console error it causes still counts.
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}")
            if req.url.startswith(url.split("/", 3)[0] + "//127.0.0.1") else None)  # fmt: skip
    try:
        response = page.goto(url, wait_until="networkidle")
        assert response is not None and response.ok, f"{url}: HTTP {response and response.status}"
        yield context, page, problems
    finally:
        context.close()
