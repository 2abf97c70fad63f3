"""pytest plugin that makes nbmake's page runs publishable, measured and safe to run in parallel.

nbmake executes each page (``pytest --nbmake docs/``). This plugin wraps its ``NotebookRun`` so that
every run also

- keeps the executed notebook in ``build/executed/`` with its cache key, for ``make site`` to
  render without executing again (a failed page removes its stale copy, so it cannot be
  published);
- records seconds and the kernel's peak RSS in ``build/execution/`` and, at the end of the run,
  ``build/execution.json`` plus a short table;
- fails a page that writes to stderr (a warning that would be published on the site) or whose
  outputs differ from the previous run with identical inputs (non-determinism), naming the cell;
- starts kernels one at a time across pytest-xdist workers (a file lock held from launch until
  the kernel answers), which closes the port race nbmake users report under xdist ("Address
  already in use", "Kernel died before replying"), and retries a kernel that dies on start.

It also resolves ``TRANSFERLENS_ASSETS=auto`` once, in the controlling process, so every page and
the cache keys agree on the mode.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import pagecache
import pytest
from nbclient.client import NotebookClient
from nbmake import nb_run, pytest_items
from nbmake.nb_result import NotebookError, NotebookResult

KERNEL_START_ATTEMPTS = 3
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        default=False,
        help="collect tests/browser (real-browser tests of the built site; see make test-browser)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "browser" and collection_path.parent.name == "tests":
        return None if config.getoption("--browser") else True
    return None


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the controlling process, before workers start
        from transferlens.tutorial import resolve_asset_mode

        mode, reason = resolve_asset_mode()
        os.environ["TRANSFERLENS_ASSETS"] = mode
        config.stash[_mode_key] = (mode, reason)
        config.stash[_started_key] = _now()
        # One thread per kernel, however many pages run at once: pages run in parallel across
        # the cores instead, and a page's floating-point results do not depend on how many
        # pages ran beside it (the determinism check compares runs).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
        _warm_matplotlib()
    pytest_items.NotebookRun = RecordingNotebookRun


def _warm_matplotlib() -> None:
    """Build matplotlib's font cache before any page runs.

    On a machine (or a HOME) where it does not exist yet, matplotlib builds it on first import and
    says so on stderr, inside whichever page imported it first. The cache lives in build/, so a
    fresh HOME reuses it too.
    """
    os.environ.setdefault("MPLCONFIGDIR", str(pagecache.BUILD / "matplotlib"))
    import matplotlib.font_manager  # noqa: F401


_mode_key = pytest.StashKey[tuple[str, str]]()
_started_key = pytest.StashKey[str]()


def pytest_report_header(config: pytest.Config) -> str | None:
    mode, reason = config.stash.get(_mode_key, ("", ""))
    if not mode:
        return None
    return f"transferlens assets: {mode}" + (f" ({reason})" if reason else "")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not config.option.nbmake:
        return
    records = pagecache.write_report()
    started = config.stash.get(_started_key, "")
    if any(rec.get("finished", "") >= started for rec in records):  # pages ran in this session
        terminalreporter.section("page execution (build/execution.json)")
        terminalreporter.write_line(pagecache.format_table(records))


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


class RecordingNotebookRun(nb_run.NotebookRun):
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
            nb_run.NotebookClient = make_client  # type: ignore[assignment, misc]
            try:
                result = super().execute()
                break
            except RuntimeError:  # the kernel died or never answered
                started = clients and clients[-1].cells_run > 0
                if started or attempt == KERNEL_START_ATTEMPTS:
                    raise
            finally:
                nb_run.NotebookClient = NotebookClient  # type: ignore[misc]
        assert result is not None
        seconds = time.perf_counter() - start
        peak = max((c.peak_rss_mb for c in clients), default=0.0)

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
                text = "".join(output.get("text", ""))
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
    """Each code cell's outputs, without the execution timings nbclient records."""
    comparable = []
    for index, cell in _code_cells(nb):
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
