"""Reports that show what fastai's transfer-learning recipe did to a model.

Four tools, each answering one question and each printable as aligned text (``str``) and as HTML
in a notebook (``_repr_html_``). Their output is deterministic (no ids, addresses or timings), so
pages and golden tests can compare it exactly:

- ``parameter_tree``: which parameters does each child module hold, and do they train?
  (the seed notebook's ``show_parameters``, as an object with rows to assert on)
- ``trainable_report``: per parameter group and module type, how much trains, how much is frozen,
  *why*, and at which learning rate (torchinfo's ``Is Trainable`` column, with the reason)
- ``module_diff``: which children did fastai remove, add or change?
- ``assert_same_outputs``: do two models compute exactly the same thing?

Only ``torch`` is imported here. A fastai ``Learner`` is recognised by its attributes (duck-typed),
never imported.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from ._errors import LensError
from ._freeze import NORM_TYPES

__all__ = [
    "DiffEntry",
    "ModuleDiff",
    "ParameterRow",
    "ParameterTree",
    "TrainableReport",
    "TrainableRow",
    "assert_same_outputs",
    "module_diff",
    "parameter_tree",
    "trainable_report",
]


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

# Reprs of some modules (a fastai ``Lambda``) contain a function's memory address.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _type_name(module: object) -> str:
    return type(module).__name__


def _format_shape(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _status(requires_grad: bool) -> str:
    return "trainable" if requires_grad else "frozen"


def _check_module(value: object, argument: str) -> nn.Module:
    if not isinstance(value, nn.Module):
        raise LensError(
            f"`{argument}` must be a torch.nn.Module, got {_type_name(value)}. "
            "Pass the model itself (for a fastai Learner, pass `learn.model`)."
        )
    return value


def _text_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Align ``rows`` under ``header``; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], footer: str | None, css_class: str
) -> str:
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


# --------------------------------------------------------------------------------------------
# parameter_tree
# --------------------------------------------------------------------------------------------


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
                shapes = [_format_shape(row.shape) for row in node.parameters]
                shape_width = max(len(shape) for shape in shapes)
                for row, shape in zip(node.parameters, shapes, strict=True):
                    lines.append(
                        f"{indent}  {row.name.ljust(name_width)}  {shape.ljust(shape_width)}  "
                        f"{_status(row.requires_grad)}"
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
                    f"<td>{html.escape(_format_shape(row.shape))}</td>"
                    f"<td>{_status(row.requires_grad)}</td></tr>"
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
        A ``ParameterTree``: print it for the text tree, iterate it for ``ParameterRow`` s.

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
    _check_module(model, "model")
    nodes: list[_TreeNode] = []

    def visit(module: nn.Module, name: str, path: str, depth: int) -> None:
        own = tuple(
            ParameterRow(
                path, _type_name(module), param_name, tuple(param.shape), param.requires_grad
            )
            for param_name, param in module.named_parameters(recurse=False)
        )
        nodes.append(_TreeNode(depth, name, path, _type_name(module), own))
        for child_name, child in module.named_children():
            visit(child, child_name, f"{path}.{child_name}" if path else child_name, depth + 1)

    visit(model, "", "", 0)
    return ParameterTree(nodes)


# --------------------------------------------------------------------------------------------
# trainable_report
# --------------------------------------------------------------------------------------------

GroupState = Literal["frozen", "trainable", "partly frozen", "ungrouped"]

REASON_GROUP_FROZEN = "group frozen"
REASON_TRAIN_BN = "kept trainable by train_bn"
REASON_GROUP_TRAINABLE = "group trainable"


@dataclass(frozen=True)
class TrainableRow:
    """Parameters of one module type in one group that train (or not) for the same reason.

    Attributes:
        group: index of the parameter group, or ``None`` when no groups are known (or the
            parameters are in none of them).
        lr: the group's learning rate, or ``None`` when unknown.
        module_type: class name of the modules holding the parameters (``"BatchNorm2d"``).
        trainable: ``requires_grad`` of these parameters.
        reason: why they are trainable or frozen (``"group frozen"``,
            ``"kept trainable by train_bn"``, ``"group trainable"``, ``"requires_grad=False"``...).
        tensors: number of parameter tensors.
        elements: number of scalar parameters in them.
    """

    group: int | None
    lr: float | None
    module_type: str
    trainable: bool
    reason: str
    tensors: int
    elements: int


@dataclass(frozen=True)
class _GroupSummary:
    index: int
    lr: float | None
    state: GroupState
    tensors: int
    elements: int


def _format_lr(lr: float | None) -> str:
    """``1e-05``, ``2.5e-03``: one notation for every group, three significant digits at most."""
    if lr is None:
        return ""
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


class TrainableReport:
    """What trains, what is frozen, why, and at which learning rate. Build it with
    ``trainable_report``.

    ``str(report)`` is an aligned table with a totals line, ``report._repr_html_()`` the same as an
    HTML table, ``report.rows`` the ``TrainableRow`` s and ``report.to_dict()`` a JSON-ready dict.
    """

    def __init__(self, rows: Sequence[TrainableRow], groups: Sequence[_GroupSummary]) -> None:
        self.rows: list[TrainableRow] = list(rows)
        self._groups = tuple(groups)

    @property
    def tensors(self) -> int:
        """Number of parameter tensors in the model."""
        return sum(row.tensors for row in self.rows)

    @property
    def elements(self) -> int:
        """Number of scalar parameters in the model."""
        return sum(row.elements for row in self.rows)

    @property
    def trainable_tensors(self) -> int:
        """Number of parameter tensors with ``requires_grad=True``."""
        return sum(row.tensors for row in self.rows if row.trainable)

    @property
    def trainable_elements(self) -> int:
        """Number of scalar parameters with ``requires_grad=True``."""
        return sum(row.elements for row in self.rows if row.trainable)

    @property
    def frozen_tensors(self) -> int:
        """Number of parameter tensors with ``requires_grad=False``."""
        return self.tensors - self.trainable_tensors

    @property
    def frozen_elements(self) -> int:
        """Number of scalar parameters with ``requires_grad=False``."""
        return self.elements - self.trainable_elements

    @property
    def group_states(self) -> list[GroupState]:
        """Per parameter group: ``"frozen"``, ``"trainable"`` or ``"partly frozen"``."""
        return [group.state for group in self._groups]

    @property
    def lrs(self) -> list[float | None]:
        """Per parameter group: its learning rate, ``None`` where unknown."""
        return [group.lr for group in self._groups]

    def _totals_line(self) -> str:
        return (
            f"total: {self.tensors} tensors, {self.elements:,} elements; "
            f"trainable: {self.trainable_tensors} tensors, {self.trainable_elements:,} elements; "
            f"frozen: {self.frozen_tensors} tensors, {self.frozen_elements:,} elements"
        )

    def _table(self) -> tuple[list[str], list[list[str]]]:
        header = ["group", "lr", "module", "tensors", "elements", "status", "reason"]
        rows = [
            [
                "-" if row.group is None else str(row.group),
                _format_lr(row.lr),
                row.module_type,
                str(row.tensors),
                f"{row.elements:,}",
                _status(row.trainable),
                row.reason,
            ]
            for row in self.rows
        ]
        return header, rows

    def __str__(self) -> str:
        header, rows = self._table()
        return "\n".join([*_text_table(header, rows, right={3, 4}), self._totals_line()])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        header, rows = self._table()
        return _html_table(header, rows, self._totals_line(), "transferlens-trainable")

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data, with a fixed key order.

        Returns:
            ``{"groups": [...], "rows": [...], "totals": {...}}``.
        """
        return {
            "groups": [asdict(group) for group in self._groups],
            "rows": [asdict(row) for row in self.rows],
            "totals": {
                "tensors": self.tensors,
                "elements": self.elements,
                "trainable_tensors": self.trainable_tensors,
                "trainable_elements": self.trainable_elements,
                "frozen_tensors": self.frozen_tensors,
                "frozen_elements": self.frozen_elements,
            },
        }


