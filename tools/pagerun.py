"""One page run, from collection to the published copy.

``pages_plugin`` registers this module as a pytest plugin only for runs that execute pages.

1. nbmake collects each page as its own ``NotebookItem``; nothing here changes collection.
2. ``pytest_runtest_call`` wraps that item's run. While nbmake runs the page, its
   ``NotebookRun`` builds its nbclient client as a ``PageClient`` (``page_clients``): the
   kernel starts under a lock shared by all processes, a kernel that dies on start is started
   again, and the kernel's peak memory is read after every cell.
3. After nbmake has executed the page (passed or failed), the executed notebook is the client's
   ``nb``. Its stream outputs are coalesced; a page that wrote to stderr fails, and so does a
   page whose prose states a number no output shows and no source backs (``prose_numbers``);
   its outputs are compared with a run of identical inputs, naming the first cell that differs:
   the copy of the same key in build/executed/ (``make test``: when there is one), else, with
   ``--check-determinism`` (``make test-pages``), a second execution of the page.
4. A passing page is published to build/executed/ stamped with its cache key (``pagecache``); a
   failing page's copy is removed, so the site cannot publish a stale one. Seconds, the kernel's
   peak RSS and the number of asserts go to build/execution/<page>.json.
5. At the end of the run, build/execution.json and the table (``pytest_terminal_summary``).

nbmake has no public way to choose its client, so ``page_clients`` replaces the module global
``nbmake.nb_run.NotebookClient`` for one run: the one private touch point into nbmake. It fails
the page with a clear message when nbmake stops building its client through that name, and
``tests/test_pages_plugin.py`` checks nbmake's interface, so an nbmake upgrade that breaks it
fails there first. Failures are raised as nbmake's own ``NotebookFailedException``, so nbmake
reports them as it reports a failing cell.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pagecache
import prose_numbers
import pytest
from nbclient.client import NotebookClient
from nbmake import nb_run
from nbmake.nb_result import NotebookError, NotebookResult
from nbmake.pytest_items import NotebookFailedException, NotebookItem

from transferlens.tutorial import file_lock

KERNEL_START_ATTEMPTS = 3
KERNEL_START_LOCK = pagecache.BUILD / ".kernel-start.lock"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- one page run -------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Run nbmake's item, then check, publish and record the page (see the module docstring)."""
    if not isinstance(item, NotebookItem):
        return (yield)
    page = Path(item.filename).resolve()
    mode = os.environ.get("TRANSFERLENS_ASSETS", "auto")
    key = pagecache.page_key(page, mode)
    previous, baseline = _read_notebook(pagecache.executed_path(page)), "published copy"
    if previous is not None and (pagecache.stamp_of(previous) or {}).get("key") != key:
        previous = None  # made from other inputs: nothing to compare with
    nb, error, compared_with, seconds = None, None, None, None
    checked = False  # the run and every check completed (an exception leaves it False)
    start = time.perf_counter()
    with page_clients() as clients:
        try:
            try:
                yield  # nbmake's NotebookItem.runtest executes the page
            except NotebookFailedException as failure:  # a cell failed, as nbmake reports it
                error = failure.args[0].error
            seconds = time.perf_counter() - start
            nb = coalesce_streams(_executed(clients))
            error = error or _stderr_error(nb) or _unsourced_error(nb)
            if error is None and previous is None and item.config.getoption("check_determinism"):
                previous, baseline = nb, "second execution"
                error = _nbmake_error(item.runtest)  # nbmake executes the page again
                nb = coalesce_streams(_executed(clients))
            if error is None and previous is not None:
                error, compared_with = _drift_error(previous, nb), baseline
            checked = True
        finally:  # also when nbmake itself failed (no such kernel, a kernel that kept dying)
            passed = checked and error is None
            if passed:
                pagecache.publish(page, nb, key, mode)
            else:
                pagecache.unpublish(page)  # never leave a stale copy for the site to publish
            pagecache.write_record(
                page,
                {
                    "page": pagecache.page_name(page),
                    "seconds": round(seconds or time.perf_counter() - start, 2),  # 1st execution
                    "peak_rss_mb": round(max((c.peak_rss_mb for c in clients), default=0.0), 1),
                    "status": "passed" if passed else "failed",
                    "assets": mode,
                    "asserts": 0 if nb is None else _count_asserts(nb),
                    # the determinism check: outputs compared with a run of identical inputs,
                    # the published copy of the same key or a second execution
                    "compared_with_previous_run": compared_with is not None,
                    "compared_with": compared_with,
                    "finished": _now(),
                },
            )
    if error is not None:
        raise NotebookFailedException(NotebookResult(nb=nb, error=_named(page, error)))
    return None


