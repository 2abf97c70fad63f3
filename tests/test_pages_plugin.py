"""The page harness (tools/pages_plugin.py) on scratch projects: publish, measure, fail loudly.

Each test writes tiny notebooks into a scratch project's docs/ and runs pytest + nbmake on them
in a subprocess, exactly as `make test` runs the real pages. The checks on their own (stream
coalescing, the determinism comparison) and nbmake's interface are tested in-process.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pagerun
import pytest
from nbclient.client import NotebookClient
from nbmake import nb_result, nb_run, pytest_items

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


def _run_pages(project: Path, *pages: str, nbmake: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TRANSFERLENS_PAGES_ROOT": str(project),
        "TRANSFERLENS_ASSETS": "standin",
        "PYTHONPATH": str(ROOT / "tools"),
    }
    return subprocess.run(
        # the project's addopts (pyproject.toml): nbmake loads only for page runs
        [sys.executable, "-m", "pytest", "-p", "no:nbmake", "-p", "pages_plugin",
         *(["--nbmake"] if nbmake else []),
         "-p", "no:cacheprovider", "-c", str(project / "pytest.ini"), "--rootdir", str(project),
         *pages],
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
        # one line sent as two stream messages ("text", then "\n"), then a line sent as one
        "split.ipynb": _notebook("print('text', end='', flush=True); print()\nprint('more')"),
    }
    for name, nb in pages.items():
        nbformat.write(nb, str(project / "docs" / name))
    (project / "build/executed").mkdir(parents=True)
    (project / "build/executed/bad.ipynb").write_text("{}")  # a stale copy from earlier
    first = _run_pages(project, "docs")
    # page paths alone (no --nbmake) run the pages, as `pytest docs/page.ipynb` does
    second = _run_pages(project, "docs/random.ipynb", "docs/seeded.ipynb", nbmake=False)
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
    # as `make test-pages` runs them: a folder of pages, no --nbmake, two xdist workers
    result = _run_pages(tmp_path, "-n", "2", "docs", nbmake=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout
    records = json.loads((tmp_path / "build/execution.json").read_text())
    assert [r["page"] for r in records] == [f"docs/p{i}.ipynb" for i in range(4)]


def test_the_published_page_has_its_streams_coalesced(runs: tuple) -> None:
    project, (first, _) = runs
    assert "FAILED docs/split.ipynb" not in first.stdout
    executed = nbformat.read(str(project / "build/executed/split.ipynb"), as_version=4)
    outputs = [{k: v for k, v in o.items() if k != "metadata"} for o in executed.cells[0].outputs]
    assert outputs == [{"output_type": "stream", "name": "stdout", "text": "text\nmore\n"}]


def test_a_run_without_pages_loads_none_of_the_page_machinery(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "docs").mkdir()
    nbformat.write(_notebook("x = 1"), str(tmp_path / "docs" / "page.ipynb"))
    (tmp_path / "test_unit.py").write_text(
        "import sys\n\n"
        "def test_no_page_machinery():\n"
        "    heavy = {'pagerun', 'nbmake', 'nbclient', 'matplotlib', 'transferlens.tutorial'}\n"
        "    assert heavy & set(sys.modules) == set()\n"
    )
    result = _run_pages(tmp_path, "test_unit.py", nbmake=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "transferlens assets" not in result.stdout  # the asset mode was never resolved
    assert "Learn more about nbmake" not in result.stdout  # nbmake collected nothing
    assert not (tmp_path / "build").exists()


# --- the checks on their own ------------------------------------------------------------------


def _printed(*texts: str, name: str = "stdout") -> nbformat.NotebookNode:
    """A one-cell executed notebook whose cell printed ``texts`` as separate stream messages."""
    nb = _notebook("print('text')")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name=name, text=t) for t in texts]
    return nb


def test_a_print_compares_the_same_as_one_message_or_two() -> None:
    one, two = _printed("text\n"), _printed("text", "\n")
    assert pagerun._drift_error(one, two) is None
    assert pagerun._drift_error(two, one) is None
    assert [dict(o) for o in two.cells[0].outputs] == [dict(o) for o in one.cells[0].outputs]
    assert two.cells[0].outputs[0]["text"] == "text\n"
    # coalescing does not hide a real difference
    drift = pagerun._drift_error(_printed("text", "\n"), _printed("text", "!\n"))
    assert drift is not None and drift.summary.startswith("cell 0 is not deterministic")


def test_only_consecutive_outputs_of_the_same_stream_are_merged() -> None:
    nb = _printed("a", "b\n")
    nb.cells[0].outputs += [
        nbformat.v4.new_output("stream", name="stderr", text="warn\n"),
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1),
        nbformat.v4.new_output("stream", name="stdout", text="c\n"),
    ]
    pagerun.coalesce_streams(nb)
    kinds = [(o["output_type"], o.get("name"), o.get("text")) for o in nb.cells[0].outputs]
    assert kinds == [
        ("stream", "stdout", "ab\n"),
        ("stream", "stderr", "warn\n"),
        ("execute_result", None, None),
        ("stream", "stdout", "c\n"),
    ]


def test_coalescing_matches_nbconvert() -> None:
    preprocessors = pytest.importorskip("nbconvert.preprocessors")
    texts = ("10%\r", "50%\r", "done\n", "a", "b\r\n", "c")
    ours = pagerun.coalesce_streams(_printed(*texts))
    theirs, _ = preprocessors.CoalesceStreamsPreprocessor().preprocess(_printed(*texts), {})
    assert ours.cells[0].outputs == theirs.cells[0].outputs
    assert ours.cells[0].outputs[0]["text"] == "done\nab\r\nc"


# --- nbmake's interface: an nbmake upgrade that changes it fails here first -------------------


def test_nbmake_still_has_the_interface_the_page_machinery_uses() -> None:
    run_parameters = list(inspect.signature(nb_run.NotebookRun.__init__).parameters)
    assert run_parameters[:6] == [
        "self",
        "filename",
        "default_timeout",
        "verbose",
        "kernel",
        "find_import_errors",
    ], "nbmake's NotebookRun changed its constructor: update PageItem.runtest (tools/pagerun.py)"
    assert issubclass(pagerun.PageItem, pytest_items.NotebookItem)
    assert list(inspect.signature(pytest_items.NotebookItem.__init__).parameters) == [
        "self",
        "parent",
        "filename",
    ], "nbmake's NotebookItem changed its constructor: update pytest_collection_modifyitems"
    assert {"summary", "trace", "failing_cell_index"} <= set(
        inspect.signature(nb_result.NotebookError).parameters
    )
    # the one private hook: NotebookRun.execute builds nbclient's client via this module global
    assert nb_run.NotebookClient is NotebookClient
    assert "NotebookClient" in nb_run.NotebookRun.execute.__code__.co_names, (
        "nbmake's NotebookRun.execute no longer builds its client through "
        "nbmake.nb_run.NotebookClient: update nbmake_client in tools/pagerun.py"
    )


class _RecordingGroup:
    def __init__(self) -> None:
        self.options: list[tuple[tuple[str, ...], dict]] = []

    def addoption(self, *names: str, **kwargs: object) -> None:
        self.options.append((names, kwargs))

    def getgroup(self, *args: object) -> _RecordingGroup:
        return self


def test_the_plugin_declares_exactly_nbmakes_options() -> None:
    import pages_plugin
    from nbmake import pytest_plugin

    ours, theirs = _RecordingGroup(), _RecordingGroup()
    pages_plugin.add_nbmake_options(ours)
    pytest_plugin.pytest_addoption(theirs)
    assert ours.options == theirs.options, (
        "nbmake's options changed: update add_nbmake_options in tools/pages_plugin.py"
    )
    hooks = pages_plugin.NbmakeHooks()
    assert hooks.pytest_collect_file is pytest_plugin.pytest_collect_file


def test_the_client_hook_swaps_for_one_run_and_refuses_an_unknown_nbmake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def factory(*args: object, **kwargs: object) -> NotebookClient:
        raise AssertionError("not called here")

    with pagerun.nbmake_client(factory):
        assert nb_run.NotebookClient is factory
    assert nb_run.NotebookClient is NotebookClient
    monkeypatch.setattr(nb_run, "NotebookClient", object)
    with pytest.raises(pagerun.NbmakeChanged, match="update nbmake_client"):
        with pagerun.nbmake_client(factory):
            pass
