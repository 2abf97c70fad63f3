"""The table formatting the reports share: aligned text, HTML, and how shapes, rates and
``requires_grad`` are written in them.

The inspector's output (``transferlens inspect``, ``atlas``) uses it too, so that both print
alike: the one private module the inspector imports (``tests/test_layers.py``).

Needs beside it: nothing.
"""

from __future__ import annotations

import html
from collections.abc import Sequence


def type_name(module: object) -> str:
    """The class name of ``module`` (``"Conv2d"``), as the reports show it."""
    return type(module).__name__


def format_shape(shape: Sequence[int]) -> str:
    """``[64, 3, 7, 7]``: a shape as the reports show it."""
    return "[" + ", ".join(str(size) for size in shape) + "]"


def status(requires_grad: bool) -> str:
    """``"trainable"`` or ``"frozen"``."""
    return "trainable" if requires_grad else "frozen"


def format_lr(lr: float | None) -> str:
    """``1e-05``, ``2.5e-03``: one notation for every group, three significant digits at most."""
    if lr is None:
        return ""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Align ``rows`` under ``header``; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(row) for row in rows)]


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], footer: str | None, css_class: str
) -> str:
    """An HTML ``<table>`` of ``rows`` under ``header``, with ``footer`` spanning all columns."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    foot = ""
    if footer is not None:
        foot = f'<tfoot><tr><td colspan="{len(header)}">{html.escape(footer)}</td></tr></tfoot>'
    return (
        f'<table class="{css_class}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody>{foot}</table>"
    )
