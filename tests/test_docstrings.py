"""Every docstring example in the package runs and prints what it says.

Only examples that run count: an example marked ``+SKIP`` is documentation, not a check, so it
neither passes a module's run nor gives a public function "an example".
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from types import ModuleType

import pytest

import transferlens
from transferlens import tutorial

# Every module of the package, subpackages' private modules included (transferlens.tutorial._*).
MODULES = sorted(
    {"transferlens"}
    | {
        info.name
        for info in pkgutil.walk_packages(transferlens.__path__, prefix="transferlens.")
        if info.name != "transferlens.__main__"  # the `python -m transferlens` entry point
    }
)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _public_functions() -> dict[str, object]:
    """The public functions of the core (``transferlens.__all__``) and of the tutorial module."""
    functions = {}
    for package in (transferlens, tutorial):
        for name in package.__all__:
            obj = getattr(package, name)
            if callable(obj) and not isinstance(obj, type):
                functions[f"{package.__name__}.{name}"] = obj
    return functions


PUBLIC_FUNCTIONS = _public_functions()
# The modules where public functions are defined: each must have examples that ran.
MODULES_WITH_PUBLIC_FUNCTIONS = {
    getattr(obj, "__module__", "") for obj in PUBLIC_FUNCTIONS.values()
}


def _runnable_examples(tests: list[doctest.DocTest]) -> int:
    return sum(not example.options.get(doctest.SKIP) for t in tests for example in t.examples)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=OPTIONS)
    assert result.failed == 0
    # doctest's "attempted" counts the examples that ran (a +SKIP example is not attempted)
    if name in MODULES_WITH_PUBLIC_FUNCTIONS:
        assert result.attempted > 0, f"{name} defines public functions but no example ran"


def test_the_modules_of_the_public_functions_are_all_run() -> None:
    assert MODULES_WITH_PUBLIC_FUNCTIONS <= set(MODULES)
    assert len(PUBLIC_FUNCTIONS) >= 20, sorted(PUBLIC_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(PUBLIC_FUNCTIONS))
def test_every_public_function_has_an_example_that_runs(name: str) -> None:
    obj = PUBLIC_FUNCTIONS[name]
    assert "Examples:" in (obj.__doc__ or ""), f"{name}: no Examples: section"
    tests = doctest.DocTestFinder(recurse=False).find(obj, name)
    assert _runnable_examples(tests) > 0, (
        f"{name}: every example is marked +SKIP (or there is none); give it one that runs"
    )
