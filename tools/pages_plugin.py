"""pytest plugin, loaded for every run: turns the page machinery on for runs that execute pages.

A run executes pages when ``--nbmake`` (or another nbmake option) is given, or when what it
collects holds a notebook: an argument that is a notebook or a folder holding one, or, with no
argument, a ``testpaths`` entry that does (``make test``). ``pytest docs/page.ipynb`` therefore
runs the page as ``pytest --nbmake docs/page.ipynb`` would. For such a run this plugin

- loads nbmake, whose entry point pyproject's addopts block (``-p no:nbmake``): importing it costs
  about a second (nbclient, jupyter_client, pygments, nbformat), so a unit-test run such as
  ``pytest tests/test_head.py`` never imports it. It is loaded whole (its options, collection and
  summary hooks are nbmake's own) from ``pytest_load_initial_conftests``, the last hook before
  pytest parses the command line, so ``--nbmake-timeout`` and the other nbmake options parse;
- resolves ``TRANSFERLENS_ASSETS=auto`` once, in the controlling process, so every page and the
  cache keys agree on the mode (in ``real`` mode it downloads each asset once, before pages run
  in parallel), sets one torch thread per kernel and builds matplotlib's font cache;
- registers ``pagerun`` (one page run: publish, measure, check; see its docstring).

A run that executes no page pays for none of this: no nbmake, no asset probe, no matplotlib, no
``pagerun``. The decision is taken before pytest has resolved its arguments, so it repeats
pytest's rule (arguments, else ``testpaths`` when run from the root directory, else the current
folder); ``pytest_configure`` checks it against the arguments pytest then resolved.

``--check-determinism`` (``make test-pages``) makes ``pagerun`` compare every page with a run of
identical inputs (see ``pagerun``).
"""

from __future__ import annotations

import fnmatch
import glob
import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--browser",
        action="store_true",
        default=False,
        help="collect tests/browser (real-browser tests of the built site; see make test-browser)",
    )
    parser.getgroup("transferlens pages").addoption(
        "--check-determinism",
        action="store_true",
        default=False,
        help="compare every page's outputs with a run of identical inputs: its published copy "
        "of the same key, else a second execution (make test-pages)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.name == "browser" and collection_path.parent.name == "tests":
        return None if config.getoption("--browser") else True
    return None


# --- is this a page run? -------------------------------------------------------------------------

_pages_key = pytest.StashKey[bool]()  # nbmake is loaded and pages run
_paths_hold_pages_key = pytest.StashKey[bool]()  # what the early decision found in the paths


def pytest_load_initial_conftests(early_config: pytest.Config, args: list[str]) -> None:
    """Load nbmake for a run that executes pages, before pytest parses the command line."""
    paths = early_config.known_args_namespace.file_or_dir
    if not paths and early_config.invocation_params.dir == early_config.rootpath:
        paths = [
            path
            for entry in early_config.getini("testpaths")
            for path in sorted(glob.glob(entry, root_dir=early_config.rootpath, recursive=True))
        ]
    holds = holds_pages(paths or ["."], early_config.invocation_params.dir, early_config)
    early_config.stash[_paths_hold_pages_key] = holds
    early_config.stash[_pages_key] = holds or any(_is_nbmake_option(arg) for arg in args)
    if early_config.stash[_pages_key]:
        load_nbmake(early_config.pluginmanager)


def _is_nbmake_option(arg: str) -> bool:
    name = arg.split("=")[0]
    return name == "--overwrite" or name.startswith("--nbmake")


def holds_pages(paths: Iterable[str], base: Path, config: pytest.Config) -> bool:
    """Whether any of ``paths`` (pytest arguments) is a notebook or a folder holding one."""
    skipped = config.getini("norecursedirs")
    for arg in paths:
        path = Path(base, str(arg).split("::")[0])
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


def load_nbmake(pluginmanager: pytest.PytestPluginManager) -> None:
    """Register nbmake's pytest plugin, as its entry point would have been (unless it was)."""
    if pluginmanager.has_plugin("nbmake"):
        return  # not blocked here (another config): pytest loaded it already
    (entry,) = importlib.metadata.entry_points(group="pytest11", name="nbmake")
    pluginmanager.unblock("nbmake")
    pluginmanager.register(entry.load(), "nbmake")


# --- a page run -----------------------------------------------------------------------------------

_mode_key = pytest.StashKey[tuple[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    pages = config.stash.get(_pages_key, False)
    holds = config.stash.get(_paths_hold_pages_key, False)
    if holds_pages(config.args, config.invocation_params.dir, config) != holds:
        raise pytest.UsageError(
            f"tools/pages_plugin.py decided that this run's paths {'hold' if holds else 'hold no'} "
            f"pages, but pytest collects {config.args}: update pytest_load_initial_conftests to "
            "choose the paths as pytest does"
        )
    if not pages:
        return  # no page in this run: no asset probe, no matplotlib, no nbmake collection
    config.option.nbmake = True  # `pytest docs/page.ipynb` runs the page, as `--nbmake` does
    if not hasattr(config, "workerinput"):  # the controlling process, before workers start
        from transferlens.tutorial import resolve_asset_mode

        mode, reason = resolve_asset_mode()
        os.environ["TRANSFERLENS_ASSETS"] = mode
        config.stash[_mode_key] = (mode, reason)
        if mode == "real":  # each real download once, before parallel kernels race for it
            from transferlens.tutorial import fetch_real_assets

            fetch_real_assets()
        # One thread per kernel, however many pages run at once: pages run in parallel across
        # the cores instead, and a page's floating-point results do not depend on how many
        # pages ran beside it (the determinism check compares runs).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    import pagecache
    import pagerun  # the page machinery: imported (and registered) only for page runs

    if not hasattr(config, "workerinput"):
        _warm_matplotlib(pagecache.BUILD)
    config.pluginmanager.register(pagerun, "transferlens-pagerun")


def _warm_matplotlib(build: Path) -> None:
    """Build matplotlib's font cache before any page runs.

    On a machine (or a HOME) where it does not exist yet, matplotlib builds it on first import and
    says so on stderr, inside whichever page imported it first. The cache lives in build/, so a
    fresh HOME reuses it too.
    """
    os.environ.setdefault("MPLCONFIGDIR", str(build / "matplotlib"))
    import matplotlib.font_manager  # noqa: F401


def pytest_report_header(config: pytest.Config) -> str | None:
    mode, reason = config.stash.get(_mode_key, ("", ""))
    if not mode:
        return None
    return f"transferlens assets: {mode}" + (f" ({reason})" if reason else "")