def _nbmake_error(runtest: Callable[[], object]) -> NotebookError | None:
    """Run nbmake's ``runtest``; the error of the cell that failed, if one did."""
    try:
        runtest()
    except NotebookFailedException as failure:
        return failure.args[0].error
    return None


def _executed(clients: list[PageClient]) -> Any:
    """The notebook nbmake just executed: its client's (nbmake returns that same object)."""
    if not clients:
        raise NbmakeChanged(
            "nbmake ran the page without building its client through "
            "nbmake.nb_run.NotebookClient: kernel starts were not serialised and memory "
            "was not measured; update page_clients in tools/pagerun.py"
        )
    return clients[-1].nb


def _named(page: Path, error: NotebookError) -> NotebookError:
    """The error with the page and the cell in its summary (the line pytest's summary shows)."""
    summary = _ANSI.sub("", error.summary)
    if not summary.startswith("cell "):
        summary = f"cell {error.failing_cell_index}: {summary}"
    summary = f"{pagecache.page_name(page)} {summary}"
    return NotebookError(
        summary=summary,
        trace=f"{summary}\n{error.trace}",
        failing_cell_index=error.failing_cell_index,
    )


# --- the one private touch point into nbmake ------------------------------------------------------


class NbmakeChanged(Exception):
    """nbmake no longer builds its NotebookClient the way ``page_clients`` expects."""


@contextmanager
def page_clients() -> Iterator[list[PageClient]]:
    """While open, nbmake's ``NotebookRun.execute`` builds a ``PageClient``; yields those built.

    nbmake (1.5.x) creates ``NotebookClient(nb, timeout=..., ...)`` inside ``execute`` through the
    module global ``nbmake.nb_run.NotebookClient`` and offers no argument or hook to pass another
    client class. This replaces that global with a factory that keeps each client it builds, and
    puts nbclient's class back afterwards.
    """
    if getattr(nb_run, "NotebookClient", None) is not NotebookClient:
        raise NbmakeChanged(
            "nbmake.nb_run.NotebookClient is not nbclient's NotebookClient: this nbmake "
            "builds its client differently; update page_clients in tools/pagerun.py"
        )
    built: list[PageClient] = []

    def build(*args: Any, **kwargs: Any) -> PageClient:
        built.append(PageClient(*args, **kwargs))
        return built[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nb_run, "NotebookClient", build)
        yield built


# --- the kernel: one start at a time, measured ----------------------------------------------------


class PageClient(NotebookClient):
    """nbclient's client, with kernel starts serialised across processes and memory measured.

    Kernels started side by side (pytest-xdist workers) race for the ports jupyter_client picks
    ("Address already in use", "Kernel died before replying to kernel_info"). Here one process at
    a time starts a kernel and waits until it answers, holding a file lock, and a kernel that dies
    on start is started again (``KERNEL_START_ATTEMPTS`` starts in all).
    """

    peak_rss_mb: float = 0.0

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        """Start the kernel and its client under the kernel-start lock, retrying a failed start.

        nbclient's ``async_setup_kernel`` starts a client only when there is none yet, so the
        client started here is the one it then uses.
        """
        KERNEL_START_LOCK.parent.mkdir(parents=True, exist_ok=True)
        with file_lock(KERNEL_START_LOCK):
            for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
                if self.km is None:  # nbclient drops the manager of a kernel that died
                    self.create_kernel_manager()
                try:
                    await super().async_start_new_kernel(**kwargs)
                    await self.async_start_new_kernel_client()
                    return
                except RuntimeError:  # the kernel died or never answered
                    if attempt == KERNEL_START_ATTEMPTS:
                        raise

    async def async_execute_cell(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().async_execute_cell(*args, **kwargs)
        finally:
            self.peak_rss_mb = max(self.peak_rss_mb, _kernel_peak_rss_mb(self))


def _kernel_peak_rss_mb(client: NotebookClient) -> float:
    """The kernel's high-water resident memory (VmHWM), in MB; 0 when unknown."""
    pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
    if not pid:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


# --- the report at the end of the run -------------------------------------------------------------

_started_key = pytest.StashKey[str]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_started_key] = _now()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    records = pagecache.write_report()
    started = config.stash.get(_started_key, "")
    ran = [rec for rec in records if rec.get("finished", "") >= started]  # in this session
    if ran:
        terminalreporter.section("page execution (build/execution.json)")
        terminalreporter.write_line(pagecache.format_table(ran))
        if len(ran) < len(records):
            others = len(records) - len(ran)
            terminalreporter.write_line(f"({others} more pages from earlier runs in that file)")


