"""The errors transferlens raises.

One hierarchy, so that callers can catch everything transferlens refuses with one clause::

    ValueError
     └── LensError              every bad input: the message names the argument,
          │                     what was expected, and what to do
          └── AssetError        (transferlens.tutorial) the asset mode or the stand-in
                                cache is unusable

A failed check is not a bad input: `assert_same_outputs`, a testing helper, raises
``AssertionError`` when the two models differ, as ``torch.testing.assert_close`` does.

Needs beside it: nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LensError(ValueError):
    """A bad input to transferlens. The message names the argument and the fix."""


# Where users get it, and what a traceback prints: `transferlens.LensError`, not this module.
LensError.__module__ = "transferlens"


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """Return a ``" Did you mean ...?"`` hint for ``name`` among ``choices`` (or ``""``).

    Examples:
        >>> suggest("resnet1800", ["resnet18", "vgg11"])
        " Did you mean 'resnet18'?"
    """
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    if not close:
        return ""
    quoted = ", ".join(repr(c) for c in close)
    return f" Did you mean {quoted}?"
