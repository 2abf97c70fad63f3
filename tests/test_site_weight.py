"""tools/mkdocs_weight.py: a notebook page's inline styles and scripts become shared files.

The built site itself (each page's weight, the stylesheet linked from every notebook page) is
checked by tests/browser/test_weight.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import mkdocs_weight
import nbformat
import pytest

ICON = '<path d="M0 6.75C0 5.784" fill="currentColor"></path>'
COPY_TEXT = '<div class="clipboard-copy-txt" id="cell-1">for x in y:\n    print(x)</div>'
# What mkdocs-jupyter 0.26 renders for a notebook, in miniature (see its notebook.html.j2).
PAGE = f"""<script>
(function () {{ window.ClipboardCopyElement = 1; }}());
</script>
<script>
      document.addEventListener('clipboard-copy', function(event) {{}})
</script>
<style type="text/css">
    pre {{ line-height: 125%; }}
</style>
<style type="text/css">
@charset "UTF-8";.jupyter-wrapper{{--jp-cell-padding: 5px}}
</style>
<!-- Load mathjax -->
<script src=""> </script>
<script type="text/x-mathjax-config">
    init_mathjax();
</script>
<!-- End of mathjax configuration --><script type="module">
  document.addEventListener("DOMContentLoaded", async () => {{}});
</script>
<style>
  .jp-Mermaid:not(.jp-RenderedMermaid) {{ display: none; }}
</style>
<!-- End of mermaid configuration --><div class="jupyter-wrapper">
<div class="jp-Notebook">
<svg class="clipboard-copy-icon" viewbox="0 0 16 16" width="20">
{ICON}
</svg>
<div class="highlight-ipynb"><pre>for x in y:
    print(x)
</pre></div>
{COPY_TEXT}
<svg class="clipboard-copy-icon" viewbox="0 0 16 16" width="20">
{ICON}
</svg>
<div class="jp-OutputArea-output"><div>
<style scoped>
    .dataframe thead th {{ text-align: right; }}
