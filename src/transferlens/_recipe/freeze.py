"""Freezing parameter groups the way a fastai ``Learner`` does.

fastai freezes by group: ``learn.freeze_to(n)`` stops gradients for every parameter in the groups
before ``n`` and turns them on for the rest. With ``train_bn=True`` (fastai's default) the
parameters of normalization layers keep training even in frozen groups; nothing else does, not even
the biases of convolutions and linear layers.

``Learner.freeze_to`` (``fastai/learner.py``) also ends with ``self.opt.clear_state()``: every
``freeze()`` and ``unfreeze()`` throws away the optimizer's moment estimates and step counts, so
each phase of ``fine_tune`` starts Adam afresh. Pass ``optimizer=`` to do the same here.

Needs beside it: ``errors.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .errors import LensError

#: The normalization layers fastai keeps training with ``train_bn``: exactly
#: ``fastai.torch_core.norm_types``. GroupNorm and SyncBatchNorm are not among them.
NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
)


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalization layer that fastai's ``train_bn`` keeps training.

    Mirrors the ``isinstance(m, norm_types)`` test of `fastai.torch_core.norm_bias_params`.

    Args:
        module: Any module.

    Returns:
        True for an instance of one of ``NORM_TYPES`` (subclasses included).

    Examples:
        >>> is_norm(nn.BatchNorm2d(8)), is_norm(nn.GroupNorm(2, 8)), is_norm(nn.Conv2d(3, 8, 3))
        (True, False, False)
    """
    return isinstance(module, NORM_TYPES)


def _norm_parameter_ids(model: nn.Module) -> set[int]:
    """Ids of the parameters fastai's ``norm_bias_params(model, with_bias=False)`` returns."""
    return {id(p) for module in model.modules() if is_norm(module) for p in module.parameters()}


def _check_groups(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    *,
    moved_to: torch.device | None = None,
) -> None:
    """Refuse ``groups`` unless it is a non-empty list of lists of ``model``'s parameters.

    ``moved_to``: the device the caller has just moved ``model`` to; the message then says that
    the move replaced the parameters (``.to("meta")``, or any ``.to()`` with
    ``torch.__future__.set_overwrite_module_params_on_conversion(True)``), so the groups must
    be built after the move.
    """
    if isinstance(groups, torch.Tensor) or not isinstance(groups, Sequence) or not groups:
        raise LensError(
            "`groups` must be a non-empty list of parameter lists, as param_groups(model, arch) "
            f"returns; got {type(groups).__name__}."
        )
    in_model = {id(p) for p in model.parameters()}
    for index, group in enumerate(groups):
        if isinstance(group, torch.Tensor) or not isinstance(group, Sequence):
            raise LensError(
                f"`groups[{index}]` must be a list of parameters, got {type(group).__name__}. "
                "Use param_groups(model, arch)."
            )
        if any(id(p) not in in_model for p in group):
            if moved_to is not None:
                raise LensError(
                    f"`groups[{index}]` holds parameters that are no longer in `model`: moving "
                    f"the model to {str(moved_to)!r} replaced its parameter objects, and the "
                    "groups still point to the old ones. Build the groups after moving the "
                    f"model: model.to({str(moved_to)!r}), then param_groups(model, arch)."
                )
            raise LensError(
                f"`groups[{index}]` holds parameters that are not in `model`. "
                "Build the groups from the same model: param_groups(model, arch) (and after "
                "any model.to(...), which may replace the parameters)."
            )


def _clear_optimizer_state(optimizer: Any) -> None:
    """Forget an optimizer's state (moments, step counts), as ``Learner.freeze_to`` does.

    fastai's ``Optimizer.clear_state`` (``fastai/optimizer.py``) keeps only the per-parameter
    flags ``force_train`` and ``do_wd``, which a ``torch.optim`` optimizer keeps elsewhere
    (``requires_grad``, a param group's ``weight_decay``); so for a ``torch.optim.Optimizer``
    this is ``optimizer.state.clear()``: the next ``step()`` starts each parameter's state
    from scratch (zero moments, step 1), as fastai's does. A fastai optimizer (anything with a
    ``clear_state()`` method) clears itself.
    """
    _check_optimizer(optimizer)
    clear_state = getattr(optimizer, "clear_state", None)
    if callable(clear_state):
        clear_state()
    else:
        optimizer.state.clear()


def _check_optimizer(optimizer: Any) -> None:
    if not callable(getattr(optimizer, "clear_state", None)) and not isinstance(
        optimizer, torch.optim.Optimizer
    ):
        raise LensError(
            f"`optimizer` must be a torch.optim.Optimizer (or a fastai optimizer), got "
            f"{type(optimizer).__name__}. Pass the optimizer that trains these groups, or leave "
            "`optimizer` out."
        )


