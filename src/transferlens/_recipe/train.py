"""fastai's ``Learner.fine_tune`` as a plain PyTorch training loop.

``learn.fine_tune(epochs)`` (``fastai/callback/schedule.py``) is two ``fit_one_cycle`` calls:
``freeze()``, a cycle of ``freeze_epochs`` at ``slice(base_lr)``; then ``unfreeze()`` and a cycle of
``epochs`` at ``slice(base_lr / 2 / lr_mult, base_lr / 2)``. `fine_tune` below runs the same phases
with the same pieces, each tested against fastai: `freeze_to` (which also clears the optimizer's
state, as ``Learner.freeze_to`` does), `Adam` (fastai's optimizer, op for op) over
`optimizer_param_groups` (fastai's weight-decay exemptions), and a `OneCycleScheduler` per phase
playing `fine_tune_plan`. On the same starting weights and the same batches, on the CPU, the
trained weights and BatchNorm statistics equal fastai's bit for bit, and so does the table fastai
prints after each epoch (`FineTuneLog`: the smoothed training loss, and with a validation loader
its loss and error rate).

Before training, the arguments and the first batch are checked, so that the usual mistakes (a
dataset instead of a DataLoader, one-hot or float targets, a one-wide output, a last batch of one
image for BatchNorm) stop with a `LensError` that says what to pass instead of a torch error deep
inside the loop. The checks read the batch the loop would train on first and run the model on it
once in eval mode without gradients: no random number is drawn, no statistic moves.

Needs beside it: ``checks.py``, ``errors.py``, ``eval_mode.py``, ``fine_tune_plan.py``,
``freeze.py``, ``one_cycle.py``, ``optim.py``, ``scheduler.py``.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .checks import (
    GROUP_INDEX,
    check_module,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)
from .errors import LensError
from .eval_mode import eval_mode
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

#: fastai's ``Recorder`` reports ``AvgSmoothLoss(beta=0.98)`` as an epoch's ``train_loss``.
SMOOTH_BETA = 0.98

_COLUMNS = ("phase", "epoch", "train_loss", "valid_loss", "error_rate", "time")
_WIDTHS = (8, 5, 10, 10, 10, 5)


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


@dataclass(frozen=True)
class EpochRecord:
    """One row of the table fastai prints after each epoch of ``fine_tune``.

    Each number is computed as fastai's ``Recorder`` (``fastai/learner.py``) computes it, in the
    same float32 operations, so on the same batches it is fastai's to the last bit.

    Attributes:
        phase: ``"frozen"`` or ``"unfrozen"``.
        epoch: The epoch inside the phase, from 0 (fastai numbers each ``fit_one_cycle`` from 0).
        train_loss: fastai's ``train_loss``: not the epoch's mean but the smoothed loss
            (``AvgSmoothLoss``) after its last batch, an exponential moving average of the batch
            losses with ``beta=0.98``, debiased, and restarted at each phase (each ``fit``).
        valid_loss: The loss over the validation set, each batch's mean loss weighted by its
            size (``AvgLoss``); ``None`` without a validation loader.
        error_rate: fastai's ``error_rate`` metric (``AvgMetric``): the fraction of validation
            samples whose highest score is not their class; ``None`` without a validation loader
            or when outputs and targets are not single-label classification ones.
        seconds: Wall time of the epoch, training and validation (fastai's ``time`` column).
    """

    phase: str
    epoch: int
    train_loss: float
    valid_loss: float | None
    error_rate: float | None
    seconds: float


@dataclass(frozen=True)
class FineTuneLog:
    """What `fine_tune` returns: every training batch, and the per-epoch table fastai prints.

    ``str(log)`` (and ``print(log)``) is that table, one line per epoch, numbers formatted as
    fastai formats them (six decimals, ``None`` without a validation loader, time as mm:ss).

    Attributes:
        batches: One `BatchRecord` per training batch, in order.
        epochs: One `EpochRecord` per epoch, in order, both phases.

    Examples:
        >>> log = FineTuneLog([], [EpochRecord("frozen", 0, 1.5, 1.25, 0.5, 12.0)])
        >>> print(log)
        phase     epoch  train_loss  valid_loss  error_rate  time
        frozen    0      1.500000    1.250000    0.500000    00:12
    """

    batches: list[BatchRecord]
    epochs: list[EpochRecord]

    def __str__(self) -> str:
        return "\n".join([_table_line(_COLUMNS), *(_epoch_line(e) for e in self.epochs)])


def fine_tune(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    train_loader: Iterable[Any],
    epochs: int,
    *,
    valid_loader: Iterable[Any] | None = None,
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
    show: bool = False,
) -> FineTuneLog:
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
    batch the gradients are zeroed, not dropped, as fastai's ``zero_grad`` does. Each epoch ends
    as fastai's does, with ``model.eval()`` (``TrainEvalCallback.before_validate``) and, given a
    ``valid_loader``, one pass over it under ``torch.no_grad()``: it changes no weight, no
    BatchNorm statistic, and draws no random number but what iterating the loader draws (as in
    fastai, which iterates its own validation loader at the same point). So the model is in
    eval mode when `fine_tune` returns, every module's ``training`` False, as fastai leaves it.

    Before training (and before any change to the model but the move to ``device``), the first
    batch of ``train_loader`` (the one training starts with, not an extra one) is checked and
    run through the model once in eval mode without gradients, which draws no random number
    and moves no statistic: a dataset or unbatched samples, targets the default cross-entropy
    cannot take, a model output one score wide or narrower than the classes, and a batch of one
    sample that a BatchNorm layer could not normalize in training mode are refused with a
    `LensError` that says what to pass. Every later batch's class indices are checked too,
    before the model sees them.

    Args:
        model: The model, e.g. `create_vision_model`'s. Trained in place.
        groups: Its parameter groups, e.g. ``param_groups(model, arch)``; their number sets the
            number of learning rates. Build them after moving the model to its device.
        train_loader: Batches of ``(inputs, targets)``, iterated once per epoch: a
            ``DataLoader``, a list... (not a one-shot iterator, not a dataset of single
            samples). Its ``len`` is the number of batches per epoch, as fastai's ``n_iter``.
            Pass ``drop_last=True`` to a shuffling ``DataLoader``, as fastai's training loader
            has by default: a last batch of one sample fails in BatchNorm.
        epochs: Epochs of the unfrozen phase (at least 1).
        valid_loader: Batches of ``(inputs, targets)`` to evaluate after every epoch, as
            fastai's ``dls.valid``; ``None`` reports no validation numbers.
        loss_func: ``loss_func(outputs, targets)``; ``nn.CrossEntropyLoss()`` by default
            (fastai's ``CrossEntropyLossFlat`` for a single-label classifier), which wants
            targets of class indices: an int64 tensor of shape ``(batch,)``.
        base_lr: The peak rate of the last group in the frozen phase.
        freeze_epochs: Epochs of the frozen phase; 0 skips it.
        lr_mult: Ratio of the last group's peak rate to the first's in the unfrozen phase (at
            least 1).
        pct_start: Fraction of the unfrozen cycle spent warming up, in ``(0, 1]``.
        div: The unfrozen cycle starts at its peak rates divided by ``div``.
        wd: Decoupled weight decay (not for normalization layers and biases).
        moms: Momentum at the start, at the peak rate and at the end of each cycle, each in
            ``[0, 1)``.
        train_bn: Keep normalization layers training in frozen groups.
        device: Where to train; the model is moved there. ``None`` keeps the model where it is
            (the device of its parameters). Every batch is moved to the model's device.
        show: Print fastai's table as training goes: a header, then one line per epoch.

    Returns:
        A `FineTuneLog` with ``batches``, one `BatchRecord` per training batch (phase, epoch,
        each group's learning rate and momentum, loss), and ``epochs``, one `EpochRecord` per
        epoch (fastai's ``train_loss``, ``valid_loss``, ``error_rate`` and time).

    Raises:
        LensError: An argument is out of range or of the wrong kind (the message names it),
            ``device`` is ``"meta"`` or the model holds meta tensors, moving the model
            replaced the parameters ``groups`` holds, the first batch does not fit the model or
            the loss (the message says what to pass), or ``train_loader`` gives a different
            number of batches than its ``len``.

    Examples:
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
        >>> groups = [list(model[:2].parameters()), list(model[2].parameters())]
        >>> batches = [(torch.randn(4, 4), torch.tensor([0, 1, 2, 0])) for _ in range(3)]
        >>> log = fine_tune(model, groups, batches, epochs=2, valid_loader=batches[:1])
        >>> len(log.batches), log.batches[0].phase, log.batches[-1].phase
        (9, 'frozen', 'unfrozen')
        >>> log.batches[0].lr == (2e-3 / 10 / 25, 2e-3 / 25)
        True
        >>> [(e.phase, e.epoch) for e in log.epochs], model.training
        ([('frozen', 0), ('unfrozen', 0), ('unfrozen', 1)], False)
        >>> print(log)
        phase     epoch  train_loss  valid_loss  error_rate  time
        frozen    0      ...
        unfrozen  0      ...
        unfrozen  1      ...
    """
    model = check_module(model, "model")
    epochs = check_positive_int(epochs, "epochs")
    freeze_epochs = check_positive_int(freeze_epochs, "freeze_epochs", allow_zero=True)
    base_lr = check_positive_float(base_lr, "base_lr")
    lr_mult = _check_lr_mult(lr_mult)
    pct_start = _check_pct_start(pct_start)
    div = check_positive_float(div, "div")
    wd = check_non_negative_float(wd, "wd", default=0.01)
    moms = _check_moms(moms)
    _check_flag(train_bn, "train_bn")
    _check_flag(show, "show")
    loss_kind = _loss_kind(loss_func)
    if loss_func is None:
        loss_func = nn.CrossEntropyLoss()
    target_device = _check_device(device)
    _check_model_tensors(model)
    _check_groups(model, groups)
    steps_per_epoch = _check_loader(train_loader)
    _check_valid_loader(valid_loader, model, loss_kind)
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
    if target_device is None:
        first = next(iter(model.parameters()), None)
        target_device = first.device if first is not None else torch.device("cpu")
    else:
        model.to(target_device)
        # A .to() may replace the parameter objects (the meta device, XLA, or
        # torch.__future__.set_overwrite_module_params_on_conversion(True)).
        _check_groups(model, groups, moved_to=target_device)

    # The first epoch's batches: the first is checked here, then trained on like the others.
    # Nothing between this and the first training step draws a random number.
    first_epoch = iter(train_loader)
    first_batch = next(first_epoch, _NO_BATCH)
    if first_batch is _NO_BATCH:
        raise LensError(
            f"`train_loader` gave no batch, but its len() is {steps_per_epoch}. Pass a loader "
            "whose len() is the number of batches it yields."
        )
    n_classes = _check_first_batch(
        model, train_loader, first_batch, loss_kind, loss_func, target_device
    )
    pending: Iterator[Any] | None = itertools.chain([first_batch], first_epoch)

    optimizer = Adam(optimizer_param_groups(model, groups, wd=wd), betas=(moms[0], 0.99))
    batches: list[BatchRecord] = []
    epoch_records: list[EpochRecord] = []
    if show:
        print(_table_line(_COLUMNS), flush=True)
    for phase in plan.phases:
        # Learner.freeze / Learner.unfreeze: freeze_to(n), then opt.clear_state().
        freeze_to(model, groups, phase.frozen_idx, train_bn=train_bn, optimizer=optimizer)
        scheduler = OneCycleScheduler(optimizer, phase.schedule)
        smooth = _SmoothLoss()  # Recorder.before_fit: each fit_one_cycle starts afresh
        for epoch in range(phase.epochs):
            started = time.perf_counter()
            model.train()
            epoch_batches = train_loader if pending is None else pending
            pending = None
            count = 0
            for batch in epoch_batches:
                inputs, targets = _unpack(batch, "train_loader")
                if n_classes is not None:  # before the GPU sees it: a bad index kills CUDA
                    _check_class_range(targets, n_classes, loss_func, "train_loader")
                inputs, targets = inputs.to(target_device), targets.to(target_device)
                loss = loss_func(model(inputs), targets)
                loss.backward()
                batches.append(_record(phase.name, epoch, optimizer, len(groups), loss))
                optimizer.step()
                optimizer.zero_grad(set_to_none=False)
                scheduler.step()
                smooth.add(loss)
                count += 1
            if count != steps_per_epoch:
                raise LensError(
                    f"`train_loader` gave {count} batches in an epoch but its len() is "
                    f"{steps_per_epoch}; the schedule needs the batch count up front. Pass a "
                    "loader whose len() is the number of batches it yields."
                )
            train_loss = smooth.value
            model.eval()  # TrainEvalCallback.before_validate, with or without a valid set
            valid_loss, error_rate = None, None
            if valid_loader is not None:
                valid_loss, error_rate = _validate(
                    model, valid_loader, loss_func, loss_kind, n_classes, target_device
                )
            record = EpochRecord(
                phase.name,
                epoch,
                train_loss,
                valid_loss,
                error_rate,
                time.perf_counter() - started,
            )
            epoch_records.append(record)
            if show:
                print(_epoch_line(record), flush=True)
    return FineTuneLog(batches, epoch_records)


# ---------------------------------------------------------------------------------------------
# Arguments


def _check_lr_mult(lr_mult: object) -> float:
    value = check_positive_float(lr_mult, "lr_mult")
    if value < 1:
        raise LensError(
            f"`lr_mult` must be at least 1 (the last group's rate over the first's), got "
            f"{lr_mult!r}. fastai's default is {DEFAULT_LR_MULT:g}."
        )
    return value


def _check_pct_start(pct_start: object) -> float:
    value = check_positive_float(pct_start, "pct_start")
    if value > 1:
        raise LensError(
            f"`pct_start` must be in (0, 1], the fraction of the cycle spent warming up; got "
            f"{pct_start!r}. fastai's default for fine_tune is {DEFAULT_PCT_START}."
        )
    return value


def _check_moms(moms: object) -> tuple[float, float, float]:
    if isinstance(moms, str | bytes) or not isinstance(moms, Sequence) or len(moms) != 3:
        raise LensError(
            f"`moms` must be three numbers (at the start, at the peak rate, at the end), got "
            f"{moms!r}. fastai's default is {DEFAULT_MOMS}."
        )
    values = []
    for index, mom in enumerate(moms):
        value = check_non_negative_float(mom, f"moms[{index}]")
        if value >= 1:
            raise LensError(
                f"`moms[{index}]` must be below 1 (it is Adam's first beta), got {mom!r}. "
                f"fastai's default `moms` is {DEFAULT_MOMS}."
            )
        values.append(value)
    return (values[0], values[1], values[2])


def _check_flag(value: object, name: str) -> None:
    if not isinstance(value, bool):
        raise LensError(f"`{name}` must be True or False, got {value!r}.")


def _loss_kind(loss_func: object) -> str:
    """``"default"`` (None: our cross-entropy), ``"cross_entropy"`` (the user's
    ``nn.CrossEntropyLoss``, or fastai's ``CrossEntropyLossFlat`` around one) or ``"other"``."""
    if loss_func is None:
        return "default"
    if not callable(loss_func):
        raise LensError(
            f"`loss_func` must be callable as loss_func(outputs, targets), got "
            f"{type(loss_func).__name__}. Leave it out for nn.CrossEntropyLoss()."
        )
    if isinstance(loss_func, nn.CrossEntropyLoss) or isinstance(
        getattr(loss_func, "func", None), nn.CrossEntropyLoss
    ):
        return "cross_entropy"
    return "other"


def _check_device(device: object) -> torch.device | None:
    if device is None:
        return None
    try:
        parsed = torch.device(device)  # type: ignore[arg-type]
    except (RuntimeError, TypeError) as error:
        raise LensError(
            f"`device` must name a torch device such as 'cpu' or 'cuda', got {device!r}."
        ) from error
    if parsed.type == "meta":
        raise LensError(
            "`device` is 'meta': meta tensors hold shapes but no values, so nothing can train "
            "on them. Train on a real device, e.g. device='cpu' or device='cuda'."
        )
    return parsed


def _check_model_tensors(model: nn.Module) -> None:
    for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
        if isinstance(tensor, nn.parameter.UninitializedTensorMixin):
            raise LensError(
                f"`model` has lazy layers not initialized yet (`{name}`). Run one batch through "
                "it first (model(inputs)), then build the groups and fine-tune."
            )
        if tensor.is_meta:
            raise LensError(
                f"`model` holds meta tensors (`{name}`): they have shapes but no values, so "
                "nothing can train on them. Build the model on a real device, or give it "
                "values first: model.to_empty(device='cpu'), then load_state_dict(...); then "
                "build the groups."
            )


def _check_loader(train_loader: object) -> int:
    _refuse_dataset(train_loader, "train_loader")
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


def _check_valid_loader(valid_loader: object, model: nn.Module, loss_kind: str) -> None:
    if valid_loader is None:
        return
    _refuse_dataset(valid_loader, "valid_loader")
    if isinstance(valid_loader, Iterator):
        raise LensError(
            "`valid_loader` is a one-shot iterator; fine_tune iterates it after every epoch. "
            "Pass a DataLoader or a list of (inputs, targets) batches."
        )
    if not isinstance(valid_loader, Iterable):
        raise LensError(
            f"`valid_loader` must be iterable, got {type(valid_loader).__name__}. Pass a "
            "DataLoader or a list of (inputs, targets) batches, or leave it out."
        )
    # A list's first batch can be read now for free; a loader's cannot (iterating it draws
    # random numbers), so its first batch is checked when validation reaches it.
    if isinstance(valid_loader, list | tuple) and valid_loader:
        inputs, targets = _unpack(valid_loader[0], "valid_loader")
        _check_batch(model, inputs, targets, loss_kind, "valid_loader")


def _refuse_dataset(loader: object, name: str) -> None:
    if type(loader).__name__ == "DataLoaders" and hasattr(loader, "valid"):
        raise LensError(
            f"`{name}` is a fastai DataLoaders, a training and a validation loader together. "
            "Pass train_loader=dls.train and valid_loader=dls.valid."
        )
    if isinstance(loader, Dataset) and not isinstance(loader, IterableDataset | DataLoader):
        options = "shuffle=True, drop_last=True" if name == "train_loader" else "shuffle=False"
        raise LensError(
            f"`{name}` is a {type(loader).__name__}, a dataset of single samples; fine_tune "
            f"needs batches. Wrap it in a DataLoader: DataLoader(dataset, batch_size=64, "
            f"{options}). (If its items are already batches, DataLoader(dataset, "
            "batch_size=None).)"
        )


# ---------------------------------------------------------------------------------------------
# The first batch


_NO_BATCH = object()


def _unpack(batch: object, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, Sequence) or isinstance(batch, str) or len(batch) != 2:
        size = f" of length {len(batch)}" if isinstance(batch, Sequence) else ""
        raise LensError(
            f"`{name}` must yield (inputs, targets) pairs, got {type(batch).__name__}{size}."
        )
    return batch[0], batch[1]


def _check_first_batch(
    model: nn.Module,
    train_loader: object,
    batch: object,
    loss_kind: str,
    loss_func: Callable[..., torch.Tensor],
    device: torch.device,
) -> int | None:
    """Check the first training batch, and the model's output on it, before training.

    Returns the number of classes the model scores, with a cross-entropy loss (else None).
    """
    inputs, targets = _unpack(batch, "train_loader")
    _check_batch(model, inputs, targets, loss_kind, "train_loader")
    outputs, single_value_norms = _probe(model, inputs.to(device))
    _check_outputs(outputs, targets, loss_kind, loss_func, "train_loader")
    if single_value_norms:
        one = _batch_of_one(train_loader, int(inputs.shape[0]))
        if one is not None:
            name, kind = single_value_norms[0]
            raise LensError(
                f"`train_loader`: {one}, and the model's layer `{name}` ({kind}) sees one value "
                "per channel for each sample: in training mode BatchNorm cannot normalize a "
                "batch of one (torch stops with 'Expected more than 1 value per channel when "
                "training'). Pass drop_last=True to the training DataLoader (fastai's training "
                "DataLoader drops the last partial batch by default: drop_last=shuffle), or use "
                "a batch size that leaves no single sample."
            )
    return None if loss_kind == "other" else int(outputs.shape[1])  # type: ignore[union-attr]


def _check_batch(
    model: nn.Module, inputs: object, targets: object, loss_kind: str, name: str
) -> None:
    """Refuse a batch that is a single sample, or targets the default cross-entropy refuses."""
    if not isinstance(inputs, torch.Tensor):
        raise LensError(
            f"`{name}` must yield (inputs, targets) pairs of tensors; its inputs are a "
            f"{type(inputs).__name__}."
        )
    if not isinstance(targets, torch.Tensor) or targets.ndim == 0:
        if not isinstance(targets, torch.Tensor | int | float | bool):
            raise LensError(
                f"`{name}` must yield (inputs, targets) pairs of tensors; its targets are a "
                f"{type(targets).__name__}."
            )
        what = (
            "a tensor with no batch dimension"
            if isinstance(targets, torch.Tensor)
            else (f"a {type(targets).__name__}")
        )
        raise _unbatched(name, f"its targets are {what}, one label")
    if loss_kind == "other":
        return
    # Inputs one dimension short of what the first convolution takes look like one sample; on
    # their own they could be a model that unsqueezes inside, so they only explain other faults.
    wanted = _conv_input_ndim(model)
    single = ""
    if wanted is not None and inputs.ndim == wanted - 1:
        single = (
            f"its inputs have shape {tuple(inputs.shape)}, one sample where the model's first "
            f"convolution takes {wanted}-d batches"
        )
    if inputs.ndim and inputs.shape[0] != targets.shape[0]:
        if single:
            raise _unbatched(name, f"{single}, and its targets shape {tuple(targets.shape)}")
        raise LensError(
            f"`{name}` gave inputs for {inputs.shape[0]} samples but targets for "
            f"{targets.shape[0]} (shapes {tuple(inputs.shape)} and {tuple(targets.shape)}). "
            "Each batch must be (inputs, targets) with the same first dimension."
        )
    if loss_kind == "default" and targets.dtype not in (torch.int64, torch.uint8):
        expected = "class indices: an int64 tensor of shape (batch,)"
        also = f" Also, {single}: {_wrap_advice(name)}" if single else ""
        if targets.is_floating_point():
            raise LensError(
                f"`{name}` gave targets of dtype {targets.dtype} and shape "
                f"{tuple(targets.shape)}, but the default loss, nn.CrossEntropyLoss(), takes "
                f"{expected}, e.g. tensor([3, 0, 1]). For one-hot targets pass "
                "targets.argmax(1); for class probabilities pass "
                "loss_func=nn.CrossEntropyLoss() explicitly; for one float per sample (binary, "
                f"regression) pass a loss that takes floats, e.g. nn.BCEWithLogitsLoss().{also}"
            )
        raise LensError(
            f"`{name}` gave targets of dtype {targets.dtype}, but the default loss, "
            f"nn.CrossEntropyLoss(), takes {expected}. Convert them with targets.long().{also}"
        )


def _wrap_advice(name: str) -> str:
    options = "shuffle=True, drop_last=True" if name == "train_loader" else "shuffle=False"
    return (
        "fine_tune trains on batches of (inputs, targets): wrap the samples in a DataLoader, "
        f"e.g. DataLoader(dataset, batch_size=64, {options})."
    )


def _unbatched(name: str, what: str) -> LensError:
    return LensError(f"`{name}` gave a single sample, not a batch: {what}. {_wrap_advice(name)}")


def _conv_input_ndim(model: nn.Module) -> int | None:
    """The input rank the model's first convolution takes batched (4 for Conv2d), if any."""
    for module in model.modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return 2 + len(module.kernel_size)
    return None


def _probe(model: nn.Module, inputs: torch.Tensor) -> tuple[object, list[tuple[str, str]]]:
    """Run ``model`` on ``inputs`` in eval mode without gradients: no statistic moves, no
    dropout mask is drawn. Return the outputs and the BatchNorm layers that see one value per
    channel per sample (those a batch of one breaks in training mode)."""
    single: list[tuple[str, str]] = []

    def note(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> None:
            x = args[0] if args else None
            if isinstance(x, torch.Tensor) and x.ndim >= 2 and math.prod(x.shape[2:]) == 1:
                single.append((name, type(module).__name__))

        return hook

    handles = [
        module.register_forward_pre_hook(note(name))
        for name, module in model.named_modules()
        if isinstance(module, _BatchNorm)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            outputs = model(inputs)
    except (RuntimeError, TypeError, ValueError, IndexError) as error:
        raise LensError(
            f"`model` failed on the first batch of `train_loader` (inputs of shape "
            f"{tuple(inputs.shape)}, {inputs.dtype}, on {inputs.device}): {error}"
        ) from error
    finally:
        for handle in handles:
            handle.remove()
    return outputs, single


def _check_outputs(
    outputs: object,
    targets: torch.Tensor,
    loss_kind: str,
    loss_func: Callable[..., torch.Tensor],
    name: str,
) -> None:
    """With cross-entropy: one score per class, and targets that fit the scores."""
    if loss_kind == "other":
        return
    if not isinstance(outputs, torch.Tensor) or outputs.ndim < 2:
        got = (
            f"shape {tuple(outputs.shape)}"
            if isinstance(outputs, torch.Tensor)
            else type(outputs).__name__
        )
        raise LensError(
            f"`model` returned {got} on the first batch of `{name}`, but cross-entropy needs "
            "scores of shape (batch, classes). Give the model a head with n_out=<number of "
            "classes>, or pass a `loss_func` for these outputs."
        )
    width = int(outputs.shape[1])
    if width == 1:
        raise LensError(
            f"`model` outputs one score per sample (shape {tuple(outputs.shape)}), but "
            "cross-entropy needs one score per class: over a single class it is always 0, so "
            "nothing would train (and a target of 1 is out of bounds). For a classifier build "
            "the head with n_out=2 (the number of classes); for one output per sample pass "
            "loss_func=nn.BCEWithLogitsLoss() with float targets shaped like the output, "
            "(batch, 1)."
        )
    if loss_kind == "default":
        expected = (int(outputs.shape[0]), *(int(s) for s in outputs.shape[2:]))
        if tuple(targets.shape) != expected:
            raise LensError(
                f"`{name}` gave targets of shape {tuple(targets.shape)} for outputs of shape "
                f"{tuple(outputs.shape)}, but the default loss, nn.CrossEntropyLoss(), takes "
                f"one class index per sample: targets of shape {expected}, int64. For targets "
                "of shape (batch, 1) pass targets.view(-1); for one-hot ones targets.argmax(1)."
            )
    _check_class_range(targets, width, loss_func, name)


def _check_class_range(
    targets: torch.Tensor, width: int, loss_func: Callable[..., torch.Tensor], name: str
) -> None:
    """Refuse class indices outside ``[0, width)`` (the loss's ``ignore_index`` aside)."""
    if not isinstance(targets, torch.Tensor) or targets.is_floating_point() or not targets.numel():
        return
    if targets.dtype == torch.bool or targets.is_complex():
        return
    inner = getattr(loss_func, "func", None)  # fastai's CrossEntropyLossFlat wraps one
    ignore = getattr(loss_func, "ignore_index", getattr(inner, "ignore_index", -100))
    kept = targets[targets != ignore]
    if not kept.numel():
        return
    low, high = (int(v) for v in torch.aminmax(kept))
    if low < 0:
        raise LensError(
            f"`{name}` gave a target class of {low}; class indices run from 0 to the number "
            "of classes - 1."
        )
    if high >= width:
        raise LensError(
            f"`{name}` gave a target of class {high}, but the model outputs {width} scores per "
            f"sample: one per class is needed, so n_out must be the number of classes (at "
            f"least {high + 1}). Build the head with n_out=<number of classes>."
        )


def _batch_of_one(loader: object, first_size: int) -> str | None:
    """Why ``loader`` may give a batch of one sample, or ``None`` when it cannot tell."""
    if first_size == 1:
        return "its first batch holds one sample"
    if isinstance(loader, DataLoader):
        size, drop_last = loader.batch_size, loader.drop_last
        try:  # the sampler's length: a SubsetRandomSampler draws from part of the dataset
            count: int | None = len(loader.sampler)  # type: ignore[arg-type]
        except TypeError:
            count = None
    else:  # fastai's DataLoader: bs, drop_last, n
        size = getattr(loader, "bs", None)
        drop_last = getattr(loader, "drop_last", None)
        count = getattr(loader, "n", None)
    if isinstance(size, int) and isinstance(count, int) and drop_last is False:
        if count % size == 1:
            return (
                f"its last batch holds one sample ({count} samples in batches of {size}, "
                "drop_last=False)"
            )
        return None
    if isinstance(loader, list | tuple):
        for index, batch in enumerate(loader):
            inputs = batch[0] if isinstance(batch, Sequence) and len(batch) == 2 else None
            if isinstance(inputs, torch.Tensor) and inputs.ndim and inputs.shape[0] == 1:
                return f"its batch {index} holds one sample"
    return None


# ---------------------------------------------------------------------------------------------
# Recording


class _SmoothLoss:
    """fastai's ``AvgSmoothLoss`` (``fastai/learner.py``): the training loss of the table."""

    def __init__(self) -> None:
        self.count, self.value_ = 0, torch.tensor(0.0)

    def add(self, loss: torch.Tensor) -> None:
        self.count += 1
        batch = loss.detach().mean().cpu()  # to_detach(learn.loss.mean())
        self.value_ = torch.lerp(batch, self.value_.to(batch.dtype), SMOOTH_BETA)

    @property
    def value(self) -> float:
        return float((self.value_ / (1 - SMOOTH_BETA**self.count)).item())


def _validate(
    model: nn.Module,
    valid_loader: Iterable[Any],
    loss_func: Callable[..., torch.Tensor],
    loss_kind: str,
    n_classes: int | None,
    device: torch.device,
) -> tuple[float | None, float | None]:
    """One pass over ``valid_loader``: fastai's ``AvgLoss`` and ``AvgMetric(error_rate)``.

    Both add each batch's value (on the CPU, in float32) times the batch size, then divide by
    the number of samples, as ``fastai/learner.py`` does, so the numbers are fastai's bits.
    """
    loss_total: Any = 0.0
    error_total: Any = 0.0
    classifying = True
    count = 0
    with torch.no_grad():
        for index, batch in enumerate(valid_loader):
            inputs, targets = _unpack(batch, "valid_loader")
            if index == 0:
                _check_batch(model, inputs, targets, loss_kind, "valid_loader")
            if n_classes is not None:
                _check_class_range(targets, n_classes, loss_func, "valid_loader")
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            if index == 0:
                _check_outputs(outputs, targets, loss_kind, loss_func, "valid_loader")
            loss = loss_func(outputs, targets)
            size = int(targets.shape[0])  # fastai's find_bs(yb)
            loss_total = loss_total + loss.detach().mean().cpu() * size
            classifying = classifying and _is_classification(outputs, targets)
            if classifying:
                error_total = error_total + _error_rate(outputs, targets).cpu() * size
            count += size
    if count == 0:
        return None, None
    valid_loss = float((loss_total / count).item())
    error_rate = float((error_total / count).item()) if classifying else None
    return valid_loss, error_rate


def _is_classification(outputs: object, targets: torch.Tensor) -> bool:
    return (
        isinstance(outputs, torch.Tensor)
        and outputs.ndim == 2
        and not targets.is_floating_point()
        and targets.numel() == outputs.shape[0]
    )


def _error_rate(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    # fastai/metrics.py: error_rate = 1 - accuracy; accuracy flattens argmax(-1) and targets.
    predicted = outputs.argmax(dim=-1).contiguous().view(-1)
    return 1 - (predicted == targets.contiguous().view(-1)).float().mean()


def _record(
    phase: str, epoch: int, optimizer: torch.optim.Optimizer, n_groups: int, loss: torch.Tensor
) -> BatchRecord:
    lrs: list[float] = [0.0] * n_groups
    moms: list[float] = [0.0] * n_groups
    for group in optimizer.param_groups:
        lrs[group[GROUP_INDEX]] = float(group["lr"])
        moms[group[GROUP_INDEX]] = float(group["betas"][0])
    return BatchRecord(phase, epoch, tuple(lrs), tuple(moms), float(loss.detach().item()))


def _format_time(seconds: float) -> str:
    # fastprogress's format_time, which fastai's table uses.
    whole = int(seconds)
    hours, minutes, secs = whole // 3600, (whole // 60) % 60, whole % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _table_line(cells: Sequence[str]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, _WIDTHS, strict=True)).rstrip()


def _epoch_line(record: EpochRecord) -> str:
    def number(value: float | None) -> str:
        return "None" if value is None else f"{value:.6f}"  # as fastai's ProgressCallback

    return _table_line(
        [
            record.phase,
            str(record.epoch),
            number(record.train_loss),
            number(record.valid_loss),
            number(record.error_rate),
            _format_time(record.seconds),
        ]
    )
