"""Every docstring example in the package runs and prints what it says.

Only examples that run count: an example marked ``+SKIP`` is documentation, not a check, so it
neither passes a module's run nor gives a public function "an example".
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import transferlens
from transferlens import inspector, tutorial

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


def _defining_module(obj: object) -> str:
    """The module that defines ``obj``. ``__module__`` says where users get a public name
    (``transferlens``), so ask the package's table of names, or read the function's globals
    (for a class, its methods')."""
    for package in (transferlens, inspector):
        name = getattr(obj, "__name__", "")
        if package._EXPORTS.get(name) and getattr(package, name) is obj:
            return f"{package.__name__}.{package._EXPORTS[name]}"
    globals_ = getattr(inspect.unwrap(obj), "__globals__", None)  # past @contextmanager
    if globals_ is None:
        methods = [v for v in vars(obj).values() if hasattr(v, "__globals__")]
        globals_ = methods[0].__globals__ if methods else {"__name__": obj.__module__}
    return globals_["__name__"]


def _public_objects(kind: type | None) -> dict[str, object]:
    """The public functions (``kind=None``) or classes (``kind=type``) of the library, the
    inspector and the tutorial module."""
    found = {}
    for package in (transferlens, inspector, tutorial):
        for name in package.__all__:
            obj = getattr(package, name)
            is_class = isinstance(obj, type)
            if (is_class if kind is type else callable(obj) and not is_class):
                found[f"{package.__name__}.{name}"] = obj
    return found


PUBLIC_FUNCTIONS = _public_objects(None)
PUBLIC_CLASSES = _public_objects(type)
# The modules where public functions are defined: each must have examples that ran.
MODULES_WITH_PUBLIC_FUNCTIONS = {_defining_module(obj) for obj in PUBLIC_FUNCTIONS.values()}


def _runnable_examples(tests: list[doctest.DocTest]) -> int:
    return sum(not example.options.get(doctest.SKIP) for t in tests for example in t.examples)


def _module_doctests(module: ModuleType) -> list[doctest.DocTest]:
    """The doctests of what ``module`` defines, run in its namespace.

    doctest finds an object by ``__module__``, which for a public name is the package users
    import it from (``transferlens``), not the module that defines it: so the public objects are
    collected by where they are defined, and left out of their package's own run."""
    finder = doctest.DocTestFinder()
    public = {**PUBLIC_FUNCTIONS, **PUBLIC_CLASSES}
    moved = {id(obj) for obj in public.values() if obj.__module__ != _defining_module(obj)}
    tests = [
        test
        for test in finder.find(module)
        if not any(id(v) in moved for k, v in vars(module).items() if test.name.endswith(f".{k}"))
    ]
    for name, obj in public.items():
        if id(obj) in moved and _defining_module(obj) == module.__name__:
            tests += finder.find(obj, name, module=module, globs=vars(module))
    return tests


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    tests = _module_doctests(module)
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
    # a +SKIP example is not run, so it does not count
    if name in MODULES_WITH_PUBLIC_FUNCTIONS:
        assert _runnable_examples(tests) > 0, f"{name} defines public functions but no example ran"


def test_public_classes_examples_are_found_where_they_are_defined() -> None:
    tests = _module_doctests(importlib.import_module("transferlens._recipe.optim"))
    assert any(test.name == "transferlens.Adam" and test.examples for test in tests)


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
