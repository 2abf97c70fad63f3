"""MkDocs hook: the site's pages a third of their weight, and not a pixel different.

mkdocs-jupyter 0.26 inlines the same styles (JupyterLab's CSS and its pygments theme, 590 KB) and
scripts (the copy button, the mermaid loader: 16 KB) into every notebook page: three quarters of
each page, downloaded again on every page. This hook

- moves them into files under ``assets/notebook/``, each named by its content's digest and
  written once, which every notebook page links: the browser fetches each once for the site;
- draws the copy button's icon, repeated in every code cell, once per page (``<use>``);
- drops template indentation around line breaks (5-20 % of a page), where the browser ignores it;
- deletes the theme's source maps (1.3 MB that only a browser's developer tools fetch).

Nothing changes for the browser but where the bytes come from:

- Only what mkdocs-jupyter's template puts before the notebook (``<div class="jupyter-wrapper">``)
  moves. Styles an output brings with it (a DataFrame's ``<style scoped>``) stay where they are.
- A page's style blocks become one stylesheet, in their order, linked as the last stylesheet of
  ``<head>``: after the theme's and ``extra_css``, as the inline blocks were (in ``<body>``, after
  all of ``<head>``), and before any style inside the notebook. The cascade is the same: the
  browser's list of rules, in order, is identical before and after.
- An inline script becomes a ``<script src>`` in its place, of its type (a module stays a
  module); adjacent classic ones share a file. Scripts the browser does not run (MathJax's
  ``text/x-mathjax-config``) stay.
- A file's name is its content's digest: pages whose styles differ (another pygments theme, say)
  get files of their own, identical ones share a file, and a browser never keeps a stale copy.
- mkdocs-jupyter also appends its pygments CSS after the notebook as a Python list
  (``<style>['pre { ... }']</style>``: ``nbconvert2.nb2html`` formats ``resources["inlining"]
  ["css"]``, a list). A browser parses that to no rule at all; it is dropped.

tests/test_site_weight.py checks the rewriting; tests/browser/test_weight.py checks the built
site: each notebook page's weight, one notebook stylesheet that every notebook page links.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections import Counter
from pathlib import Path
from typing import Any

from mkdocs.utils import get_relative_url

ASSETS_DIR = "assets/notebook"
WRAPPER_START = '<div class="jupyter-wrapper">'
WRAPPER_END = "<!-- jupyter-wrapper -->"
# Where mkdocs-material puts its own scripts and stylesheets in the site.
THEME_ASSET_DIRS = ("assets/javascripts", "assets/stylesheets")

_BLOCK = re.compile(r"<(style|script)\b([^>]*)>(.*?)</\1>", re.S)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_SVG = re.compile(r"(<svg\b[^>]*>)(.*?)(</svg>)", re.S)
_VERBATIM = re.compile(
    r"<(pre|textarea|script|style)\b.*?</\1\s*>"
    r"""|<(\w+)\b[^>]*\bclass=["'][^"']*\bclipboard-copy-txt\b.*?</\2\s*>"""
    r"|<!--.*?-->|<[^>]*>",
    re.S | re.I,
)
_INDENTATION = re.compile(r"[ \t]*\n[ \t]*")
_CLASSIC_TYPES = {"", "text/javascript", "application/javascript"}
_STRICT = re.compile(r"""\A\s*(["'])use strict\1""")

# Built up while MkDocs renders the pages: site path -> content of each file to write, and each
# notebook page's stylesheet (src_uri -> site path) for its <head>.
_files: dict[str, str] = {}
_stylesheets: dict[str, str] = {}


def on_pre_build(config: Any) -> None:
    _files.clear()
    _stylesheets.clear()


def on_page_content(html: str, page: Any, config: Any, files: Any) -> str:
    if not page.file.src_uri.endswith(".ipynb") or WRAPPER_START not in html:
        return html
    stylesheet, html = move_inline_assets(html, page.url)
    if stylesheet:
        _stylesheets[page.file.src_uri] = stylesheet
    return share_repeated_icons(html)


def on_post_page(output: str, page: Any, config: Any) -> str:
    output = collapse_indentation(output)
    stylesheet = _stylesheets.get(page.file.src_uri)
    if stylesheet is None:
        return output
    link = f'<link rel="stylesheet" href="{get_relative_url(stylesheet, page.url)}">\n'
    return output.replace("</head>", link + "</head>", 1)


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    for path, content in _files.items():
        target = site / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    drop_source_maps(site)


def drop_source_maps(site: Path) -> None:
    """Delete the theme's source maps (1.3 MB, 8 % of the site before this hook).

    Only a browser's developer tools fetch them, to show the theme's unminified sources; no
    reader does. The theme's own files stay as they are.
    """
    for folder in THEME_ASSET_DIRS:
        for source_map in (site / folder).rglob("*.map"):
            source_map.unlink()


