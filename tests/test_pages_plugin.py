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


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """One scratch project, its pages run twice (kernel starts are the slow part)."""
    project = tmp_path_factory.mktemp("project")
    (project / "docs").mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    pages = {
        "good.ipynb": _notebook("x = [1] * 10**6", "assert len(x) == 10**6\nx[0]"),
        "bad.ipynb": _notebook("x = 1", "assert x == 2, 'x is not two'"),
        "noisy.ipynb": _notebook("import warnings", "warnings.warn('stale API')"),
        "random.ipynb": _notebook("import random", "random.random()"),
        "seeded.ipynb": _notebook("import random; random.seed(0)", "random.random()"),
    }
    for name, nb in pages.items():
        nbformat.write(nb, str(project / "docs" / name))
    (project / "build/executed").mkdir(parents=True)
    (project / "build/executed/bad.ipynb").write_text("{}")  # a stale copy from earlier
    first = _run_pages(project, "docs")
    second = _run_pages(project, "docs/random.ipynb", "docs/seeded.ipynb")
    return project, [first, second]


def _records(project: Path) -> dict[str, dict]:
    return {r["page"]: r for r in json.loads((project / "build/execution.json").read_text())}


def test_a_passing_page_is_published_and_measured(runs: tuple) -> None:
    project, (first, _) = runs
    executed = nbformat.read(str(project / "build/executed/good.ipynb"), as_version=4)
    assert executed.cells[1].outputs[0]["data"]["text/plain"] == "1"
    assert len(executed.metadata["transferlens"]["key"]) == 32
    assert executed.metadata["transferlens"]["assets"] == "standin"
    record = _records(project)["docs/good.ipynb"]
    assert record["status"] == "passed"
    assert record["seconds"] > 0 and record["peak_rss_mb"] > 20 and record["asserts"] == 1
    assert record["compared_with_previous_run"] is False  # first run: nothing to compare with
    assert "page execution (build/execution.json)" in first.stdout
    # the committed page itself is untouched: no outputs written back
    source = nbformat.read(str(project / "docs/good.ipynb"), as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells)


def test_a_failing_page_names_page_and_error_and_is_not_published(runs: tuple) -> None:
    project, (first, _) = runs
    assert first.returncode == 1
    assert "docs/bad.ipynb cell 1: AssertionError: x is not two" in first.stdout
    assert not (project / "build/executed/bad.ipynb").exists()
    assert _records(project)["docs/bad.ipynb"]["status"] == "failed"


def test_a_page_that_writes_to_stderr_fails(runs: tuple) -> None:
    project, (first, _) = runs
    assert "docs/noisy.ipynb cell 1 wrote to stderr" in first.stdout
    assert "stale API" in first.stdout
    assert not (project / "build/executed/noisy.ipynb").exists()


def test_non_deterministic_outputs_fail_the_second_run(runs: tuple) -> None:
    project, (first, second) = runs
    assert "FAILED docs/random.ipynb" not in first.stdout
    assert second.returncode == 1
    assert "docs/random.ipynb cell 1 is not deterministic" in second.stdout
    assert "1 failed, 1 passed" in second.stdout  # the seeded page gave the same outputs
    seeded = _records(project)["docs/seeded.ipynb"]
    assert seeded["status"] == "passed" and seeded["compared_with_previous_run"] is True


def test_pages_run_in_parallel_without_kernel_start_failures(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    for i in range(4):
        nbformat.write(_notebook(f"assert {i} == {i}"), str(tmp_path / "docs" / f"p{i}.ipynb"))
    result = _run_pages(tmp_path, "-n", "2", "docs")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    records = json.loads((tmp_path / "build/execution.json").read_text())
    assert [r["page"] for r in records] == [f"docs/p{i}.ipynb" for i in range(4)]
