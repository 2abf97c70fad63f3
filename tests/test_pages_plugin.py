"""The page harness (tools/pages_plugin.py) on scratch projects: publish, measure, fail loudly.

Each test writes tiny notebooks into a scratch project's docs/ and runs pytest + nbmake on them
in a subprocess, exactly as `make test` runs the real pages.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def _run_pages(project: Path, *pages: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TRANSFERLENS_PAGES_ROOT": str(project),
        "TRANSFERLENS_ASSETS": "standin",
        "PYTHONPATH": str(ROOT / "tools"),
    }
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "pages_plugin", "--nbmake", "-p", "no:cacheprovider",
         "-c", str(project / "pytest.ini"), "--rootdir", str(project), *pages],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def _write(project: Path, name: str, nb: nbformat.NotebookNode) -> str:
    nbformat.write(nb, str(project / "docs" / name))
    return f"docs/{name}"


def test_a_passing_page_is_published_and_measured(project: Path) -> None:
    page = _write(
        project, "good.ipynb", _notebook("x = [1] * 10**6", "assert len(x) == 10**6\nx[0]")
    )
    result = _run_pages(project, page)
    assert result.returncode == 0, result.stdout + result.stderr
    executed = nbformat.read(str(project / "build/executed/good.ipynb"), as_version=4)
    assert executed.cells[1].outputs[0]["data"]["text/plain"] == "1"
    assert len(executed.metadata["transferlens"]["key"]) == 32
    assert executed.metadata["transferlens"]["assets"] == "standin"
    (record,) = json.loads((project / "build/execution.json").read_text())
    assert record["page"] == "docs/good.ipynb" and record["status"] == "passed"
    assert record["seconds"] > 0 and record["peak_rss_mb"] > 20 and record["asserts"] == 1
    assert "page execution (build/execution.json)" in result.stdout
    # the committed page itself is untouched: no outputs written back
    source = nbformat.read(str(project / page), as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells)


def test_a_failing_page_names_page_and_error_and_is_not_published(project: Path) -> None:
    page = _write(project, "bad.ipynb", _notebook("x = 1", "assert x == 2, 'x is not two'"))
    (project / "build/executed").mkdir(parents=True)
    (project / "build/executed/bad.ipynb").write_text("{}")  # a stale copy from earlier
    result = _run_pages(project, page)
    assert result.returncode == 1
    assert "docs/bad.ipynb cell 1: AssertionError: x is not two" in result.stdout
    assert not (project / "build/executed/bad.ipynb").exists()
    (record,) = json.loads((project / "build/execution.json").read_text())
    assert record["status"] == "failed"


def test_a_page_that_writes_to_stderr_fails(project: Path) -> None:
    page = _write(
        project, "noisy.ipynb", _notebook("import warnings", "warnings.warn('stale API')")
    )
    result = _run_pages(project, page)
    assert result.returncode == 1
    assert "docs/noisy.ipynb cell 1 wrote to stderr" in result.stdout
    assert "stale API" in result.stdout


def test_non_deterministic_outputs_fail_the_second_run(project: Path) -> None:
    page = _write(project, "random.ipynb", _notebook("import random", "random.random()"))
    first = _run_pages(project, page)
    assert first.returncode == 0, first.stdout
    second = _run_pages(project, page)
    assert second.returncode == 1
    assert "docs/random.ipynb cell 1 is not deterministic" in second.stdout


def test_deterministic_outputs_pass_the_second_run(project: Path) -> None:
    page = _write(
        project, "seeded.ipynb", _notebook("import random; random.seed(0)", "random.random()")
    )
    assert _run_pages(project, page).returncode == 0
    second = _run_pages(project, page)
    assert second.returncode == 0, second.stdout


def test_pages_run_in_parallel_without_kernel_start_failures(project: Path) -> None:
    pages = [_write(project, f"p{i}.ipynb", _notebook(f"assert {i} == {i}")) for i in range(6)]
    result = _run_pages(project, "-n", "3", *pages)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
    records = json.loads((project / "build/execution.json").read_text())
    assert [r["page"] for r in records] == [f"docs/p{i}.ipynb" for i in range(6)]