def move_inline_assets(html: str, page_url: str) -> tuple[str | None, str]:
    """Move a notebook's inline styles and scripts into files; return (stylesheet, new html).

    ``html`` is a notebook page's content as mkdocs-jupyter renders it; ``page_url`` the page's
    URL (``anatomy/``), for the relative ``src`` of the scripts. The stylesheet is the site path
    of the file holding the page's styles (``None`` when it has none), for the page's ``<head>``.
    The files go into ``on_post_build``'s list.
    """
    start = html.index(WRAPPER_START)
    header, body = html[:start], html[start:]
    styles: list[str] = []
    out: list[str] = []
    scripts: list[str] = []  # adjacent inline scripts of one kind, not written yet
    scripts_kind = ""
    position = 0

    def flush_scripts() -> None:
        if scripts:
            path = _add_file("\n;\n".join(scripts), "js")
            type_attribute = ' type="module"' if scripts_kind == "module" else ""
            src = get_relative_url(path, page_url)
            out.append(f'<script{type_attribute} src="{src}"></script>')
            scripts.clear()

    for match in _BLOCK.finditer(header):
        between = header[position : match.start()]
        position = match.end()
        tag, attribute_text, content = match.groups()
        kind = _inline_script_kind(attribute_text) if tag == "script" else None
        if kind == "classic" == scripts_kind and scripts and _joinable(scripts[0], between):
            scripts.append(content)  # right after the previous classic script: the same file
            continue
        flush_scripts()
        out.append(between)
        if tag == "style":
            styles.append(content)
        elif kind:
            scripts.append(content)
            scripts_kind = kind
        else:
            out.append(match.group(0))
    flush_scripts()
    out.append(header[position:])
    stylesheet = _add_file('@charset "UTF-8";\n' + "\n".join(styles), "css") if styles else None
    return stylesheet, "".join(out) + _drop_list_repr_styles(body)


def share_repeated_icons(html: str) -> str:
    """Draw an SVG icon repeated in the notebook (the copy button's, once per code cell) once.

    Each copy keeps its ``<svg>`` element and attributes (size, class, colour); its drawing
    becomes a ``<use>`` of one hidden definition at the end of the content: 1 KB less per cell.
    """
    counts = Counter(match.group(2) for match in _SVG.finditer(html))
    shared = {
        drawing: f"tl-icon-{hashlib.sha256(drawing.encode()).hexdigest()[:10]}"
        for drawing, count in counts.items()
        if count > 1 and "<svg" not in drawing and " id=" not in drawing
    }
    if not shared:
        return html

    def use(match: re.Match[str]) -> str:
        icon = shared.get(match.group(2))
        if icon is None:
            return match.group(0)
        return f'{match.group(1)}<use href="#{icon}"></use>{match.group(3)}'

    definitions = "".join(f'<g id="{icon}">{drawing}</g>' for drawing, icon in shared.items())
    hidden = f'<svg aria-hidden="true" style="display: none"><defs>{definitions}</defs></svg>'
    return _SVG.sub(use, html) + hidden + "\n"


def collapse_indentation(html: str) -> str:
    """Drop the spaces and tabs around line breaks in text, where a browser ignores them.

    Template indentation is 5-20 % of a page. Untouched: tags (their attribute values),
    comments, ``<pre>``, ``<textarea>``, ``<script>``, ``<style>``, and the text the copy button
    copies (mkdocs-jupyter's ``clipboard-copy-txt``). Line breaks themselves stay, so text is the
    same under every ``white-space`` that collapses spaces (normal, nowrap, pre-line).
    """
    out = []
    position = 0
    for match in _VERBATIM.finditer(html):
        out.append(_INDENTATION.sub("\n", html[position : match.start()]))
        out.append(match.group(0))
        position = match.end()
    out.append(_INDENTATION.sub("\n", html[position:]))
    return "".join(out)


def _add_file(content: str, extension: str) -> str:
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]
    path = f"{ASSETS_DIR}/{digest}.{extension}"
    _files[path] = content
    return path


def _inline_script_kind(attribute_text: str) -> str | None:
    """``classic`` or ``module`` for an inline script the browser runs; else None."""
    attributes = _attributes(attribute_text)
    if "src" in attributes:
        return None
    script_type = attributes.get("type", "").strip().lower()
    if script_type == "module":
        return "module"
    return "classic" if script_type in _CLASSIC_TYPES else None


def _joinable(first_script: str, between: str) -> bool:
    """Whether a classic script can share a file with the group ``first_script`` opened:
    nothing but white space between them, and no "use strict" that would then cover both."""
    return not between.strip() and not _STRICT.match(first_script)


def _attributes(text: str) -> dict[str, str]:
    """A tag's attributes, names lower-cased (a bare attribute's value is empty)."""
    attributes = {}
    for match in _ATTRIBUTE.finditer(text):
        name, *values = match.groups()
        attributes[name.lower()] = next((value for value in values if value is not None), "")
    return attributes


def _drop_list_repr_styles(body: str) -> str:
    """Drop, after the notebook, the ``<style>`` blocks that hold a Python list of strings."""
    end = body.rfind(WRAPPER_END)
    if end < 0:
        return body
    head, tail = body[:end], body[end:]

    def keep_unless_list(match: re.Match[str]) -> str:
        if match.group(1) == "style" and _is_list_of_strings(match.group(3)):
            return ""
        return match.group(0)

    return head + _BLOCK.sub(keep_unless_list, tail)


def _is_list_of_strings(text: str) -> bool:
    text = text.strip()
    if not text.startswith("["):
        return False
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)