# --- what is compared and published ---------------------------------------------------------

# A carriage return that is not part of a line ending: the text before it was overwritten
# (nbconvert's CoalesceStreamsPreprocessor uses the same pattern).
_OVERWRITTEN = re.compile(r".*\r(?=[^\n])")


def coalesce_streams(nb: Any) -> Any:
    """Merge consecutive stream outputs of the same stream in every code cell, in place.

    The kernel sends a ``print`` as one message (``"text\\n"``) or as two (``"text"``,
    ``"\\n"``), as its output buffer happens to be flushed; the notebook records each message as
    an output. Merged, both read the same, so the determinism check compares what the cell
    printed, not how it was sent. This is what nbconvert's ``CoalesceStreamsPreprocessor`` does
    when it renders a notebook (and, like it, it drops text a carriage return overwrote).
    """
    for cell in nb.cells:
        outputs = cell.get("outputs") if cell.get("cell_type") == "code" else None
        if not outputs:
            continue
        merged = [outputs[0]]
        for output in outputs[1:]:
            last = merged[-1]
            if (
                output.get("output_type") == "stream"
                and last.get("output_type") == "stream"
                and last.get("name") == output.get("name")
            ):
                last["text"] = _text(last) + _text(output)
            else:
                merged.append(output)
        for output in merged:
            if output.get("output_type") == "stream":
                output["text"] = _OVERWRITTEN.sub("", _text(output))
        cell["outputs"] = merged
    return nb


def _text(output: Any) -> str:
    text = output.get("text", "")
    return text if isinstance(text, str) else "".join(text)


def _read_notebook(path: Path) -> Any:
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:  # missing or damaged: there is simply nothing to compare with
        return None


def _code_cells(nb: Any) -> list[tuple[int, Any]]:
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


def _unsourced_error(nb: Any) -> NotebookError | None:
    """A number in the prose that neither the run nor a named source backs (prose_numbers)."""
    found = prose_numbers.unsourced_numbers(nb)
    if not found:
        return None
    listed = "\n".join(f"  {problem}" for problem in found)
    return NotebookError(
        summary=f"markdown cell {found[0].cell} states {found[0].number!r}, which no output shows",
        trace=(
            f"{len(found)} number(s) in the prose appear in none of the page's outputs or code, "
            f"and their sentences name no source (tools/prose_numbers.py):\n{listed}\n"
            "Print the number in the cell beside it, name where it comes from (fastbook, "
            "fastai's source, ...), or drop it."
        ),
        failing_cell_index=found[0].cell,
    )


def _stderr_error(nb: Any) -> NotebookError | None:
    """A page that writes to stderr would publish the warning on the site: fail it instead."""
    for index, cell in _code_cells(nb):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = _text(output)
                first = text.strip().splitlines()[0] if text.strip() else "(empty)"
                return NotebookError(
                    summary=f"cell {index} wrote to stderr: {first}",
                    trace=(
                        f"cell {index} wrote to stderr, which the site would publish:\n{text}\n"
                        "Handle the warning at its source (fix the call, or filter that one "
                        "warning in the page's setup cell, saying why)."
                    ),
                    failing_cell_index=index,
                )
    return None


def _comparable_outputs(nb: Any) -> list[tuple[int, str]]:
    """Each code cell's outputs, streams coalesced, without the timings nbclient records."""
    comparable = []
    for index, cell in _code_cells(coalesce_streams(nb)):
        outputs = [
            {k: v for k, v in output.items() if k not in ("execution_count", "metadata")}
            for output in cell.get("outputs", [])
        ]
        comparable.append((index, json.dumps(outputs, sort_keys=True)))
    return comparable


def _drift_error(previous: Any, current: Any) -> NotebookError | None:
    """Identical inputs must give identical outputs; name the first cell where they do not."""
    for (index, before), (_, after) in zip(
        _comparable_outputs(previous), _comparable_outputs(current), strict=False
    ):
        if before != after:
            return NotebookError(
                summary=f"cell {index} is not deterministic: its outputs differ from the "
                "previous run with identical inputs",
                trace=f"before:\n{before[:2000]}\n\nafter:\n{after[:2000]}\n\nSeed the random "
                "number generators (torch.manual_seed, fastai's set_seed) and avoid printing "
                "timings or addresses.",
                failing_cell_index=index,
            )
    return None


def _count_asserts(nb: Any) -> int:
    count = 0
    for _, cell in _code_cells(nb):
        source = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        count += sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
    return count


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
