"""make site (tools/build_site.py): executes only stale pages, never leaves a broken site/."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import build_site
import pagecache
import pytest


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the commands build_site runs; mkdocs "builds" a one-page site."""
    seen: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(command)
        if "mkdocs" in command:
            site = Path(command[command.index("--site-dir") + 1])
            site.mkdir(parents=True)
            (site / "index.html").write_text("new site")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setenv("TRANSFERLENS_ASSETS", "standin")
    monkeypatch.setattr(build_site.subprocess, "run", fake_run)
    monkeypatch.setattr(pagecache, "stale_pages", lambda mode: [])
    return seen


def _old_site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("last good site")
    return site


def test_builds_into_a_temporary_folder_then_swaps(tmp_path: Path, calls: list) -> None:
    site = _old_site(tmp_path)
    assert build_site.main(["--site-dir", str(site)]) == 0
    assert (site / "index.html").read_text() == "new site"
    assert (site / build_site.STAMP_NAME).is_file()
    assert not (tmp_path / "site.tmp").exists() and not (tmp_path / "site.old").exists()
    assert [c for c in calls if "pytest" in c] == []  # nothing was stale: nothing executed


def test_nothing_changed_means_no_build(tmp_path: Path, calls: list, capsys: Any) -> None:
    site = _old_site(tmp_path)
    build_site.main(["--site-dir", str(site)])
    calls.clear()
    assert build_site.main(["--site-dir", str(site)]) == 0
    assert calls == []
    assert "site/ is up to date" in capsys.readouterr().out


def test_a_failing_build_keeps_the_last_good_site(
    tmp_path: Path, calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _old_site(tmp_path)

    def failing_mkdocs(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        Path(command[command.index("--site-dir") + 1]).mkdir(parents=True)  # half-written
        return subprocess.CompletedProcess(command, 1)

    monkeypatch.setattr(build_site.subprocess, "run", failing_mkdocs)
    assert build_site.main(["--site-dir", str(site)]) == 1
    assert (site / "index.html").read_text() == "last good site"
    assert not (tmp_path / "site.tmp").exists()


def test_a_failing_page_keeps_the_last_good_site(
    tmp_path: Path, calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = _old_site(tmp_path)
    page = pagecache.DOCS / "anatomy.ipynb"
    monkeypatch.setattr(pagecache, "stale_pages", lambda mode: [page])

    def failing_pages(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1 if "pytest" in command else 0)

    monkeypatch.setattr(build_site.subprocess, "run", failing_pages)
    assert build_site.main(["--site-dir", str(site)]) == 1
    (pages_run,) = calls
    assert pages_run[-1] == "docs/anatomy.ipynb"  # only the stale page was executed
    assert (site / "index.html").read_text() == "last good site"
