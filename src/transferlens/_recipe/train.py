"""fastai's ``Learner.fine_tune`` as a plain PyTorch training loop.

``learn.fine_tune(epochs)`` (``fastai/callback/schedule.py``) is two ``fit_one_cycle`` calls:
``freeze()``, a cycle of ``freeze_epochs`` at ``slice(base_lr)``; then ``unfreeze()`` and a cycle of
``epochs`` at ``slice(base_lr / 2 / lr_mult, base_lr / 2)``. `fine_tune` below runs the same phases
with the same pieces, each tested against fastai: `freeze_to` (which also clears the optimizer's
state, as ``Learner.freeze_to`` does), `Adam` (fastai's optimizer, op for op) over
`optimizer_param_groups` (fastai's weight-decay exemptions), and a `OneCycleScheduler` per phase
playing `fine_tune_plan`. On the same starting weights and the same batches, on the CPU, the
trained weights and BatchNorm statistics equal fastai's bit for bit.

Needs beside it: ``checks.py``, ``errors.py``, ``fine_tune_plan.py``, ``freeze.py``,
``one_cycle.py``, ``optim.py``, ``scheduler.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .checks import GROUP_INDEX, check_module, check_non_negative_float
from .errors import LensError
from .fine_tune_plan import (
    DEFAULT_BASE_LR,
    DEFAULT_DIV,
    DEFAULT_FREEZE_EPOCHS,
    DEFAULT_LR_MULT,
    DEFAULT_PCT_START,
    fine_tune_plan,
)
from .freeze import _check_groups, freeze_to
from .one_cycle import DEFAULT_MOMS
from .optim import Adam, optimizer_param_groups
from .scheduler import OneCycleScheduler


@dataclass(frozen=True)
class BatchRecord:
    """What one training batch of `fine_tune` trained with, and its loss.

    Attributes:
        phase: ``"frozen"`` or ``"unfrozen"``.
        epoch: The epoch inside the phase, from 0.
        lr: The learning rate of each parameter group (fastai's groups, first to last).
        mom: The momentum (Adam's first beta) of each group; fastai sets one for all.
        loss: The batch's loss, before the optimizer step.
    """

    phase: str
    epoch: int
    lr: tuple[float, ...]
    mom: tuple[float, ...]
    loss: float


def fine_tune(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    train_loader: Iterable[Any],
    epochs: int,
    *,
    loss_func: Callable[..., torch.Tensor] | None = None,
    base_lr: float = DEFAULT_BASE_LR,
    freeze_epochs: int = DEFAULT_FREEZE_EPOCHS,
    lr_mult: float = DEFAULT_LR_MULT,
    pct_start: float = DEFAULT_PCT_START,
    div: float = DEFAULT_DIV,
    wd: float = 0.01,
    moms: tuple[float, float, float] = DEFAULT_MOMS,
    train_bn: bool = True,
    device: torch.device | str | None = None,
) -> list[BatchRecord]:
    """Train ``model`` as fastai's ``Learner.fine_tune`` does, in a plain PyTorch loop.

    Mirrors ``Learner.fine_tune`` (``fastai/callback/schedule.py``) with fastai's defaults
    (``vision_learner``'s ``Adam``, ``wd_bn_bias=False``, no callbacks beyond the schedule):

    1. `freeze` (every group but the last, normalization layers kept training with
       ``train_bn``), clearing the optimizer's state; ``freeze_epochs`` epochs of 1cycle at
       ``slice(base_lr)`` with ``pct_start=0.99`` and ``div=25``;
    2. `unfreeze`, clearing the optimizer's state again; ``epochs`` epochs of 1cycle at
       ``slice(base_lr / 2 / lr_mult, base_lr / 2)`` with ``pct_start`` and ``div``.

    The optimizer is `Adam` (fastai's, op for op) over `optimizer_param_groups` with ``wd``;
    `OneCycleScheduler` sets each group's learning rate and the momentum before every batch.
    Each epoch starts with ``model.train()`` and iterates ``train_loader`` anew; after each
    batch the gradients are zeroed, not dropped, as fastai's ``zero_grad`` does. fastai's
    validation pass after each epoch changes no weight and is left out.

    Args:
        model: The model, e.g. `create_vision_model`'s. Trained in place.
        groups: Its parameter groups, e.g. ``param_groups(model, arch)``; their number sets the
            number of learning rates.
        train_loader: Batches of ``(inputs, targets)``, iterated once per epoch: a
            ``DataLoader``, a list... (not a one-shot iterator). Its ``len`` is the number of
            batches per epoch, as fastai's ``n_iter``.
        epochs: Epochs of the unfrozen phase (at least 1).
        loss_func: ``loss_func(outputs, targets)``; ``nn.CrossEntropyLoss()`` by default
            (fastai's ``CrossEntropyLossFlat`` for a single-label classifier).
        base_lr: The peak rate of the last group in the frozen phase.
        freeze_epochs: Epochs of the frozen phase; 0 skips it.
        lr_mult: Ratio of the last group's peak rate to the first's in the unfrozen phase.
        pct_start: Fraction of the unfrozen cycle spent warming up.
        div: The unfrozen cycle starts at its peak rates divided by ``div``.
        wd: Decoupled weight decay (not for normalization layers and biases).
        moms: Momentum at the start, at the peak rate and at the end of each cycle.
        train_bn: Keep normalization layers training in frozen groups.
        device: Where to train; the model is moved there. ``None`` keeps the model where it is
            (the device of its parameters). Every batch is moved to the model's device.

    Returns:
        One `BatchRecord` per training batch, in order, with the phase, the epoch, each group's
        learning rate and momentum, and the loss.

    Raises:
        LensError: An argument is out of range or of the wrong kind (the message names it), or
            ``train_loader`` gives a different number of batches than its ``len``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        >>> groups = [list(model[:2].parameters()), list(model[2].parameters())]
        >>> batches = [(torch.randn(4, 4), torch.tensor([0, 1, 2, 0])) for _ in range(3)]
        >>> records = fine_tune(model, groups, batches, epochs=2)
        >>> len(records), records[0].phase, records[-1].phase, len(records[0].lr)
        (9, 'frozen', 'unfrozen', 2)
        >>> records[0].lr == (2e-3 / 10 / 25, 2e-3 / 25)
        True
    """
    model = check_module(model, "model")
    _check_groups(model, groups)
    steps_per_epoch = _check_loader(train_loader)
    _check_flag(train_bn, "train_bn")
    if loss_func is None:
        loss_func = nn.CrossEntropyLoss()
    elif not callable(loss_func):
        raise LensError(
            f"`loss_func` must be callable as loss_func(outputs, targets), got "
            f"{type(loss_func).__name__}. Leave it out for nn.CrossEntropyLoss()."
        )
    wd = check_non_negative_float(wd, "wd", default=0.01)
    plan = fine_tune_plan(
        epochs,
        steps_per_epoch,
        base_lr=base_lr,
        freeze_epochs=freeze_epochs,
        lr_mult=lr_mult,
        pct_start=pct_start,
        div=div,
        n_groups=len(groups),
        moms=moms,
    )
    if device is None:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    else:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise LensError(
                f"`device` must name a torch device such as 'cpu' or 'cuda', got {device!r}."
            ) from error
        model.to(device)

    optimizer = Adam(optimizer_param_groups(model, groups, wd=wd), betas=(moms[0], 0.99))
    records: list[BatchRecord] = []
    for phase in plan.phases:
        # Learner.freeze / Learner.unfreeze: freeze_to(n), then opt.clear_state().
        freeze_to(model, groups, phase.frozen_idx, train_bn=train_bn, optimizer=optimizer)
        scheduler = OneCycleScheduler(optimizer, phase.schedule)
        for epoch in range(phase.epochs):
            model.train()
            count = 0
            for batch in train_loader:
                inputs, targets = _unpack(batch)
                inputs, targets = inputs.to(device), targets.to(device)
                loss = loss_func(model(inputs), targets)
                loss.backward()
                records.append(_record(phase.name, epoch, optimizer, len(groups), loss))
                optimizer.step()
                optimizer.zero_grad(set_to_none=False)
                scheduler.step()
                count += 1
            if count != steps_per_epoch:
                raise LensError(
                    f"`train_loader` gave {count} batches in an epoch but its len() is "
                    f"{steps_per_epoch}; the schedule needs the batch count up front. Pass a "
                    "loader whose len() is the number of batches it yields."
                )
    return records


def _check_loader(train_loader: object) -> int:
    if isinstance(train_loader, Iterator):
        raise LensError(
            "`train_loader` is a one-shot iterator; fine_tune iterates it once per epoch. Pass "
            "a DataLoader or a list of (inputs, targets) batches."
        )
    try:
        count = len(train_loader)  # type: ignore[arg-type]
    except TypeError as error:
        raise LensError(
            f"`train_loader` must have a len() (the batches per epoch), got "
            f"{type(train_loader).__name__}. Pass a DataLoader or a list of (inputs, targets) "
            "batches."
        ) from error
    if count < 1:
        raise LensError("`train_loader` is empty: it must give at least one batch per epoch.")
    return count


def _check_flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise LensError(f"`{name}` must be True or False, got {value!r}.")


def _unpack(batch: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, Sequence) or len(batch) != 2:
        size = f" of length {len(batch)}" if isinstance(batch, Sequence) else ""
        raise LensError(
            f"`train_loader` must yield (inputs, targets) pairs, got {type(batch).__name__}{size}."
        )
    return batch[0], batch[1]


def _record(
    phase: str, epoch: int, optimizer: torch.optim.Optimizer, n_groups: int, loss: torch.Tensor
) -> BatchRecord:
    lrs: list[float] = [0.0] * n_groups
    moms: list[float] = [0.0] * n_groups
    for group in optimizer.param_groups:
        lrs[group[GROUP_INDEX]] = float(group["lr"])
        moms[group[GROUP_INDEX]] = float(group["betas"][0])
    return BatchRecord(phase, epoch, tuple(lrs), tuple(moms), float(loss.detach().item()))