</style>
<table class="dataframe"></table></div></div>
</div> <!-- jp-Notebook -->
</div> <!-- jupyter-wrapper -->

        <style>
        ['pre {{ line-height: 125%; }}\\n.highlight-ipynb .hll {{ color: red }}']
        </style>
        """


@pytest.fixture(autouse=True)
def fresh_build() -> Iterator[None]:
    mkdocs_weight.on_pre_build(config={})
    yield
    mkdocs_weight.on_pre_build(config={})


def _notebook_page(url: str = "anatomy/", src_uri: str = "anatomy.ipynb") -> SimpleNamespace:
    return SimpleNamespace(url=url, file=SimpleNamespace(src_uri=src_uri))


def test_styles_move_into_one_stylesheet_in_their_order() -> None:
    stylesheet, html = mkdocs_weight.move_inline_assets(PAGE, "anatomy/")
    assert stylesheet is not None and stylesheet.startswith("assets/notebook/")
    css = mkdocs_weight._files[stylesheet]
    assert css.startswith('@charset "UTF-8";\n')
    order = [css.index(rule) for rule in ("pre {", ".jupyter-wrapper{", ".jp-Mermaid")]
    assert order == sorted(order)
    before_notebook = html[: html.index(mkdocs_weight.WRAPPER_START)]
    assert "<style" not in before_notebook


def test_styles_inside_the_notebook_stay_and_the_list_repr_goes() -> None:
    _, html = mkdocs_weight.move_inline_assets(PAGE, "anatomy/")
    assert ".dataframe thead th" in html  # an output's own style: in place
    assert "['pre {" not in html  # mkdocs-jupyter's list of CSS strings: no rule, dropped


def test_a_valid_style_after_the_notebook_stays() -> None:
    page = PAGE.replace("['pre { line-height: 125%; }\\n.highlight-ipynb .hll { color: red }']",
                        ".after { color: red }")  # fmt: skip
    _, html = mkdocs_weight.move_inline_assets(page, "anatomy/")
    assert ".after { color: red }" in html


def test_scripts_become_files_in_place_of_their_type() -> None:
    _, html = mkdocs_weight.move_inline_assets(PAGE, "anatomy/")
    header = html[: html.index(mkdocs_weight.WRAPPER_START)]
    classic = [f for f in mkdocs_weight._files.values() if "ClipboardCopyElement" in f]
    assert len(classic) == 1 and "addEventListener('clipboard-copy'" in classic[0]  # adjacent
    module = [f for f in mkdocs_weight._files.values() if "DOMContentLoaded" in f]
    assert len(module) == 1
    tags = [line for line in header.split("<") if line.startswith("script")]
    assert tags[0].startswith('script src="../assets/notebook/')  # the copy button, first
    assert tags[1] == 'script src=""> '  # MathJax's loader (no URL): untouched
    assert tags[2].startswith('script type="text/x-mathjax-config">')  # not run: untouched
    assert tags[3].startswith('script type="module" src="../assets/notebook/')
    assert "ClipboardCopyElement" not in header and "DOMContentLoaded" not in header


def test_a_use_strict_script_keeps_its_own_file() -> None:
    page = PAGE.replace("(function () {", "'use strict';\n(function () {")
    mkdocs_weight.move_inline_assets(page, "anatomy/")
    scripts = [f for f in mkdocs_weight._files.values() if "clipboard-copy'" in f]
    assert len(scripts) == 1 and "use strict" not in scripts[0]


@pytest.mark.parametrize(
    ("url", "prefix"), [("anatomy/", "../"), ("guide/anatomy/", "../../"), ("anatomy.html", "")]
)
def test_links_are_relative_to_the_page(url: str, prefix: str) -> None:
    page = _notebook_page(url)
    html = mkdocs_weight.on_page_content(PAGE, page=page, config={}, files=None)
    output = mkdocs_weight.on_post_page(
        f"<html><head><title>t</title></head><body>{html}</body></html>", page=page, config={}
    )
    stylesheet = mkdocs_weight._stylesheets[page.file.src_uri]
    assert f'<link rel="stylesheet" href="{prefix}{stylesheet}">\n</head>' in output
    assert f'<script src="{prefix}assets/notebook/' in output


def test_pages_share_identical_styles_and_keep_different_ones() -> None:
    first, _ = mkdocs_weight.move_inline_assets(PAGE, "anatomy/")
    same, _ = mkdocs_weight.move_inline_assets(PAGE, "freezing/")
    other, _ = mkdocs_weight.move_inline_assets(PAGE.replace("125%", "130%"), "head/")
    assert first == same != other
    assert len([path for path in mkdocs_weight._files if path.endswith(".css")]) == 2


def test_markdown_pages_are_left_alone() -> None:
    page = _notebook_page("api/", "api.md")
    html = "<style>.mkdocstrings { color: red }</style><p>API</p>"
    assert mkdocs_weight.on_page_content(html, page=page, config={}, files=None) == html
    assert mkdocs_weight._files == {}


def test_a_repeated_icon_is_drawn_once() -> None:
    html = mkdocs_weight.share_repeated_icons(PAGE)
    assert html.count(ICON) == 1
    assert html.count('<svg class="clipboard-copy-icon" viewbox="0 0 16 16" width="20">') == 2
    icon_id = html.split('<use href="#')[1].split('"')[0]
    assert html.count(f'<use href="#{icon_id}"></use>') == 2
    assert f'<g id="{icon_id}">\n{ICON}\n</g>' in html
    single = "<svg viewBox='0 0 24 24'><path d='M1 1'/></svg>"
    assert mkdocs_weight.share_repeated_icons(single) == single


def test_indentation_goes_where_the_browser_ignores_it() -> None:
    html = (
        '<nav>\n      <a href="x" title="two\n    lines">\n        Home\n      </a>   \n</nav>\n'
        "<pre>\n    kept\n</pre><textarea>\n  kept</textarea><script>\n  if (a)\n    b()\n</script>"
        "<!--\n   kept -->" + COPY_TEXT
    )
    collapsed = mkdocs_weight.collapse_indentation(html)
    assert collapsed.startswith('<nav>\n<a href="x" title="two\n    lines">\nHome\n</a>\n</nav>\n')
    assert "<pre>\n    kept\n</pre><textarea>\n  kept</textarea>" in collapsed
    assert "<script>\n  if (a)\n    b()\n</script><!--\n   kept -->" in collapsed
    assert COPY_TEXT in collapsed  # what the copy button copies keeps its indentation


def test_source_maps_go_and_the_theme_files_stay(tmp_path: Path) -> None:
    scripts = tmp_path / "assets" / "javascripts"
    scripts.mkdir(parents=True)
    (scripts / "bundle.min.js").write_text("//# sourceMappingURL=bundle.min.js.map")
    (scripts / "bundle.min.js.map").write_text("{}")
    mkdocs_weight.on_post_build({"site_dir": str(tmp_path)})
    assert [p.name for p in scripts.iterdir()] == ["bundle.min.js"]


def test_files_are_written_once_at_the_end(tmp_path: Path) -> None:
    stylesheet, _ = mkdocs_weight.move_inline_assets(PAGE, "anatomy/")
    mkdocs_weight.on_post_build({"site_dir": str(tmp_path)})
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*"))
    assert written == sorted(mkdocs_weight._files)
    assert (tmp_path / stylesheet).read_text(encoding="utf-8") == mkdocs_weight._files[stylesheet]


def test_what_mkdocs_jupyter_renders_leaves_no_style_before_the_notebook(tmp_path: Path) -> None:
    """The contract with mkdocs-jupyter's template, on a notebook it really converts."""
    from mkdocs_jupyter import convert

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "P"}
    output = nbformat.v4.new_output("stream", name="stdout", text="hi\n")
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("print('hi')", outputs=[output]),
        nbformat.v4.new_code_cell("x = 1"),
    ]
    path = tmp_path / "page.ipynb"
    nbformat.write(notebook, str(path))
    rendered = convert.nb2html(str(path), theme="", allow_errors=False, custom_mathjax_url="")

    stylesheet, html = mkdocs_weight.move_inline_assets(rendered, "page/")
    css = mkdocs_weight._files[stylesheet]
    assert ".jupyter-wrapper" in css and ".highlight-ipynb" in css  # JupyterLab's, pygments'
    assert len(html) < len(rendered) - 500_000
    assert "<style" not in html
    assert mkdocs_weight.share_repeated_icons(html).count("<use href=") == 2  # two code cells