def _is_learner(value: object) -> bool:
    return hasattr(value, "model") and hasattr(value, "opt") and hasattr(value, "create_opt")


def _from_learner(learn: Any) -> tuple[nn.Module, list[list[nn.Parameter]], list[float | None]]:
    """Mirror what fastai's ``Learner.freeze_to`` reads: ``learn.opt.param_lists`` and hypers."""
    if learn.opt is None:
        learn.create_opt()
    groups = [list(group) for group in learn.opt.param_lists]
    lrs: list[float | None] = [hypers.get("lr") for hypers in learn.opt.hypers]
    return learn.model, groups, lrs


def _group_state(params: Sequence[tuple[nn.Parameter, bool]]) -> GroupState:
    """``params`` are ``(parameter, is_norm)``; norm parameters do not decide the state."""
    deciding = [param.requires_grad for param, is_norm in params if not is_norm]
    if not deciding:  # only normalization parameters: they decide after all
        deciding = [param.requires_grad for param, _ in params]
    if all(deciding):
        return "trainable"
    if not any(deciding):
        return "frozen"
    return "partly frozen"


def _reason(state: GroupState, requires_grad: bool, is_norm: bool) -> str:
    if state == "frozen":
        if not requires_grad:
            return REASON_GROUP_FROZEN
        if is_norm:
            return REASON_TRAIN_BN
    if state == "trainable" and requires_grad:
        return REASON_GROUP_TRAINABLE
    suffix = " (in no parameter group)" if state == "ungrouped" else ""
    return f"requires_grad={requires_grad}{suffix}"


