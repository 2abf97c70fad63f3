"""The page machinery (tools/pages_plugin.py, tools/pagerun.py) on a scratch project.

A module fixture writes tiny notebooks into a scratch project's docs/ and runs pytest on them in
two subprocesses: first as ``make test`` does (no arguments, the ``testpaths``, two xdist
workers), then as ``make test-pages`` does (``--check-determinism``, page paths, no
``--nbmake``). The tests read what those runs printed and left in build/. The checks on their
own (stream coalescing, the determinism comparison, the kernel start), the cache key and
nbmake's interface are tested in-process.
"""

from __future__ import annotations

import asyncio
import fcntl
import importlib.metadata
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nbformat
import pagecache
import pagerun
import pytest
from nbclient.client import NotebookClient
from nbmake import nb_result, nb_run, pytest_items, pytest_plugin

ROOT = Path(__file__).resolve().parents[1]
# Plugins that have nothing to do with pages, left out of the scratch runs (they only cost time).
UNRELATED_PLUGINS = ("-p", "no:hypothesispytest", "-p", "no:anyio")


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


def _scratch_project(root: Path, ini: str = "[pytest]\n") -> Path:
    """docs/, a pytest.ini and a stand-in package source (so keys do not follow edits to src/)."""
    (root / "docs").mkdir()
    (root / "pytest.ini").write_text(ini)
    (root / "src/transferlens/sub").mkdir(parents=True)
    (root / "src/transferlens/__init__.py").write_text("")
    (root / "src/transferlens/sub/module.py").write_text("VALUE = 1\n")
    return root


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TRANSFERLENS_PAGES_ROOT": str(project),
        "TRANSFERLENS_PAGES_SRC": str(project / "src/transferlens"),
        "TRANSFERLENS_ASSETS": "standin",
        "PYTHONPATH": str(ROOT / "tools"),
    }
    return subprocess.run(
        # the project's addopts (pyproject.toml): nbmake loads only for page runs
        [sys.executable, "-m", "pytest", "-p", "no:nbmake", "-p", "pages_plugin",
         *UNRELATED_PLUGINS, "-p", "no:cacheprovider", "-c", str(project / "pytest.ini"),
         "--rootdir", str(project), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _records(project: Path) -> dict[str, dict]:
    return {r["page"]: r for r in json.loads((project / "build/execution.json").read_text())}


def _use_project(patch: pytest.MonkeyPatch, project: Path) -> None:
    """Point pagecache, in this process, at the scratch project (as its env variables do)."""
    patch.setattr(pagecache, "ROOT", project)
    patch.setattr(pagecache, "DOCS", project / "docs")
    patch.setattr(pagecache, "SRC", project / "src/transferlens")
    patch.setattr(pagecache, "EXECUTED", project / "build/executed")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The scratch project after a `make test`-like run, then a `make test-pages`-like run."""
    project = _scratch_project(tmp_path_factory.mktemp("project"), "[pytest]\ntestpaths = docs\n")
    pages = {
        # one line sent as two stream messages ("text", then "\n"), then a line sent as one
        "good.ipynb": _notebook(
            "x = [1] * 10**6", "assert len(x) == 10**6\nx[0]",
            "print('text', end='', flush=True); print()\nprint('more')",
        ),
        "bad.ipynb": _notebook("x = 1", "assert x == 2, 'x is not two'"),
        "noisy.ipynb": _notebook("import warnings", "warnings.warn('stale API')"),
        "random.ipynb": _notebook("import random", "random.random()"),
    }  # fmt: skip
    for name, nb in pages.items():
        nbformat.write(nb, str(project / "docs" / name))
    (project / "build/executed").mkdir(parents=True)
    (project / "build/executed/bad.ipynb").write_text("{}")  # a stale copy from earlier
    # as `make test`: no arguments (the testpaths), two xdist workers starting kernels at once
    first = _run(project, "-n", "2")
    first_records = _records(project)
    with pytest.MonkeyPatch.context() as patch:  # what `make site` would execute now
        _use_project(patch, project)
        stale = [page.name for page in pagecache.stale_pages("standin")]

    # as `make test-pages`: page paths (no --nbmake), every page compared with a run of identical
    # inputs: random.ipynb with its copy; good.ipynb and clock.ipynb have none, so each runs twice
    (project / "build/executed/good.ipynb").unlink()
    nbformat.write(_notebook("import time", "time.time_ns()"), str(project / "docs/clock.ipynb"))
    second = _run(
        project, "--check-determinism",
        *(f"docs/{name}.ipynb" for name in ("random", "good", "clock")),
    )  # fmt: skip
    return SimpleNamespace(
        project=project, first=first, second=second, first_records=first_records, stale=stale
    )


def test_a_passing_page_is_published_and_measured(runs: SimpleNamespace) -> None:
    executed = nbformat.read(str(runs.project / "build/executed/good.ipynb"), as_version=4)
    assert executed.cells[1].outputs[0]["data"]["text/plain"] == "1"
    stamp = executed.metadata["transferlens"]
    assert len(stamp["key"]) == 32 and stamp["assets"] == "standin"
    record = runs.first_records["docs/good.ipynb"]
    assert record["status"] == "passed"
    assert record["seconds"] > 0 and record["peak_rss_mb"] > 20 and record["asserts"] == 1
    assert record["compared_with_previous_run"] is False  # first run: nothing to compare with
    assert "page execution (build/execution.json)" in runs.first.stdout
    # the committed page itself is untouched: no outputs written back
    source = nbformat.read(str(runs.project / "docs/good.ipynb"), as_version=4)
    assert all(not cell.get("outputs") for cell in source.cells)


def test_the_run_table_lists_the_pages_of_this_run_only(runs: SimpleNamespace) -> None:
    table = runs.second.stdout[runs.second.stdout.index("page execution") :]
    assert "docs/random.ipynb" in table and "docs/good.ipynb" in table
    assert "docs/noisy.ipynb" not in table  # ran in the first run only
    assert "more pages from earlier runs in that file" in table


def test_pages_run_in_parallel_without_kernel_start_failures(runs: SimpleNamespace) -> None:
    assert "2 workers" in runs.first.stdout, runs.first.stdout  # xdist ran, from the testpaths
    assert "2 failed, 2 passed" in runs.first.stdout, runs.first.stdout + runs.first.stderr
    pages = [f"docs/{name}.ipynb" for name in ("bad", "good", "noisy", "random")]
    assert sorted(runs.first_records) == pages


def test_a_failing_page_names_page_and_error_and_is_not_published(runs: SimpleNamespace) -> None:
    assert "docs/bad.ipynb cell 1: AssertionError: x is not two" in runs.first.stdout
    assert not (runs.project / "build/executed/bad.ipynb").exists()
    assert runs.first_records["docs/bad.ipynb"]["status"] == "failed"


def test_a_page_that_writes_to_stderr_fails(runs: SimpleNamespace) -> None:
    assert "docs/noisy.ipynb cell 1 wrote to stderr" in runs.first.stdout
    assert "stale API" in runs.first.stdout
    assert not (runs.project / "build/executed/noisy.ipynb").exists()


def test_make_site_would_execute_exactly_the_pages_without_a_fresh_copy(
    runs: SimpleNamespace,
) -> None:
    # the runner's keys and the staleness check's are the same function's
    assert runs.stale == ["bad.ipynb", "noisy.ipynb"]


def test_the_published_page_has_its_streams_coalesced(runs: SimpleNamespace) -> None:
    executed = nbformat.read(str(runs.project / "build/executed/good.ipynb"), as_version=4)
    outputs = [{k: v for k, v in o.items() if k != "metadata"} for o in executed.cells[2].outputs]
    assert outputs == [{"output_type": "stream", "name": "stdout", "text": "text\nmore\n"}]


def test_a_page_is_compared_with_its_published_copy_of_the_same_key(
    runs: SimpleNamespace,
) -> None:
    assert "FAILED docs/random.ipynb" not in runs.first.stdout  # nothing to compare with then
    assert "docs/random.ipynb cell 1 is not deterministic" in runs.second.stdout
    assert _records(runs.project)["docs/random.ipynb"]["compared_with"] == "published copy"
    assert not (runs.project / "build/executed/random.ipynb").exists()


def test_check_determinism_runs_a_page_twice_when_there_is_no_copy(runs: SimpleNamespace) -> None:
    assert runs.second.returncode == 1
    assert "2 failed, 1 passed" in runs.second.stdout, runs.second.stdout + runs.second.stderr
    assert "docs/clock.ipynb cell 1 is not deterministic" in runs.second.stdout
    records = _records(runs.project)
    assert records["docs/clock.ipynb"]["compared_with"] == "second execution"
    good = records["docs/good.ipynb"]
    assert good["status"] == "passed" and good["compared_with"] == "second execution"
    assert (runs.project / "build/executed/good.ipynb").exists()
    # every page of the run was compared: what `make test-pages` promises
    for name in ("random", "good", "clock"):
        assert records[f"docs/{name}.ipynb"]["compared_with_previous_run"] is True


def test_a_run_without_pages_loads_none_of_the_page_machinery(tmp_path: Path) -> None:
    project = _scratch_project(tmp_path)
    nbformat.write(_notebook("x = 1"), str(project / "docs" / "page.ipynb"))
    (project / "test_unit.py").write_text(
        "import sys\n\n"
        "def test_no_page_machinery():\n"
        "    heavy = {'pagerun', 'pagecache', 'nbmake', 'nbclient', 'matplotlib',\n"
        "             'transferlens.tutorial'}\n"
        "    assert heavy & set(sys.modules) == set()\n"
    )
    result = _run(project, "test_unit.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "transferlens assets" not in result.stdout  # the asset mode was never resolved
    assert "Learn more about nbmake" not in result.stdout  # nbmake collected nothing
    assert not (project / "build").exists()


# --- the cache key ------------------------------------------------------------------------------


def test_the_key_covers_the_page_the_source_in_subfolders_and_the_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _scratch_project(tmp_path)
    _use_project(monkeypatch, project)
    page = project / "docs/page.ipynb"
    nbformat.write(_notebook("x = 1"), str(page))
    key = pagecache.page_key(page, "standin")
    assert pagecache.page_keys([page], "standin") == {page: key}
    assert pagecache.page_key(page, "real") != key
    (project / "src/transferlens/sub/module.py").write_text("VALUE = 2\n")  # a subfolder's file
    assert pagecache.page_key(page, "standin") != key
    key = pagecache.page_key(page, "standin")
    nbformat.write(_notebook("x = 2"), str(page))
    assert pagecache.page_key(page, "standin") != key


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


# --- the kernel start: one at a time, retried -----------------------------------------------------


class _FakeKernelClient:
    async def stop_channels(self) -> None:
        pass


def test_a_kernel_that_dies_on_start_is_started_again_under_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = tmp_path / "kernel-start.lock"
    monkeypatch.setattr(pagerun, "KERNEL_START_LOCK", lock)
    calls: list[tuple[str, bool]] = []

    def lock_held() -> bool:
        with open(lock, "a") as other:  # another open file: flock conflicts with the holder
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(other, fcntl.LOCK_UN)
            return False

    async def start_kernel(self: NotebookClient, **kwargs: Any) -> None:
        calls.append(("kernel", lock_held()))

    async def start_client(self: NotebookClient) -> Any:
        calls.append(("client", lock_held()))
        if len(calls) == 2:  # the first kernel dies before answering, as nbclient reports it
            self.km = None
            raise RuntimeError("Kernel died before replying to kernel_info")
        self.kc = _FakeKernelClient()
        return self.kc

    monkeypatch.setattr(NotebookClient, "async_start_new_kernel", start_kernel)
    monkeypatch.setattr(NotebookClient, "async_start_new_kernel_client", start_client)
    client = pagerun.PageClient(_notebook("x = 1"))

    async def set_up() -> None:
        async with client.async_setup_kernel():  # how nbclient's execute starts its kernel
            assert isinstance(client.kc, _FakeKernelClient)

    asyncio.run(set_up())
    # started twice, each time kernel then client, always under the lock; nbclient started no
    # client of its own
    assert calls == [("kernel", True), ("client", True), ("kernel", True), ("client", True)]
    assert not lock_held()  # released afterwards

    calls.clear()
    monkeypatch.setattr(NotebookClient, "async_start_new_kernel_client", _dies)
    with pytest.raises(RuntimeError, match="Kernel died"):
        asyncio.run(pagerun.PageClient(_notebook("x = 1")).async_start_new_kernel())
    assert len(calls) == pagerun.KERNEL_START_ATTEMPTS
    assert not lock_held()


async def _dies(self: NotebookClient) -> Any:
    self.km = None
    raise RuntimeError("Kernel died before replying to kernel_info")


# --- nbmake's interface: an nbmake upgrade that changes it fails here first -------------------


def test_nbmake_still_has_the_interface_the_page_machinery_uses() -> None:
    # pages_plugin loads nbmake's plugin through its entry point, whole
    (entry,) = importlib.metadata.entry_points(group="pytest11", name="nbmake")
    assert entry.load() is pytest_plugin
    assert callable(pytest_plugin.pytest_addoption) and callable(pytest_plugin.pytest_collect_file)
    # pagerun wraps the run of nbmake's item and reads its page path
    assert "filename" in inspect.signature(pytest_items.NotebookItem.__init__).parameters
    # the one private touch point: NotebookRun.execute builds nbclient's client via this global
    assert nb_run.NotebookClient is NotebookClient
    assert "NotebookClient" in nb_run.NotebookRun.execute.__code__.co_names, (
        "nbmake's NotebookRun.execute no longer builds its client through "
        "nbmake.nb_run.NotebookClient: update page_clients in tools/pagerun.py"
    )
    # a failed cell is raised as NotebookFailedException(NotebookResult); the same exception,
    # raised by pagerun, is reported by nbmake with pagerun's summary
    assert "NotebookFailedException" in pytest_items.NotebookItem.runtest.__code__.co_names
    summary = "docs/p.ipynb cell 1: boom"
    result = nb_result.NotebookResult(nb=None, error=nb_result.NotebookError(summary, "t", 1))
    with pytest.raises(pytest_items.NotebookFailedException) as failure:
        raise pytest_items.NotebookFailedException(result)
    shown = pytest_items.NotebookItem.repr_failure(None, failure)  # self unused: no item needed
    assert shown.reprcrash.message == summary


def test_page_clients_swaps_for_one_run_and_refuses_an_unknown_nbmake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pagerun.page_clients() as clients:
        client = nb_run.NotebookClient(_notebook("x = 1"), timeout=5)
        assert isinstance(client, pagerun.PageClient) and clients == [client]
    assert nb_run.NotebookClient is NotebookClient
    monkeypatch.setattr(nb_run, "NotebookClient", object)
    with pytest.raises(pagerun.NbmakeChanged, match="update page_clients"):
        with pagerun.page_clients():
            pass