def freeze_to(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    n: int,
    train_bn: bool = True,
    *,
    optimizer: Any = None,
) -> int:
    """Freeze the parameter groups before ``n`` and unfreeze the others, as fastai does.

    Mirrors `fastai.learner.Learner.freeze_to` (which calls `fastai.optimizer.Optimizer.freeze_to`):
    every parameter of ``groups[n:]`` gets ``requires_grad=True``; every parameter of
    ``groups[:n]`` gets ``requires_grad=False``, except that with ``train_bn`` the parameters of
    normalization layers (``NORM_TYPES``) found in ``model`` stay trainable. Biases of other
    layers are frozen like their weights. A negative ``n`` counts from the end, as in Python and
    fastai. Parameters in no group are left as they are.

    ``Learner.freeze_to`` then calls ``self.opt.clear_state()``: fastai's optimizer forgets its
    moment estimates and step counts at every freeze and unfreeze, so the unfrozen phase of
    ``fine_tune`` does not inherit the head's Adam moments from the frozen one. Pass the
    optimizer as ``optimizer`` to clear it the same way (``optimizer.state.clear()``); without
    it, the optimizer is left as it is.

    Args:
        model: The model the groups come from; it tells which parameters are normalization ones.
        groups: Parameter groups, in order, e.g. ``param_groups(model, arch)``.
        n: The first group that trains, between ``-len(groups)`` and ``len(groups) - 1``.
        train_bn: Keep normalization layers training in frozen groups (fastai's default).
        optimizer: The optimizer training these groups; its state is cleared, as fastai clears
            its own. ``None`` leaves optimizers alone.

    Returns:
        The number of frozen groups (fastai's ``Optimizer.frozen_idx``).

    Raises:
        LensError: ``n`` is out of range, ``groups`` is not a list of parameter lists from
            ``model``, or ``optimizer`` is not an optimizer.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
        >>> groups = [list(model[:2].parameters()), list(model[2:].parameters())]
        >>> freeze_to(model, groups, 1)
        1
        >>> [p.requires_grad for p in model.parameters()]
        [False, False, True, True, True, True]

        With the optimizer, its moments and step counts are cleared, as fastai clears them:

        >>> optimizer = torch.optim.Adam(model[2].parameters())
        >>> model[2](torch.ones(1, 4)).sum().backward()
        >>> optimizer.step()
        >>> len(optimizer.state), freeze_to(model, groups, 0, optimizer=optimizer)
        (2, 0)
        >>> len(optimizer.state)
        0
    """
    _check_groups(model, groups)
    if optimizer is not None:
        _check_optimizer(optimizer)
    count = len(groups)
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or not -count <= n < count:
        raise LensError(
            f"`n` must be an int between {-count} and {count - 1} (the model has {count} "
            f"parameter groups), got {n!r}. Use 0 to unfreeze everything, -1 to train only the "
            "last group."
        )
    frozen_idx = int(n) if n >= 0 else count + int(n)
    keep_training = _norm_parameter_ids(model) if train_bn else set()
    # Same order as fastai: the trainable groups first, then the frozen ones, so that a parameter
    # shared by both ends up frozen as it does in fastai.
    for group in groups[frozen_idx:]:
        for parameter in group:
            parameter.requires_grad_(True)
    for group in groups[:frozen_idx]:
        for parameter in group:
            parameter.requires_grad_(id(parameter) in keep_training)
    if optimizer is not None:
        _clear_optimizer_state(optimizer)
    return frozen_idx


def freeze(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    train_bn: bool = True,
    *,
    optimizer: Any = None,
) -> int:
    """Freeze every group but the last: train only the head (and norm layers, with ``train_bn``).

    Mirrors `fastai.learner.Learner.freeze`, which is ``freeze_to(-1)``; like it, clears the
    state of ``optimizer`` when one is given (see `freeze_to`).

    Args:
        model: The model the groups come from.
        groups: Parameter groups, in order, e.g. ``param_groups(model, arch)``.
        train_bn: Keep normalization layers training in frozen groups (fastai's default).
        optimizer: The optimizer training these groups; its state is cleared, as fastai clears
            its own at every freeze.

    Returns:
        The number of frozen groups, ``len(groups) - 1``.

    Examples:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        >>> freeze(model, [list(model[0].parameters()), list(model[1].parameters())])
        1
        >>> model[0].weight.requires_grad, model[1].weight.requires_grad
        (False, True)
    """
    return freeze_to(model, groups, -1, train_bn=train_bn, optimizer=optimizer)


def unfreeze(
    model: nn.Module, groups: Sequence[Sequence[torch.Tensor]], *, optimizer: Any = None
) -> int:
    """Make every parameter of every group trainable.

    Mirrors `fastai.learner.Learner.unfreeze`, which is ``freeze_to(0)``; like it, clears the
    state of ``optimizer`` when one is given (see `freeze_to`): the unfrozen phase of
    ``fine_tune`` starts Adam afresh.

    Args:
        model: The model the groups come from.
        groups: Parameter groups, in order, e.g. ``param_groups(model, arch)``.
        optimizer: The optimizer training these groups; its state is cleared, as fastai clears
            its own at every unfreeze.

    Returns:
        0, the number of frozen groups.

    Examples:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
        >>> groups = [list(model[0].parameters()), list(model[1].parameters())]
        >>> freeze(model, groups), unfreeze(model, groups)
        (1, 0)
        >>> all(p.requires_grad for p in model.parameters())
        True
    """
    return freeze_to(model, groups, 0, optimizer=optimizer)
