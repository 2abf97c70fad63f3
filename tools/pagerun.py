"""One page run: nbmake executes the page; this module publishes, measures and checks it.

``pages_plugin`` registers this module as a pytest plugin only when a run executes pages, so a
unit-test run never imports it. It builds on nbmake's own classes:

- ``PageItem`` is nbmake's ``NotebookItem`` (swapped in after nbmake has collected, through
  pytest's ``pytest_collection_modifyitems`` hook); its ``runtest`` runs a ``PageRun``;
- ``PageRun`` is nbmake's ``NotebookRun``: nbmake executes the page as it always does, then the
  run coalesces stream outputs, checks stderr and determinism, publishes the executed notebook
  to ``build/executed/`` and records seconds and peak memory;
- ``PageClient`` is nbclient's ``NotebookClient`` with serialised kernel starts and a
  peak-memory reading per cell.

nbmake has no public way to choose the ``NotebookClient`` it builds, so ``nbmake_client`` is the
one private hook: it is the only code that touches nbmake's module globals, it fails the page
with a clear message when nbmake stops building its client through it, and
``tests/test_pages_plugin.py`` checks nbmake's interface so an nbmake upgrade that breaks it
fails there first.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pagecache
import pytest
from nbclient.client import NotebookClient
from nbmake import nb_run
from nbmake.nb_result import NotebookError, NotebookResult
from nbmake.pytest_items import NotebookFailedException, NotebookItem

KERNEL_START_ATTEMPTS = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run each page nbmake collected as a ``PageItem`` (same node id, same parent)."""
    for index, item in enumerate(items):
        if type(item) is NotebookItem:
            page = PageItem.from_parent(item.parent, filename=item.filename)
            page.own_markers = item.own_markers
            page.keywords.update(item.keywords)
            items[index] = page


class PageItem(NotebookItem):
    """nbmake's notebook test item, running a ``PageRun`` instead of a plain ``NotebookRun``."""

    def runtest(self) -> None:
        option = self.config.option
        source = Path(self.config.rootdir) / self.filename
        run = PageRun(
            source,
            option.nbmake_timeout,
            verbose=bool(option.verbose),
            kernel=option.nbmake_kernel,
            find_import_errors=option.nbmake_find_import_errors,
        )
        result = run.execute()
        if option.overwrite:  # nbmake's --overwrite, kept as nbmake does it
            nbformat.write(result.nb, str(source))
        if result.error is not None:
            raise NotebookFailedException(result)


# --- the one private hook into nbmake ---------------------------------------------------------


class NbmakeChanged(Exception):
    """nbmake no longer builds its NotebookClient the way ``nbmake_client`` expects."""


@contextlib.contextmanager
def nbmake_client(factory: Callable[..., NotebookClient]) -> Iterator[None]:
    """Make nbmake's ``NotebookRun.execute`` build its client with ``factory``, for one run.

    nbmake (1.5.x) creates ``NotebookClient(nb, timeout=..., ...)`` inside ``execute`` through the
    module global ``nbmake.nb_run.NotebookClient``, and offers no argument or hook to pass
    another client class. This swaps that global and puts nbclient's class back afterwards.
    """
    if getattr(nb_run, "NotebookClient", None) is not NotebookClient:
        raise NbmakeChanged(
            "nbmake.nb_run.NotebookClient is not nbclient's NotebookClient: this nbmake "
            "builds its client differently; update nbmake_client in tools/pagerun.py"
        )
    nb_run.NotebookClient = factory  # type: ignore[assignment, misc]
    try:
        yield
    finally:
        nb_run.NotebookClient = NotebookClient  # type: ignore[misc]


# --- the kernel: one start at a time, measured ----------------------------------------------------


class PageClient(NotebookClient):
    """nbclient's client with serialised kernel starts and a peak-memory reading per cell."""

    peak_rss_mb: float = 0.0
    cells_run: int = 0

    async def async_start_new_kernel(self, **kwargs: Any) -> None:
        self._start_lock = _kernel_start_lock()
        self._start_lock.__enter__()
        try:
            await super().async_start_new_kernel(**kwargs)
        except BaseException:
            self._start_lock.__exit__(None, None, None)
            raise

    async def async_start_new_kernel_client(self) -> Any:
        try:
            return await super().async_start_new_kernel_client()
        finally:
            lock = getattr(self, "_start_lock", None)
            if lock is not None:
                lock.__exit__(None, None, None)
                self._start_lock = None

    async def async_execute_cell(self, *args: Any, **kwargs: Any) -> Any:
        self.cells_run += 1
        try:
            return await super().async_execute_cell(*args, **kwargs)
        finally:
            self.peak_rss_mb = max(self.peak_rss_mb, _kernel_peak_rss_mb(self))


