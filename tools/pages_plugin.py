"""pytest plugin that makes nbmake's page runs publishable, measured and safe to run in parallel.

nbmake executes each page (``pytest --nbmake docs/``). For every page run, this plugin (through
``pagerun``, the page machinery)

- keeps the executed notebook in ``build/executed/`` with its cache key, for ``make site`` to
  render without executing again (a failed page removes its stale copy, so it cannot be
  published);
- records seconds and the kernel's peak RSS in ``build/execution/`` and, at the end of the run,
  ``build/execution.json`` plus a short table;
- fails a page that writes to stderr (a warning that would be published on the site) or whose
  outputs differ from the previous run with identical inputs (non-determinism), naming the cell;
  stream outputs are coalesced first, so a ``print`` compares (and publishes) the same whether
  the kernel sent it as one message or two;
- starts kernels one at a time across pytest-xdist workers (a file lock held from launch until
  the kernel answers), which closes the port race nbmake users report under xdist ("Address
  already in use", "Kernel died before replying"), and retries a kernel that dies on start.

It also resolves ``TRANSFERLENS_ASSETS=auto`` once, in the controlling process, so every page and
the cache keys agree on the mode.

The plugin is loaded for every pytest run (``addopts``), but a run that executes no page pays for
none of this: the page machinery (nbmake itself, the asset probe, matplotlib's warm-up,
``pagerun``) is imported and started only when the run executes pages, that is when
``--nbmake`` is given or an argument (or, with none, a ``testpaths`` entry) is a notebook or a
folder holding notebooks.
``pytest docs/page.ipynb`` therefore runs the page as ``pytest --nbmake docs/page.ipynb`` would.
"""

from __future__ import annotations

import fnmatch
import os
import time
from pathlib import Path
from typing import Any

import pagecache
import pytest


def pytest_addoption(parser: pytest.Parser, pluginmanager: pytest.PytestPluginManager) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        default=False,
        help="collect tests/browser (real-browser tests of the built site; see make test-browser)",
    )
    if pluginmanager.is_blocked("nbmake"):
        add_nbmake_options(parser.getgroup("nbmake", "notebook testing"))


# --- nbmake, loaded only for page runs ----------------------------------------------------------
#
# Importing nbmake's plugin costs about a second (nbclient, jupyter_client, pygments, nbformat),
# so pyproject's addopts block its entry point (`-p no:nbmake`): a run without pages never
# imports it. This plugin then declares nbmake's options (so `pytest --nbmake docs/` and
# `--nbmake-timeout` work as always), and a page run registers nbmake's own collection and
# summary hooks. tests/test_pages_plugin.py checks that these options are exactly nbmake's.
# Without `-p no:nbmake` (another config file), nbmake loads as usual and none of this applies.


def add_nbmake_options(group: Any) -> None:
    """Declare nbmake's command-line options, as ``nbmake.pytest_plugin.pytest_addoption`` does."""
    group.addoption("--nbmake", action="store_true", help="Test notebooks", default=False)
    group.addoption(
        "--overwrite", action="store_true", help="Overwrite the source ipynbs", default=False
    )
    group.addoption(
        "--nbmake-timeout",
        action="store",
        help="Sets the default cell timeout (seconds)",
        default=300,
        type=int,
    )
    group.addoption(
        "--nbmake-kernel",
        action="store",
        help="Overrides the kernel used for all notebooks",
        type=str,
    )
    group.addoption(
        "--nbmake-find-import-errors",
        action="store_true",
        help="Runs all cells, only reports import errors",
        default=False,
    )


class NbmakeHooks:
    """nbmake's own collection and summary hooks, registered for page runs when nbmake is
    blocked (its options come from ``add_nbmake_options``)."""

    def __init__(self) -> None:
        from nbmake import pytest_plugin

        self.pytest_collect_file = pytest_plugin.pytest_collect_file
        self.pytest_terminal_summary = pytest_plugin.pytest_terminal_summary


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "browser" and collection_path.parent.name == "tests":
        return None if config.getoption("--browser") else True
    return None


def pages_requested(config: pytest.Config) -> bool:
    """Whether this run executes pages: ``--nbmake``, or a notebook among what it collects."""
    if not hasattr(config.option, "nbmake"):  # nbmake blocked and its options not declared
        return False
    if config.getoption("nbmake", False):
        return True
    skipped = config.getini("norecursedirs")
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.suffix == ".ipynb" and path.is_file():
            return True
        if path.is_dir() and _holds_notebooks(path, skipped):
            return True
    return False


def _holds_notebooks(folder: Path, skipped: list[str]) -> bool:
    for _, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not any(fnmatch.fnmatch(d, pattern) for pattern in skipped)]
        if any(name.endswith(".ipynb") for name in files):
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if not pages_requested(config):
        return  # no page in this run: no asset probe, no matplotlib, no nbmake collection
    config.option.nbmake = True  # `pytest docs/page.ipynb` runs the page, as `--nbmake` does
    if config.pluginmanager.is_blocked("nbmake"):
        config.pluginmanager.register(NbmakeHooks(), "transferlens-nbmake")
    if not hasattr(config, "workerinput"):  # the controlling process, before workers start
        from transferlens.tutorial import resolve_asset_mode

        mode, reason = resolve_asset_mode()
        os.environ["TRANSFERLENS_ASSETS"] = mode
        config.stash[_mode_key] = (mode, reason)
        if mode == "real":  # each real download once, before parallel kernels race for it
            from transferlens.tutorial import fetch_real_assets

            fetch_real_assets()
        config.stash[_started_key] = _now()
        # One thread per kernel, however many pages run at once: pages run in parallel across
        # the cores instead, and a page's floating-point results do not depend on how many
        # pages ran beside it (the determinism check compares runs).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
        _warm_matplotlib()
    import pagerun  # the page machinery: imported (and registered) only for page runs

    config.pluginmanager.register(pagerun, "transferlens-pagerun")


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
    if hasattr(config, "workerinput") or not getattr(config.option, "nbmake", False):
        return
    records = pagecache.write_report()
    started = config.stash.get(_started_key, "")
    if any(rec.get("finished", "") >= started for rec in records):  # pages ran in this session
        terminalreporter.section("page execution (build/execution.json)")
        terminalreporter.write_line(pagecache.format_table(records))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
