"""Known, harmless warnings that third-party libraries print when the pages import them.

A page should not publish warnings it cannot act on, and it should not hide warnings wholesale
either. `quiet_known_warnings` filters exactly the warnings listed in ``KNOWN_WARNINGS``,
each matched by category, message and emitting module, each with the reason it is harmless.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownWarning:
    """One warning that `quiet_known_warnings` filters, and why it is safe to."""

    category: type[Warning]
    message: str  # a regular expression matched against the start of the message
    module: str  # a regular expression matched against the module that warns
    why: str


KNOWN_WARNINGS: tuple[KnownWarning, ...] = (
    KnownWarning(
        # A FutureWarning in torch 2.14, a DeprecationWarning in some earlier releases
        # (pyg-team/pytorch_geometric#10697): both are Warnings, matched by message and module.
        # On Python 3.14+ torch words it "is not supported in Python 3.14+ and may break".
        category=Warning,
        message=r"`torch\.jit\.script` is (deprecated|not supported in Python 3\.14\+)",
        module=r"torch\.jit\._script",
        why="fastai 2.8 scripts a few activation functions with torch.jit.script when it is "
        "imported; recent torch releases deprecate torch.jit.script. Nothing on these pages "
        "uses them.",
    ),
    KnownWarning(
        category=Warning,
        message=r"The 'mode\.chained_assignment' option is deprecated",
        module=r"fastai\.tabular\.core",
        why="fastai.tabular sets a pandas option at import that pandas 3 no longer uses; "
        "these pages use no tabular data.",
    ),
)


def quiet_known_warnings() -> tuple[KnownWarning, ...]:
    """Filter the warnings in ``KNOWN_WARNINGS`` (and only those) for the rest of the process.

    Returns:
        The filtered warnings, each with the reason it is harmless.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     known = quiet_known_warnings()
        ...     warnings.warn_explicit("`torch.jit.script` is deprecated.", DeprecationWarning,
        ...                            "_script.py", 1, module="torch.jit._script")
        >>> caught, len(known)
        ([], 2)
    """
    for known in KNOWN_WARNINGS:
        warnings.filterwarnings(
            "ignore", message=known.message, category=known.category, module=known.module
        )
    return KNOWN_WARNINGS