@contextlib.contextmanager
def _kernel_start_lock_impl() -> Any:
    pagecache.BUILD.mkdir(parents=True, exist_ok=True)
    with open(pagecache.BUILD / ".kernel-start.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kernel_start_lock() -> contextlib.AbstractContextManager[Any]:
    return _kernel_start_lock_impl()


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


# --- one page run -----------------------------------------------------------------------------


class PageRun(nb_run.NotebookRun):
    """nbmake's NotebookRun, plus publishing, measuring and the stderr/determinism checks."""

    def execute(self) -> NotebookResult:
        page = Path(self.filename).resolve()
        mode = os.environ.get("TRANSFERLENS_ASSETS", "auto")
        key = pagecache.page_key(page, mode)
        previous = _read_notebook(pagecache.executed_path(page))
        clients: list[PageClient] = []

        def make_client(*args: Any, **kwargs: Any) -> PageClient:
            client = PageClient(*args, **kwargs)
            clients.append(client)
            return client

        start = time.perf_counter()
        result = None
        for attempt in range(1, KERNEL_START_ATTEMPTS + 1):
            try:
                with nbmake_client(make_client):
                    result = super().execute()
                break
            except RuntimeError:  # the kernel died or never answered
                started = clients and clients[-1].cells_run > 0
                if started or attempt == KERNEL_START_ATTEMPTS:
                    raise
        assert result is not None
        if not clients:
            raise NbmakeChanged(
                "nbmake ran the page without building its client through "
                "nbmake.nb_run.NotebookClient: kernel starts were not serialised and memory "
                "was not measured; update nbmake_client in tools/pagerun.py"
            )
        seconds = time.perf_counter() - start
        peak = max(c.peak_rss_mb for c in clients)

        coalesce_streams(result.nb)
        if result.error is None:
            result = NotebookResult(nb=result.nb, error=_stderr_error(result.nb))
        compared = previous is not None and _key_of(previous) == key
        if result.error is None and compared:
            result = NotebookResult(nb=result.nb, error=_drift_error(previous, result.nb))
        if result.error is not None:
            summary = _ANSI.sub("", result.error.summary)
            if not summary.startswith("cell "):
                summary = f"cell {result.error.failing_cell_index}: {summary}"
            summary = f"{pagecache.page_name(page)} {summary}"
            result = NotebookResult(
                nb=result.nb,
                error=NotebookError(
                    summary=summary,
                    trace=f"{summary}\n{result.error.trace}",
                    failing_cell_index=result.error.failing_cell_index,
                ),
            )

        status = "passed" if result.error is None else "failed"
        _publish(page, result.nb, key, mode, status)
        _record(page, seconds, peak, status, mode, _count_asserts(result.nb), compared)
        return result


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


def _key_of(nb: Any) -> str | None:
    return (nb.metadata.get(pagecache.METADATA_KEY) or {}).get("key")


def _code_cells(nb: Any) -> list[tuple[int, Any]]:
    return [(i, cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]


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


def _publish(page: Path, nb: Any, key: str, mode: str, status: str) -> None:
    target = pagecache.executed_path(page)
    if status != "passed":
        target.unlink(missing_ok=True)  # never leave a stale copy for the site to publish
        return
    nb.metadata[pagecache.METADATA_KEY] = {"key": key, "assets": mode}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, str(tmp))
    tmp.replace(target)


def _record(
    page: Path, seconds: float, peak: float, status: str, mode: str, asserts: int, compared: bool
) -> None:
    record = {
        "page": pagecache.page_name(page),
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak, 1),
        "status": status,
        "assets": mode,
        "asserts": asserts,
        # outputs compared with the previous run of identical inputs (the determinism check)
        "compared_with_previous_run": compared,
        "finished": _now(),
    }
    target = pagecache.record_path(page)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
