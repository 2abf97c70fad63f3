"""``trainable_report``: per parameter group and module type, how much trains, how much is
frozen, *why*, and at which learning rate.

torchinfo's ``Is Trainable`` column, with the reason. Only ``torch`` is imported here: a fastai
``Learner`` is recognised by its attributes (duck-typed), never imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import nn

from .._recipe.checks import check_module
from .._recipe.errors import LensError
from .._recipe.freeze import NORM_TYPES
from .tables import format_lr, format_shape, html_table, status, text_table, type_name

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
                format_lr(row.lr),
                row.module_type,
                str(row.tensors),
                f"{row.elements:,}",
                status(row.trainable),
                row.reason,
            ]
            for row in self.rows
        ]
        return header, rows

    def __str__(self) -> str:
        header, rows = self._table()
        return "\n".join([*text_table(header, rows, right={3, 4}), self._totals_line()])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        header, rows = self._table()
        return html_table(header, rows, self._totals_line(), "transferlens-trainable")

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data, with a fixed key order.

        Returns:
            A dict with the keys ``groups``, ``rows`` and ``totals``, in that order.
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
        model = check_module(model_or_learner, "model_or_learner")
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
                owners[id(param)] = (param, type_name(module), isinstance(module, NORM_TYPES))

    group_of: dict[int, int] = {}
    for index, group in enumerate(groups_list):
        for position, param in enumerate(group):
            if id(param) not in owners:
                raise LensError(
                    f"`groups[{index}][{position}]` (shape {format_shape(param.shape)}) is not a "
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