def trainable_report(
    model_or_learner: Any,
    groups: Sequence[Sequence[nn.Parameter]] | None = None,
    lrs: Sequence[float] | None = None,
) -> TrainableReport:
    """Count trainable and frozen parameters per group and module type, and say why.

    The reasons follow fastai's ``Learner.freeze_to`` (``fastai/learner.py``) and
    ``_BaseOptimizer.freeze_to`` (``fastai/optimizer.py``): a group before ``frozen_idx`` is frozen,
    except the parameters of normalization layers, which ``train_bn=True`` keeps trainable. A group
    counts as frozen when its non-normalization parameters have ``requires_grad=False``.

    Args:
        model_or_learner: a ``torch.nn.Module``, or a fastai ``Learner`` (recognised by its
            ``model``, ``opt`` and ``create_opt`` attributes); the Learner's groups are
            ``learn.opt.param_lists`` and its learning rates ``learn.opt.hypers[i]["lr"]``
            (``learn.create_opt()`` is called if ``learn.opt`` is None).
        groups: the parameter groups, as ``transferlens.param_groups`` returns them. Without
            groups (and without a Learner) each parameter's reason is its ``requires_grad``.
        lrs: one learning rate per group, as ``transferlens.discriminative_lrs`` returns them.

    Returns:
        A ``TrainableReport``.

    Raises:
        LensError: when ``groups`` hold a parameter that is not in the model, or one twice, when
            ``lrs`` does not have one rate per group, or when a Learner comes with ``groups``.

    Examples:
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
        >>> _ = model[0].requires_grad_(False)
        >>> groups = [list(model[:2].parameters()), list(model[2].parameters())]
        >>> report = trainable_report(model, groups, lrs=[1e-4, 1e-3])
        >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
        group  lr     module       tensors  elements  status     reason
        0      1e-04  Linear             2         9  frozen     group frozen
        0      1e-04  BatchNorm1d        2         6  trainable  kept trainable by train_bn
        1      1e-03  Linear             2         4  trainable  group trainable
        total: 6 tensors, 19 elements; trainable: 4 tensors, 10 elements;
        frozen: 2 tensors, 9 elements
    """
    if _is_learner(model_or_learner):
        if groups is not None:
            raise LensError(
                "`groups` cannot be given with a fastai Learner: its groups are "
                "`learn.opt.param_lists`. Pass `learn.model` to use other groups."
            )
        model, groups_list, learner_lrs = _from_learner(model_or_learner)
        lrs_list: list[float | None] = list(lrs) if lrs is not None else learner_lrs
    else:
        model = _check_module(model_or_learner, "model_or_learner")
        groups_list = [] if groups is None else [list(group) for group in groups]
        if lrs is not None and groups is None:
            raise LensError("`lrs` needs `groups`: pass one learning rate per parameter group.")
        lrs_list = list(lrs) if lrs is not None else [None] * len(groups_list)

    if len(lrs_list) != len(groups_list):
        raise LensError(
            f"`lrs` has {len(lrs_list)} learning rates for {len(groups_list)} parameter groups; "
            "pass one per group (see `transferlens.discriminative_lrs`)."
        )

    # The module that holds each parameter, in named_parameters order (shared ones counted once).
    owners: dict[int, tuple[nn.Parameter, str, bool]] = {}
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if id(param) not in owners:
                owners[id(param)] = (param, _type_name(module), isinstance(module, NORM_TYPES))

    group_of: dict[int, int] = {}
    for index, group in enumerate(groups_list):
        for position, param in enumerate(group):
            if id(param) not in owners:
                raise LensError(
                    f"`groups[{index}][{position}]` (shape {_format_shape(param.shape)}) is not a "
                    "parameter of the model. Build the groups from the same model you report on."
                )
            if id(param) in group_of:
                raise LensError(
                    f"`groups[{index}][{position}]` is already in group {group_of[id(param)]}; "
                    "each parameter must be in one group only."
                )
            group_of[id(param)] = index

    states: list[GroupState] = [
        _group_state([(param, owners[id(param)][2]) for param in group]) for group in groups_list
    ]
    # Keyed by (group, module type, reason), in order of first appearance within each group;
    # the parameters in no group come last.
    counts: dict[tuple[int | None, str, str], list[Any]] = {}
    ordered = sorted(
        owners.values(), key=lambda owner: group_of.get(id(owner[0]), len(groups_list))
    )
    for param, module_type, is_norm in ordered:
        index = group_of.get(id(param))
        if index is None:
            state: GroupState = "ungrouped"
        else:
            state = states[index]
        reason = (
            f"requires_grad={param.requires_grad}"
            if not groups_list
            else _reason(state, param.requires_grad, is_norm)
        )
        key = (index, module_type, reason)
        entry = counts.setdefault(key, [param.requires_grad, 0, 0])
        entry[1] += 1
        entry[2] += param.numel()

    rows = [
        TrainableRow(
            group=index,
            lr=None if index is None else lrs_list[index],
            module_type=module_type,
            trainable=trainable,
            reason=reason,
            tensors=tensors,
            elements=elements,
        )
        for (index, module_type, reason), (trainable, tensors, elements) in counts.items()
    ]
    summaries = [
        _GroupSummary(
            index=index,
            lr=lrs_list[index],
            state=states[index],
            tensors=len(group),
            elements=sum(param.numel() for param in group),
        )
        for index, group in enumerate(groups_list)
    ]
    return TrainableReport(rows, summaries)


