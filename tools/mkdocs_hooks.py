"""MkDocs hooks: render the executed pages that were tested, never the bare notebooks.

- Each ``docs/*.ipynb`` page is swapped for its executed copy in ``build/executed/`` (written by
  the test run, see tools/pagerun.py). A page with no copy, or a copy made from other inputs
  (``pagecache.stale_pages``, the check ``make site`` runs before building), stops the build:
  run ``make site``, which executes exactly the stale pages first.
- ``extra.assets_mode`` is set from the executed pages, so the theme shows the stand-in notice.
- ``execution-report.md`` is generated from ``build/execution.json``.
"""

from __future__ import annotations

import html as html_lib
import json
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pagecache

REPORT_PAGE = "execution-report.md"


@event_priority(-100)  # after mkdocs-jupyter has wrapped the notebook files (see below)
def on_files(files: Files, config: Any) -> Files:
    notebooks = [file for file in files if file.src_uri.endswith(".ipynb")]
    stamps = {}
    for file in notebooks:
        page = Path(file.abs_src_path)
        stamps[page] = pagecache.read_stamp(page)
        if stamps[page] is None:
            raise PluginError(
                f"{pagecache.page_name(page)} has no executed copy in build/executed/. "
                "Run `make site` (or `make test`) to execute it first."
            )
    modes = {stamp["assets"] for stamp in stamps.values()}
    if len(modes) > 1:
        raise PluginError(
            f"pages were executed with different asset modes ({sorted(modes)}). Run `make site` "
            "with one TRANSFERLENS_ASSETS value."
        )
    mode = modes.pop() if modes else "unknown"
    stale = pagecache.stale_pages(mode, among=stamps)  # make site's own staleness check
    if stale:
        names = ", ".join(pagecache.page_name(page) for page in stale)
        raise PluginError(
            f"the executed copy of {names} is out of date (the page, transferlens or an "
            "installed package changed). Run `make site`."
        )
    for file in notebooks:
        # Set on the object mkdocs-jupyter renders: its NotebookFile wrapper does not delegate
        # abs_src_path to the File it wraps, so this must run after its on_files.
        file.abs_src_path = str(pagecache.executed_path(Path(file.abs_src_path)))
    config.extra["assets_mode"] = mode
    files.append(File.generated(config, REPORT_PAGE, content=_report_markdown()))
    return files


def _report_markdown() -> str:
    try:
        records = json.loads(pagecache.REPORT.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = []
    versions = _versions()
    lines = [
        "# Execution report",
        "",
        "Every page of this site is a notebook that the test suite executed; what you read is the",
        "output of that run. This table is generated from `build/execution.json`, written by the",
        "run (tools/pages_plugin.py): wall time of the page's execution and the kernel's peak",
        "resident memory.",
        "",
        "| | |",
        "|---|---|",
        f"| Assets | `{', '.join(sorted({r.get('assets', '?') for r in records})) or '?'}` |",
        f"| Python | {versions['python']} |",
        f"| torch / torchvision | {versions['torch']} / {versions['torchvision']} |",
        f"| fastai | {versions['fastai']} |",
        f"| Machine | {versions['machine']} |",
        "",
        "| Page | Status | Seconds | Peak RSS (MB) | Asserts |",
        "|---|---|---:|---:|---:|",
    ]
    for rec in records:
        link = Path(rec["page"]).relative_to("docs").as_posix()
        lines.append(
            f"| [{link}]({link}) | {rec['status']} | {rec['seconds']:.1f} | "
            f"{rec['peak_rss_mb']:.0f} | {rec.get('asserts', '')} |"
        )
    if not records:
        lines.append("| (no execution recorded yet: run `make test`) | | | | |")
    total = sum(rec["seconds"] for rec in records)
    lines += ["", f"Total execution time of the pages: {total:.1f} s (pages run in parallel)."]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    import importlib.metadata
    import os
    import platform

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "fastai": version("fastai"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores ({platform.system()})",
    }


_LINK = re.compile(r'(<a\s[^>]*?href=")([^"#:]+\.(?:ipynb|md))(#[^"]*)?"')
_HEADING = re.compile(r'<h([1-6])[^>]*\bid="([^"]+)"[^>]*>(.*?)</h\1>', re.S)


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """Fix what MkDocs does not do for a notebook page's HTML: links and anchors.

    MkDocs rewrites links between pages (`freezing.ipynb` becomes `../freezing/`) in Markdown
    only; a notebook's Markdown cells are rendered by nbconvert, so we rewrite them here. A link
    to a file that is not a page stops the build.

    The table of contents:

    mkdocs-jupyter builds the table of contents with MkDocs' slugs, but nbconvert gives the
    headings its own ids; they differ when a heading contains code (`## What `x` builds`),
    leaving broken anchors. The headings and the entries are in the same order, so pair them.
    """
    if not page.file.src_uri.endswith(".ipynb"):
        return html
    html = _LINK.sub(lambda m: _rewrite_link(m, page, files), html)
    headings = [(m.group(2), _text(m.group(3))) for m in _HEADING.finditer(html)]
    entries = list(_flatten(page.toc))
    if len(headings) == len(entries):
        for entry, (anchor, title) in zip(entries, headings, strict=True):
            entry.id, entry.title = anchor, title
    return html


def _flatten(toc: Any) -> Any:
    for entry in toc:
        yield entry
        yield from _flatten(entry.children)


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))).strip(" ¶")


def _rewrite_link(match: re.Match[str], page: Any, files: Files) -> str:
    prefix, target, fragment = match.group(1), match.group(2), match.group(3) or ""
    src_uri = posixpath.normpath(posixpath.join(posixpath.dirname(page.file.src_uri), target))
    linked = files.get_file_from_path(src_uri)
    if linked is None:
        raise PluginError(f"{page.file.src_uri} links to {target}, which is not a page of the site")
    return f'{prefix}{linked.url_relative_to(page.file)}{fragment}"'
