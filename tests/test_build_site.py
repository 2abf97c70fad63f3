"""make site (tools/build_site.py, tools/mkdocs_hooks.py) on a scratch project: executes only
stale pages, never leaves a broken site/, renders only fresh executed copies."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import build_site
import mkdocs_hooks
import nbformat
import pagecache
import pytest
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch project with two pages, its package source, and pagecache pointed at it."""
    root = tmp_path / "project"
    (root / "docs").mkdir(parents=True)
    (root / "src/transferlens").mkdir(parents=True)
    (root / "src/transferlens/__init__.py").write_text("")
    (root / "mkdocs.yml").write_text("site_name: scratch\n")
    (root / "docs/index.md").write_text("# Home\n")
    for name in ("one", "two"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(f"name = {name!r}")]
        nbformat.write(nb, str(root / "docs" / f"{name}.ipynb"))
    for name, value in {
        "ROOT": root,
        "DOCS": root / "docs",
        "SRC": root / "src/transferlens",
        "BUILD": root / "build",
        "EXECUTED": root / "build/executed",
        "RECORDS": root / "build/execution",
        "REPORT": root / "build/execution.json",
    }.items():
        monkeypatch.setattr(pagecache, name, value)
    monkeypatch.setattr(build_site, "ROOT", root)
    monkeypatch.setenv("TRANSFERLENS_ASSETS", "standin")
    return root


def _execute(root: Path, *names: str) -> None:
    """What a passing page run leaves: the copy, stamped with the page's current key."""
    for name in names:
        page = root / "docs" / f"{name}.ipynb"
        nb = nbformat.read(str(page), as_version=4)
        nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n")]
        pagecache.publish(page, nb, pagecache.page_key(page, "standin"), "standin")


@pytest.fixture
def calls(project: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the commands build_site runs; pytest "executes" the pages; mkdocs "builds" a
    one-page site."""
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        if "pytest" in command:
            _execute(project, *(Path(arg).stem for arg in command if arg.endswith(".ipynb")))
        if "mkdocs" in command:
            site = Path(command[command.index("--site-dir") + 1])
            site.mkdir(parents=True)
            (site / "index.html").write_text("new site")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(build_site.subprocess, "run", fake_run)
    return seen


def _old_site(root: Path) -> Path:
    site = root / "site"
    site.mkdir()
    (site / "index.html").write_text("last good site")
    return site


def _ran(calls: list[list[str]], tool: str) -> list[list[str]]:
    return [command for command in calls if tool in command]


def test_builds_into_a_temporary_folder_then_swaps(project: Path, calls: list) -> None:
    _execute(project, "one", "two")
    site = _old_site(project)
    assert build_site.main(["--site-dir", str(site)]) == 0
    assert (site / "index.html").read_text() == "new site"
    assert (site / build_site.STAMP_NAME).is_file()
    assert not (project / "site.tmp").exists() and not (project / "site.old").exists()
    assert _ran(calls, "pytest") == []  # nothing was stale: nothing executed


def test_only_stale_pages_are_executed(project: Path, calls: list) -> None:
    _execute(project, "one")
    assert build_site.main(["--site-dir", str(project / "site")]) == 0
    ((*_, executed),) = _ran(calls, "pytest")
    assert executed == "docs/two.ipynb"


def test_nothing_changed_means_no_build(project: Path, calls: list, capsys: Any) -> None:
    _execute(project, "one", "two")
    site = _old_site(project)
    build_site.main(["--site-dir", str(site)])
    calls.clear()
    assert build_site.main(["--site-dir", str(site)]) == 0
    assert calls == []
    assert "site/ is up to date" in capsys.readouterr().out


def test_the_site_stamp_follows_the_page_keys_and_the_site_inputs(project: Path) -> None:
    _execute(project, "one", "two")
    stamp = pagecache.site_stamp("standin")
    _execute(project, "one")  # executed again, same key: the same site
    assert pagecache.site_stamp("standin") == stamp
    assert pagecache.site_stamp("real") != stamp
    (project / "src/transferlens/__init__.py").write_text("VALUE = 1\n")  # every key changes
    assert pagecache.site_stamp("standin") != stamp
    stamp = pagecache.site_stamp("standin")
    (project / "docs/index.md").write_text("# Home, edited\n")  # a page that is not a notebook
    assert pagecache.site_stamp("standin") != stamp
    stamp = pagecache.site_stamp("standin")
    pagecache.REPORT.write_text("[]\n")
    assert pagecache.site_stamp("standin") != stamp


def test_a_failing_build_keeps_the_last_good_site(
    project: Path, calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    _execute(project, "one", "two")
    site = _old_site(project)

    def failing_mkdocs(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        Path(command[command.index("--site-dir") + 1]).mkdir(parents=True)  # half-written
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(build_site.subprocess, "run", failing_mkdocs)
    assert build_site.main(["--site-dir", str(site)]) == 1
    assert (site / "index.html").read_text() == "last good site"
    assert not (project / "site.tmp").exists()


def test_a_failing_page_keeps_the_last_good_site(
    project: Path, calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _old_site(project)

    def failing_pages(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1 if "pytest" in command else 0)

    monkeypatch.setattr(build_site.subprocess, "run", failing_pages)
    assert build_site.main(["--site-dir", str(site)]) == 1
    (pages_run,) = calls
    assert pages_run[-2:] == ["docs/one.ipynb", "docs/two.ipynb"]
    assert (site / "index.html").read_text() == "last good site"


# --- the MkDocs hooks render fresh executed copies only ----------------------------------------


def _on_files(root: Path) -> tuple[Files, SimpleNamespace]:
    config = SimpleNamespace(
        extra={}, site_dir=str(root / "site"), use_directory_urls=True,
        plugins=SimpleNamespace(_current_plugin=None),
    )  # fmt: skip
    files = Files(
        [
            File(name, str(root / "docs"), str(root / "site"), True)
            for name in ("one.ipynb", "two.ipynb")
        ]
    )
    return mkdocs_hooks.on_files(files, config), config


def test_the_hooks_render_the_executed_copies(project: Path) -> None:
    _execute(project, "one", "two")
    files, config = _on_files(project)
    assert files.get_file_from_path("one.ipynb").abs_src_path == str(
        project / "build/executed/one.ipynb"
    )
    assert config.extra["assets_mode"] == "standin"
    assert files.get_file_from_path(mkdocs_hooks.REPORT_PAGE) is not None


def test_the_hooks_refuse_a_missing_or_stale_copy(project: Path) -> None:
    _execute(project, "one")
    with pytest.raises(PluginError, match=r"docs/two.ipynb has no executed copy"):
        _on_files(project)
    _execute(project, "two")
    nbformat.write(nbformat.v4.new_notebook(), str(project / "docs/two.ipynb"))  # edited since
    with pytest.raises(PluginError, match=r"copy of docs/two.ipynb is out of date"):
        _on_files(project)