# --------------------------------------------------------------------------------------------
# module_diff
# --------------------------------------------------------------------------------------------

DiffKind = Literal["removed", "added", "changed"]


@dataclass(frozen=True)
class DiffEntry:
    """One difference found by ``module_diff``.

    Attributes:
        kind: ``"removed"`` (only in ``a``), ``"added"`` (only in ``b``) or ``"changed"``.
        path_a: dotted path of the child in ``a`` (``None`` when added).
        path_b: dotted path of the child in ``b`` (``None`` when removed).
        before: the child in ``a``, described (its repr for a leaf, its type and number of
            children otherwise); ``None`` when added.
        after: the child in ``b``, described the same way; ``None`` when removed.
    """

    kind: DiffKind
    path_a: str | None
    path_b: str | None
    before: str | None
    after: str | None

    @property
    def path(self) -> str:
        """The path to show: ``path_a``, or ``"path_a -> path_b"`` where they differ."""
        if self.path_a is None:
            return str(self.path_b)
        if self.path_b is None or self.path_b == self.path_a:
            return self.path_a
        return f"{self.path_a} -> {self.path_b}"


class ModuleDiff:
    """Children removed, added and changed between two modules. Build it with ``module_diff``.

    Attributes:
        entries: every ``DiffEntry``, in the order the children appear.
        removed: dotted paths (in ``a``) of the children only ``a`` has.
        added: dotted paths (in ``b``) of the children only ``b`` has.
        changed: dotted paths (in ``a``) of the children whose type or leaf repr differs.
    """

    def __init__(self, type_a: str, type_b: str, match: str, entries: Sequence[DiffEntry]) -> None:
        self._type_a = type_a
        self._type_b = type_b
        self._match = match
        self.entries: list[DiffEntry] = list(entries)
        self.removed: list[str] = [str(e.path_a) for e in self.entries if e.kind == "removed"]
        self.added: list[str] = [str(e.path_b) for e in self.entries if e.kind == "added"]
        self.changed: list[str] = [str(e.path_a) for e in self.entries if e.kind == "changed"]

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _summary(self) -> str:
        counts = (
            f"{len(self.removed)} removed, {len(self.added)} added, {len(self.changed)} changed"
        )
        return f"{self._type_a} -> {self._type_b} (match={self._match!r}): {counts}"

    def __str__(self) -> str:
        rows = [[e.kind, e.path, e.after if e.kind == "added" else e.before] for e in self.entries]
        if not rows:
            return self._summary()
        kind_width = max(len(row[0]) for row in rows)
        path_width = max(len(row[1]) for row in rows)
        lines = [self._summary()]
        for entry, (kind, path, description) in zip(self.entries, rows, strict=True):
            lines.append(f"{kind.ljust(kind_width)}  {path.ljust(path_width)}  {description}")
            if entry.kind == "changed":
                lines.append(f"{' ' * (kind_width + path_width + 4)}-> {entry.after}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = [[e.kind, e.path, e.before or "", e.after or ""] for e in self.entries]
        return _html_table(
            ["kind", "path", "in a", "in b"], rows, self._summary(), "transferlens-diff"
        )


def _describe(module: nn.Module) -> str:
    children = len(list(module.children()))
    if children:
        noun = "child" if children == 1 else "children"
        return f"{_type_name(module)} ({children} {noun})"
    return _signature(module)


def _signature(module: nn.Module) -> str:
    """The module's repr on one line, without memory addresses: equal for equal structure."""
    text = _ADDRESS.sub("", repr(module))
    return text if "\n" not in text else " ".join(line.strip() for line in text.splitlines())


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


_Item = tuple[str, nn.Module]  # (dotted path, module)
_Spliced = list[tuple[str, nn.Module, list[int]]]  # (path, container, indices of its items)


def _children_by_path(module: nn.Module, prefix: str) -> list[_Item]:
    return [(_join(prefix, name), child) for name, child in module.named_children()]


def _children_by_structure(module: nn.Module, prefix: str, spliced: _Spliced) -> list[_Item]:
    """Children with plain ``nn.Sequential`` containers spliced in: ``Sequential(x, y)`` computes
    exactly ``x`` then ``y``, so fastai's ``Sequential(body, head)`` lines up with the original
    model's children. Each spliced container is recorded in ``spliced``, outermost first."""
    flat: list[_Item] = []

    def splice(parent: nn.Module, parent_prefix: str) -> None:
        for path, child in _children_by_path(parent, parent_prefix):
            if type(child) is nn.Sequential and len(child) > 0:
                record: list[int] = []
                spliced.append((path, child, record))
                start = len(flat)
                splice(child, path)
                record.extend(range(start, len(flat)))
            else:
                flat.append((path, child))

    splice(module, prefix)
    return flat


def _removed(path: str, module: nn.Module) -> DiffEntry:
    return DiffEntry("removed", path, None, _describe(module), None)


def _added(path: str, module: nn.Module) -> DiffEntry:
    return DiffEntry("added", None, path, None, _describe(module))


def _changes_as_leaf(a: nn.Module, b: nn.Module) -> bool:
    """Whether a pair is reported as one change (not looked into): another type, or a leaf
    whose repr differs."""
    if type(a) is not type(b):
        return True
    is_leaf = not list(a.children()) or not list(b.children())
    return is_leaf and _signature(a) != _signature(b)


def _diff_pair(
    a: nn.Module, b: nn.Module, path_a: str, path_b: str, by_structure: bool
) -> list[DiffEntry]:
    if _changes_as_leaf(a, b):
        return [DiffEntry("changed", path_a, path_b, _describe(a), _describe(b))]
    if _signature(a) == _signature(b):
        return []
    return _diff_children(a, b, path_a, path_b, by_structure)


def _is_substantial(module: nn.Module) -> bool:
    """Whether matching this module is evidence of kept structure (a ReLU matches anything)."""
    return any(True for _ in module.parameters()) or any(True for _ in module.children())


def _whole_containers(
    spliced: _Spliced,
    partner: dict[int, int],
    changed: set[tuple[int, int]],
    items: Sequence[_Item],
    a_side: bool,
) -> dict[int, tuple[str, nn.Module, list[int]]]:
    """Spliced containers that were replaced as a whole: something in them differs, and none of
    their layers with weights (or children) is kept as it was.

    Such a container is reported once (fastai's head is *added*, not nine layers of it, two of
    which happen to line up with AlexNet's ``classifier``). Returns them by the index of their
    first item.
    """
    wholes: dict[int, tuple[str, nn.Module, list[int]]] = {}
    covered: set[int] = set()
    for path, container, indices in spliced:  # outermost first
        if not indices or covered.intersection(indices):
            continue
        differs = kept = False
        for index in indices:
            pair = (
                None
                if index not in partner
                else ((index, partner[index]) if a_side else (partner[index], index))
            )
            if pair is None or pair in changed:
                differs = True
            elif _is_substantial(items[index][1]):
                kept = True
        if differs and not kept:
            wholes[indices[0]] = (path, container, indices)
            covered.update(indices)
    return wholes


def _diff_by_structure(a: nn.Module, b: nn.Module, prefix_a: str, prefix_b: str) -> list[DiffEntry]:
    spliced_a: _Spliced = []
    spliced_b: _Spliced = []
    items_a = _children_by_structure(a, prefix_a, spliced_a)
    items_b = _children_by_structure(b, prefix_b, spliced_b)

    # Align the two sequences by class name; aligned children are then compared in depth.
    matcher = difflib.SequenceMatcher(
        a=[_type_name(child) for _, child in items_a],
        b=[_type_name(child) for _, child in items_b],
        autojunk=False,
    )
    pairs = [
        (block.a + k, block.b + k)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]
    changed = {(i, j) for i, j in pairs if _changes_as_leaf(items_a[i][1], items_b[j][1])}
    partner_a = dict(pairs)
    partner_b = {j: i for i, j in pairs}
    whole_a = _whole_containers(spliced_a, partner_a, changed, items_a, a_side=True)
    whole_b = _whole_containers(spliced_b, partner_b, changed, items_b, a_side=False)
    in_whole_a = {index for _, _, items in whole_a.values() for index in items}
    in_whole_b = {index for _, _, items in whole_b.values() for index in items}
    pairs = [(i, j) for i, j in pairs if i not in in_whole_a and j not in in_whole_b]

    entries: list[DiffEntry] = []

    def one_sided(index_a: int, stop_a: int, index_b: int, stop_b: int) -> None:
        for i in range(index_a, stop_a):
            if i in whole_a:
                entries.append(_removed(whole_a[i][0], whole_a[i][1]))
            elif i not in in_whole_a:
                entries.append(_removed(*items_a[i]))
        for j in range(index_b, stop_b):
            if j in whole_b:
                entries.append(_added(whole_b[j][0], whole_b[j][1]))
            elif j not in in_whole_b:
                entries.append(_added(*items_b[j]))

    next_a = next_b = 0
    for i, j in pairs:
        one_sided(next_a, i, next_b, j)
        (path_a, child_a), (path_b, child_b) = items_a[i], items_b[j]
        entries.extend(_diff_pair(child_a, child_b, path_a, path_b, by_structure=True))
        next_a, next_b = i + 1, j + 1
    one_sided(next_a, len(items_a), next_b, len(items_b))
    return _merge_replacements(entries)


def _merge_replacements(entries: list[DiffEntry]) -> list[DiffEntry]:
    """A child removed and another added at the same path is one change (ReLU -> GELU)."""
    added = {entry.path_b: entry for entry in entries if entry.kind == "added"}
    merged: list[DiffEntry] = []
    used: set[str] = set()
    for entry in entries:
        if entry.kind == "removed" and entry.path_a in added and entry.path_a not in used:
            after = added[entry.path_a]
            merged.append(
                DiffEntry("changed", entry.path_a, after.path_b, entry.before, after.after)
            )
            used.add(str(entry.path_a))
        elif not (entry.kind == "added" and entry.path_b in used):
            merged.append(entry)
    return merged


def _diff_children(
    a: nn.Module, b: nn.Module, prefix_a: str, prefix_b: str, by_structure: bool
) -> list[DiffEntry]:
    if by_structure:
        return _diff_by_structure(a, b, prefix_a, prefix_b)
    children_a = _children_by_path(a, prefix_a)
    children_b = _children_by_path(b, prefix_b)
    matcher = difflib.SequenceMatcher(
        a=[path for path, _ in children_a], b=[path for path, _ in children_b], autojunk=False
    )
    entries: list[DiffEntry] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":  # same names: compare what is behind them
            for (path_a, child_a), (path_b, child_b) in zip(
                children_a[i1:i2], children_b[j1:j2], strict=True
            ):
                entries.extend(_diff_pair(child_a, child_b, path_a, path_b, by_structure=False))
        else:
            entries.extend(_removed(path, child) for path, child in children_a[i1:i2])
            entries.extend(_added(path, child) for path, child in children_b[j1:j2])
    return entries


def module_diff(
    a: nn.Module, b: nn.Module, match: Literal["structure", "path"] = "structure"
) -> ModuleDiff:
    """Compare the children of two modules: which were removed, added or changed.

    Two children are compared when they sit at the same place; they differ when their types
    differ or, for leaves, when their reprs differ (``Linear(512, 1000)`` vs ``Linear(512, 37)``).
    A removed or added child is reported once, not with all its descendants. The two roots
    themselves are not compared: ``a`` and ``b`` may be different container classes.

    "The same place" depends on ``match``:

    - ``"structure"`` (the default): plain ``nn.Sequential`` containers are spliced into their
      parents (``Sequential(x, y)`` computes exactly ``x`` then ``y``) and children are matched in
      order by their repr, so renamed children still match. That is what makes fastai's models
      comparable with torchvision's: fastai's body is ``nn.Sequential(*list(model.children())
      [:cut])``, so ``module_diff(resnet, body)`` shows just ``avgpool`` and ``fc`` removed, and
      ``module_diff(resnet, learn.model)`` also shows the head, added as one entry (``1``).
    - ``"path"``: children are matched by dotted path (``layer1.0.conv1``), as in ``state_dict``
      keys; fastai's ``0``, ``1``, ... then match none of ResNet's ``conv1``, ``bn1``, ...

    Args:
        a: the module before (a torchvision model).
        b: the module after (the fastai model, or its body ``b[0]``).
        match: ``"structure"`` or ``"path"``, see above.

    Returns:
        A ``ModuleDiff``: print it, or read ``.removed``, ``.added``, ``.changed`` (dotted paths)
        and ``.entries``.

    Raises:
        LensError: when ``a`` or ``b`` is not a module, or ``match`` is unknown.

    Examples:
        >>> from torch import nn
        >>> a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 10))
        >>> b = nn.Sequential(nn.Sequential(a[0], a[1]), nn.Linear(8, 2))
        >>> print(module_diff(a, b))
        Sequential -> Sequential (match='structure'): 0 removed, 0 added, 1 changed
        changed  2 -> 1  Linear(in_features=8, out_features=10, bias=True)
                         -> Linear(in_features=8, out_features=2, bias=True)
        >>> module_diff(a, b, match="path").changed
        ['0', '1']
    """
    _check_module(a, "a")
    _check_module(b, "b")
    if match not in ("path", "structure"):
        raise LensError(f"`match` must be 'structure' or 'path', got {match!r}.")
    entries = _diff_children(a, b, "", "", by_structure=match == "structure")
    return ModuleDiff(_type_name(a), _type_name(b), match, entries)


# --------------------------------------------------------------------------------------------
# assert_same_outputs
# --------------------------------------------------------------------------------------------


def _flatten_outputs(output: object, where: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(output, torch.Tensor):
        return [(where, output)]
    if isinstance(output, (tuple, list)):
        flat: list[tuple[str, torch.Tensor]] = []
        for index, item in enumerate(output):
            flat.extend(_flatten_outputs(item, f"{where}[{index}]"))
        return flat
    if isinstance(output, Mapping):
        flat = []
        for key in output:
            flat.extend(_flatten_outputs(output[key], f"{where}[{key!r}]"))
        return flat
    raise LensError(
        f"{where} is a {_type_name(output)}; assert_same_outputs compares tensors and "
        "tuples, lists or dicts of tensors."
    )


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return None


def _format_value(value: object) -> str:
    return f"{value:.8g}" if isinstance(value, float) else repr(value)


def _first_difference(out_a: torch.Tensor, out_b: torch.Tensor, where: str) -> str:
    differs = out_a != out_b
    if not bool(differs.any()):  # torch.equal is False, yet no element differs
        return f"{where} differs in dtype: a gives {out_a.dtype}, b gives {out_b.dtype}."
    index = tuple(int(i) for i in torch.nonzero(differs)[0])
    max_diff = float((out_a.double() - out_b.double()).abs()[differs].max())
    value_a, value_b = out_a[index].item(), out_b[index].item()
    return (
        f"{where} differs in {int(differs.sum()):,} of {out_a.numel():,} elements: "
        f"max absolute difference {max_diff:.6g}; first at index {index}: "
        f"a gives {_format_value(value_a)}, b gives {_format_value(value_b)}."
    )


def assert_same_outputs(
    a: nn.Module, b: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]
) -> None:
    """Check that two models give exactly equal outputs (``torch.equal``) on the same input.

    The seed notebook's check that ``nn.Sequential(*children)`` computes what ResNet computes,
    as one call. Both models run in eval mode on the CPU under ``torch.inference_mode()``;
    afterwards every submodule's ``training`` flag and the models' devices are as they were.

    Args:
        a: the first model.
        b: the second model.
        x: the input: a tensor, or a tuple of tensors passed as positional arguments.

    Raises:
        LensError: when the outputs differ: their shapes if those differ, else the largest
            absolute difference and the first differing position with both values. Also when
            an argument has the wrong type, or the outputs are not tensors (or tuples of them).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        >>> assert_same_outputs(model, nn.Sequential(*model.children()), torch.ones(1, 3))
    """
    _check_module(a, "a")
    _check_module(b, "b")
    inputs = x if isinstance(x, tuple) else (x,)
    if not inputs or not all(isinstance(item, torch.Tensor) for item in inputs):
        raise LensError(
            f"`x` must be a tensor or a tuple of tensors, got {_type_name(x)}. "
            "Pass a batch such as torch.randn(2, 3, 224, 224)."
        )
    inputs = tuple(item.cpu() for item in inputs)

    outputs = []
    for model in (a, b):
        training = [(module, module.training) for module in model.modules()]
        device = _model_device(model)
        try:
            model.cpu().eval()
            with torch.inference_mode():
                outputs.append(model(*inputs))
        finally:
            for module, flag in training:
                module.training = flag
            if device is not None:
                model.to(device)

    flat_a = _flatten_outputs(outputs[0], "output of a")
    flat_b = _flatten_outputs(outputs[1], "output of b")
    if len(flat_a) != len(flat_b):
        raise LensError(
            f"a gives {len(flat_a)} output tensors and b gives {len(flat_b)}; "
            "they cannot be the same."
        )
    for (where, out_a), (_, out_b) in zip(flat_a, flat_b, strict=True):
        where = where.replace("output of a", "output")
        if out_a.shape != out_b.shape:
            raise LensError(
                f"{where} shapes differ: a gives {tuple(out_a.shape)}, b gives "
                f"{tuple(out_b.shape)}."
            )
        if not torch.equal(out_a, out_b):
            raise LensError(_first_difference(out_a, out_b, where))
