"""Every docstring example in the package runs and prints what it says."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import transferlens

SUBMODULES = [f"transferlens.{info.name}" for info in pkgutil.iter_modules(transferlens.__path__)]
MODULES = ["transferlens", *sorted(SUBMODULES)]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_every_public_function_has_an_example() -> None:
    missing = [
        name
        for name in transferlens.__all__
        if callable(obj := getattr(transferlens, name))
        and not isinstance(obj, type)
        and "Examples:" not in (obj.__doc__ or "")
    ]
    assert missing == []
