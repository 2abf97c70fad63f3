"""``parameter_tree``: which parameters does each child module hold, and do they train?

The seed notebook's ``show_parameters``, as an object with rows to assert on. Like every report
in transferlens it prints as aligned text (``str``) and as HTML in a notebook (``_repr_html_``),
with no ids, addresses or timings, so pages and golden tests can compare it exactly.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from torch import nn

from .._recipe.checks import check_module
from .tables import format_shape, status, type_name


@dataclass(frozen=True)
class ParameterRow:
    """One parameter of a model, as listed by ``parameter_tree``.

    Attributes:
        path: dotted path of the module that holds the parameter (``"4.0.conv1"``; ``""`` for the
            model itself).
        module_type: class name of that module (``"Conv2d"``).
        name: the parameter's name inside that module (``"weight"``).
        shape: the parameter's shape.
        requires_grad: whether the optimizer will update it.
    """

    path: str
    module_type: str
    name: str
    shape: tuple[int, ...]
    requires_grad: bool

    @property
    def full_name(self) -> str:
        """The name ``model.named_parameters()`` gives (``"4.0.conv1.weight"``)."""
        return f"{self.path}.{self.name}" if self.path else self.name


@dataclass(frozen=True)
class _TreeNode:
    depth: int
    name: str  # the child's name in its parent; "" for the root
    path: str
    module_type: str
    parameters: tuple[ParameterRow, ...]


class ParameterTree:
    """Every child module of a model with its own parameters and their ``requires_grad``.

    ``str(tree)`` is an indented text tree, ``tree._repr_html_()`` a nested HTML list, and
    iterating gives one ``ParameterRow`` per parameter, in ``model.named_parameters()`` order.
    Build it with ``parameter_tree``.
    """

    def __init__(self, nodes: Sequence[_TreeNode]) -> None:
        self._nodes = tuple(nodes)
        self.rows: tuple[ParameterRow, ...] = tuple(
            row for node in self._nodes for row in node.parameters
        )

    def __iter__(self) -> Iterator[ParameterRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def n_trainable(self) -> int:
        """Number of parameter elements with ``requires_grad=True``."""
        return sum(_numel(row.shape) for row in self.rows if row.requires_grad)

    @property
    def n_frozen(self) -> int:
        """Number of parameter elements with ``requires_grad=False``."""
        return sum(_numel(row.shape) for row in self.rows if not row.requires_grad)

    def _totals_line(self) -> str:
        n_trainable = sum(row.requires_grad for row in self.rows)
        return (
            f"{len(self.rows)} parameter tensors: {n_trainable} trainable "
            f"({self.n_trainable:,} elements), {len(self.rows) - n_trainable} frozen "
            f"({self.n_frozen:,} elements)"
        )

    def __str__(self) -> str:
        lines: list[str] = []
        for node in self._nodes:
            indent = "  " * node.depth
            label = node.module_type if node.depth == 0 else f"{node.name}: {node.module_type}"
            lines.append(indent + label)
            if node.parameters:
                name_width = max(len(row.name) for row in node.parameters)
                shapes = [format_shape(row.shape) for row in node.parameters]
                shape_width = max(len(shape) for shape in shapes)
                for row, shape in zip(node.parameters, shapes, strict=True):
                    lines.append(
                        f"{indent}  {row.name.ljust(name_width)}  {shape.ljust(shape_width)}  "
                        f"{status(row.requires_grad)}"
                    )
        lines.append(self._totals_line())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        parts: list[str] = []
        depth = -1
        for node in self._nodes:
            # Open or close <ul> levels so that each node sits under its parent's <li>.
            if node.depth > depth:
                parts.append("<ul>" * (node.depth - depth))
            else:
                parts.append("</li>" + "</ul></li>" * (depth - node.depth))
            depth = node.depth
            label = html.escape(node.module_type)
            if node.depth > 0:
                label = f"<code>{html.escape(node.name)}</code>: {label}"
            parts.append(f"<li>{label}")
            if node.parameters:
                rows = "".join(
                    f"<tr><td><code>{html.escape(row.name)}</code></td>"
                    f"<td>{html.escape(format_shape(row.shape))}</td>"
                    f"<td>{status(row.requires_grad)}</td></tr>"
                    for row in node.parameters
                )
                parts.append(f"<table>{rows}</table>")
        parts.append("</li>" + "</ul></li>" * depth + "</ul>")
        totals = html.escape(self._totals_line())
        return f'<div class="transferlens-tree">{"".join(parts)}<p>{totals}</p></div>'


def _numel(shape: Sequence[int]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def parameter_tree(model: nn.Module) -> ParameterTree:
    """List a model's children, recursively, with the parameters each holds and ``requires_grad``.

    Generalises the seed notebook's ``show_parameters``: a module's own parameters are listed
    under it even when it also has children (a ViT's ``class_token``), so every parameter of
    ``model.named_parameters()`` appears exactly once.

    Args:
        model: any ``torch.nn.Module``.

    Returns:
        A ``ParameterTree``; print it for the text tree, iterate it for ``ParameterRow`` s.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
        >>> _ = model[0].requires_grad_(False)
        >>> print(parameter_tree(model))
        Sequential
          0: Linear
            weight  [3, 2]  frozen
            bias    [3]     frozen
          1: BatchNorm1d
            weight  [3]  trainable
            bias    [3]  trainable
        4 parameter tensors: 2 trainable (6 elements), 2 frozen (9 elements)
        >>> [row.full_name for row in parameter_tree(model) if row.requires_grad]
        ['1.weight', '1.bias']
    """
    check_module(model, "model")
    nodes: list[_TreeNode] = []

    def visit(module: nn.Module, name: str, path: str, depth: int) -> None:
        own = tuple(
            ParameterRow(
                path, type_name(module), param_name, tuple(param.shape), param.requires_grad
            )
            for param_name, param in module.named_parameters(recurse=False)
        )
        nodes.append(_TreeNode(depth, name, path, type_name(module), own))
        for child_name, child in module.named_children():
            visit(child, child_name, f"{path}.{child_name}" if path else child_name, depth + 1)

    visit(model, "", "", 0)
    return ParameterTree(nodes)
