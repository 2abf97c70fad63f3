"""fastai's learning-rate recipe as plain numbers: discriminative rates, 1cycle, fine-tune.

fastai never shows the schedule it trains with; it computes each value just before each training
batch. This module computes the same values ahead of time, as tensors you can print, plot, test
and hand to a plain ``torch.optim`` optimizer:

- `discriminative_lrs` -- one learning rate per parameter group, from a float, a list or a
  ``slice``, like ``Optimizer.set_hyper('lr', ...)`` (``fastai/optimizer.py``).
- `one_cycle` -- the learning rates and momentums of ``Learner.fit_one_cycle``
  (``fastai/callback/schedule.py``), one row per training batch.
- `OneCycleScheduler` -- a ``torch.optim.lr_scheduler.LRScheduler`` that plays a
  `OneCycle` into any optimizer, setting the values for batch ``i`` before batch ``i``.
- `fine_tune_plan` -- both phases of ``Learner.fine_tune`` (frozen, then unfrozen).

The values equal fastai's bit for bit on the machines we test on (and to 1e-9 relative, which the
tests assert), because the arithmetic is fastai's own, including its quirks: the position inside
the cycle is accumulated batch by batch and restarted at every epoch (``TrainEvalCallback`` in
``fastai/callback/core.py``), and the position inside each half of the cycle is computed in
float32 (``combine_scheds``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from transferlens._checks import check_positive_float, check_positive_int, is_number
from transferlens._errors import LensError

__all__ = [
    "FineTunePhase",
    "FineTunePlan",
    "OneCycle",
    "OneCycleScheduler",
    "discriminative_lrs",
    "fine_tune_plan",
    "one_cycle",
]

#: What fastai accepts as a learning rate: one rate, one rate per group, or a ``slice``.
LearningRates = float | Sequence[float] | slice

_DEFAULT_MOMS: tuple[float, float, float] = (0.95, 0.85, 0.95)


# ---------------------------------------------------------------------------------------------
# Argument checks: each names the argument, what was expected, and what to do.


def _check_rate(value: object, where: str, name: str) -> float:
    if not is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        raise LensError(
            f"`{name}` must hold positive finite learning rates, but {where} is {value!r}. "
            f"Use a rate greater than 0, e.g. 1e-3."
        )
    return float(value)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Discriminative learning rates


def discriminative_lrs(lr: LearningRates, n_groups: int) -> list[float]:
    """Spread ``lr`` over ``n_groups`` parameter groups, the way fastai does.

    Mirrors ``Optimizer.set_hyper`` in ``fastai/optimizer.py`` (with ``even_mults`` from
    ``fastcore/basics.py``) for the key ``'lr'``:

    - a number: every group gets it;
    - a list or tuple: one rate per group (a single-element list is repeated, as in fastai);
    - ``slice(stop)``: the last group gets ``stop``, every other group ``stop / 10``;
    - ``slice(start, stop)``: rates grow geometrically from ``start`` (first group) to ``stop``
      (last group); with one group it gets ``stop``.

    Args:
        lr: The learning rate(s), in any of the forms above. Every rate must be positive.
        n_groups: How many parameter groups the optimizer has (at least 1).

    Returns:
        One learning rate per group, first group (closest to the input) first.

    Raises:
        LensError: ``n_groups`` is not a positive integer; a rate is not a positive number; a list
            has the wrong length; a slice has a step, no stop, or ``start > stop``.

    Examples:
        >>> discriminative_lrs(1e-3, 2)
        [0.001, 0.001]
        >>> discriminative_lrs(slice(1e-3), 3)
        [0.0001, 0.0001, 0.001]
        >>> [round(rate, 6) for rate in discriminative_lrs(slice(1e-5, 1e-3), 3)]
        [1e-05, 0.0001, 0.001]
    """
    return _per_group_lrs(lr, n_groups, "lr")


def _per_group_lrs(lr: LearningRates, n_groups: int, name: str) -> list[float]:
    """`discriminative_lrs`, with ``name`` (the caller's argument) in the messages."""
    n_groups = check_positive_int(n_groups, "n_groups")
    if isinstance(lr, slice):
        return _slice_lrs(lr, n_groups, name)
    if is_number(lr):
        return [_check_rate(lr, "it", name)] * n_groups
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        rates = [_check_rate(rate, f"`{name}[{i}]`", name) for i, rate in enumerate(lr)]
        if len(rates) == 1:
            return rates * n_groups
        if len(rates) != n_groups:
            raise LensError(
                f"`{name}` has {len(rates)} rates but there are {n_groups} parameter groups "
                f"(`n_groups`). Pass one rate per group, a single rate, or a slice."
            )
        return rates
    raise LensError(
        f"`{name}` must be a number, a list of numbers or a slice, got {type(lr).__name__}. "
        f"Pass e.g. `{name}=1e-3`, `{name}=slice(1e-3)` or `{name}=slice(1e-5, 1e-3)`."
    )


def _slice_lrs(lr: slice, n_groups: int, name: str) -> list[float]:
    if lr.step is not None:
        raise LensError(
            f"`{name}` is a slice with a step ({lr!r}); fastai's slices have none. "
            f"Use `slice(stop)` or `slice(start, stop)`."
        )
    if lr.stop is None:
        raise LensError(
            f"`{name}` is a slice without a stop ({lr!r}). The stop is the last group's rate: "
            f"use `slice(stop)` or `slice(start, stop)`."
        )
    stop = _check_rate(lr.stop, "the slice's stop", name)
    if lr.start is None:
        # fastai/optimizer.py Optimizer.set_hyper: `[v.stop/10]*(n-1) + [v.stop]`
        return [stop / 10] * (n_groups - 1) + [stop]
    start = _check_rate(lr.start, "the slice's start", name)
    if start > stop:
        raise LensError(
            f"`{name}` is slice({start!r}, {stop!r}), but the start (first group's rate) is larger "
            f"than the stop (last group's rate). Swap them: slice({stop!r}, {start!r})."
        )
    # fastcore/basics.py even_mults, written out with the same arithmetic.
    if n_groups == 1:
        return [stop]
    step = (stop / start) ** (1 / (n_groups - 1))
    return [start * (step**i) for i in range(n_groups)]


# ---------------------------------------------------------------------------------------------
# The 1cycle schedule


@dataclass(frozen=True, eq=False)
class OneCycle:
    """The learning rates and momentums of one ``fit_one_cycle`` call, one row per batch.

    Row ``i`` holds the values in force during training batch ``i`` (counted from 0 over all
    epochs), which fastai's ``ParamScheduler.before_batch`` sets just before that batch.
    Build it with `one_cycle`.

    Attributes:
        lr: Learning rates, ``torch.float64`` of shape ``(n_steps, n_groups)``.
        mom: Momentums (``betas[0]`` for Adam, ``momentum`` for SGD), ``torch.float64`` of shape
            ``(n_steps,)``.
        lr_max: The peak rate of each group (what `discriminative_lrs` made of ``lr_max``).
        div: The cycle starts at ``lr_max / div``.
        div_final: The cycle ends near ``lr_max / div_final``.
        pct_start: Fraction of the steps spent warming up.
        moms: Momentum at the start, at the peak learning rate and at the end.
        steps_per_epoch: Batches per epoch (fastai restarts its position count every epoch).

    Examples:
        >>> plan = one_cycle(8, 1e-2)
        >>> plan.lr.shape, plan.mom.shape
        (torch.Size([8, 1]), torch.Size([8]))
        >>> plan.lr[0, 0].item() == 1e-2 / 25
        True
    """

    lr: torch.Tensor
    mom: torch.Tensor
    lr_max: tuple[float, ...]
    div: float
    div_final: float
    pct_start: float
    moms: tuple[float, float, float]
    steps_per_epoch: int

    @property
    def n_steps(self) -> int:
        """The number of training batches the plan covers."""
        return int(self.lr.shape[0])

    @property
    def n_groups(self) -> int:
        """The number of parameter groups the plan sets a learning rate for."""
        return int(self.lr.shape[1])

    def scheduler(self, optimizer: Optimizer, *, momentum: bool = True) -> OneCycleScheduler:
        """Return a `OneCycleScheduler` that plays this plan into ``optimizer``.

        Args:
            optimizer: A ``torch.optim`` optimizer with `n_groups` parameter groups.
            momentum: Also set the momentum (``betas[0]`` or ``momentum``); pass ``False`` for an
                optimizer without one.

        Returns:
            The scheduler; it has already set the values for batch 0. Call its ``step()`` once
            after every ``optimizer.step()``.

        Examples:
            >>> model = torch.nn.Linear(2, 1)
            >>> optimizer = torch.optim.Adam(model.parameters())
            >>> scheduler = one_cycle(4, 1e-2).scheduler(optimizer)
            >>> optimizer.param_groups[0]["lr"] == 1e-2 / 25
            True
        """
        return OneCycleScheduler(optimizer, self, momentum=momentum)

    def __repr__(self) -> str:
        return (
            f"OneCycle(n_steps={self.n_steps}, n_groups={self.n_groups}, lr_max={self.lr_max}, "
            f"div={self.div}, div_final={self.div_final}, pct_start={self.pct_start}, "
            f"moms={self.moms})"
        )


def one_cycle(
    n_steps: int,
    lr_max: LearningRates,
    *,
    n_groups: int = 1,
    div: float = 25.0,
    div_final: float = 1e5,
    pct_start: float = 0.25,
    moms: tuple[float, float, float] = _DEFAULT_MOMS,
    steps_per_epoch: int | None = None,
) -> OneCycle:
    """Compute fastai's 1cycle schedule: the lr and momentum set before each training batch.

    Mirrors ``Learner.fit_one_cycle`` in ``fastai/callback/schedule.py``: the learning rate of
    each group rises from ``lr_max / div`` to ``lr_max`` along a half cosine during the first
    ``pct_start`` of the steps (``combined_cos``, ``SchedCos``), then falls to
    ``lr_max / div_final``; the momentum moves the opposite way, ``moms[0]`` to ``moms[1]`` to
    ``moms[2]``. ``ParamScheduler.before_batch`` evaluates the schedule at the training position
    ``pct_train`` before each batch, and row ``i`` is that value for batch ``i``.

    ``fit_one_cycle(n_epoch, lr_max)`` with ``n_iter`` batches per epoch corresponds to
    ``one_cycle(n_epoch * n_iter, lr_max, n_groups=..., steps_per_epoch=n_iter)``.

    Args:
        n_steps: Training batches in the whole cycle (all epochs together).
        lr_max: Peak learning rate, in any form `discriminative_lrs` accepts.
        n_groups: Number of parameter groups.
        div: The cycle starts at ``lr_max / div``.
        div_final: The cycle ends near ``lr_max / div_final``.
        pct_start: Fraction of the cycle spent increasing the rate, in ``(0, 1]``.
        moms: Momentum at the start, at the peak and at the end.
        steps_per_epoch: Batches per epoch; it must divide ``n_steps``. fastai restarts its
            position at ``epoch / n_epoch`` every epoch instead of counting on, which could in rare
            cases move a value by one float32 rounding step; give it to follow fastai to the
            last bit. ``None`` means one epoch.

    Returns:
        The `OneCycle` plan, ``lr`` of shape ``(n_steps, n_groups)`` and ``mom`` of shape
        ``(n_steps,)``.

    Raises:
        LensError: ``n_steps`` or ``n_groups`` is not a positive integer, ``pct_start`` is not in
            ``(0, 1]``, ``div``/``div_final`` is not positive, ``moms`` is not three numbers,
            ``steps_per_epoch`` does not divide ``n_steps``, or ``lr_max`` is invalid.

    Examples:
        >>> plan = one_cycle(100, 1e-3, pct_start=0.25)
        >>> round(plan.lr[25, 0].item(), 12), plan.mom[25].item()
        (0.001, 0.85)
        >>> round(plan.lr[0, 0].item() * 25, 12), plan.mom[0].item()
        (0.001, 0.95)
    """
    n_steps = check_positive_int(n_steps, "n_steps")
    if not is_number(pct_start) or not 0 < float(pct_start) <= 1:
        raise LensError(
            f"`pct_start` must be a number in (0, 1], the fraction of steps spent warming up; "
            f"got {pct_start!r}. fastai's default is 0.25."
        )
    pct_start = float(pct_start)
    div = check_positive_float(div, "div")
    div_final = check_positive_float(div_final, "div_final")
    moms_checked = _check_moms(moms)
    if steps_per_epoch is None:
        steps_per_epoch = n_steps
    steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    if n_steps % steps_per_epoch:
        raise LensError(
            f"`steps_per_epoch` ({steps_per_epoch}) must divide `n_steps` ({n_steps}): the cycle "
            f"is a whole number of epochs. Pass `n_steps = epochs * steps_per_epoch`."
        )
    lr_max_per_group = _per_group_lrs(lr_max, n_groups, "lr_max")

    segment, cosine = _cycle_positions(n_steps // steps_per_epoch, steps_per_epoch, pct_start)
    # fit_one_cycle: combined_cos(pct_start, lr_max/div, lr_max, lr_max/div_final), in numpy
    # float64; torch float64 elementwise arithmetic in the same order gives the same bits.
    peak = torch.tensor(lr_max_per_group, dtype=torch.float64)
    lr_starts = torch.stack([peak / div, peak])
    lr_ends = torch.stack([peak, peak / div_final])
    lr = _sched_cos(lr_starts[segment], lr_ends[segment], cosine.unsqueeze(1))
    mom_starts = torch.tensor(moms_checked[:2], dtype=torch.float64)
    mom_ends = torch.tensor(moms_checked[1:], dtype=torch.float64)
    mom = _sched_cos(mom_starts[segment], mom_ends[segment], cosine)
    return OneCycle(
        lr=lr,
        mom=mom,
        lr_max=tuple(lr_max_per_group),
        div=div,
        div_final=div_final,
        pct_start=pct_start,
        moms=moms_checked,
        steps_per_epoch=steps_per_epoch,
    )


def _check_moms(moms: object) -> tuple[float, float, float]:
    if (
        not isinstance(moms, Sequence)
        or len(moms) != 3
        or not all(is_number(m) and math.isfinite(float(m)) for m in moms)
    ):
        raise LensError(
            f"`moms` must be three numbers (start, at the peak lr, end), got {moms!r}. "
            f"fastai's default is {_DEFAULT_MOMS}."
        )
    return (float(moms[0]), float(moms[1]), float(moms[2]))


def _cycle_positions(
    n_epochs: int, steps_per_epoch: int, pct_start: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each batch: which half of the cycle it is in, and the cosine term fastai uses there.

    Returns ``(segment, cosine)``: ``segment`` is 0 while warming up and 1 after, ``cosine`` is
    ``1 + cos(pi * (1 - pos))`` with ``pos`` the position inside that half, as float64.
    """
    # fastai/callback/core.py TrainEvalCallback: `pct_train = epoch/n_epoch` before each epoch,
    # then `pct_train += 1./(n_iter*n_epoch)` after each batch. Accumulated, not multiplied.
    step_pct = 1.0 / (steps_per_epoch * n_epochs)
    pct_train: list[float] = []
    for epoch in range(n_epochs):
        pct = epoch / n_epochs
        for _ in range(steps_per_epoch):
            pct_train.append(pct)
            pct += step_pct

    # fastai/callback/schedule.py combine_scheds: the boundaries are a float32 tensor, so the
    # comparison and the position inside each half are float32 too.
    bounds = torch.cumsum(torch.tensor([0.0, pct_start, 1 - pct_start], dtype=torch.float32), 0)
    pos = torch.tensor(pct_train, dtype=torch.float64).to(torch.float32)
    reached = (pos.unsqueeze(1) >= bounds.unsqueeze(0)).sum(dim=1) - 1
    segment = reached.clamp(max=len(bounds) - 2)
    inner = (pos - bounds[segment]) / (bounds[segment + 1] - bounds[segment])
    # sched_cos uses math.cos on a Python float; so do we, to keep fastai's last bit.
    cosine = torch.tensor(
        [1 + math.cos(math.pi * (1 - p)) for p in inner.tolist()], dtype=torch.float64
    )
    return segment, cosine


def _sched_cos(start: torch.Tensor, end: torch.Tensor, cosine: torch.Tensor) -> torch.Tensor:
    # fastai/callback/schedule.py sched_cos: start + (1 + cos(pi*(1-pos))) * (end-start) / 2
    return start + cosine * (end - start) / 2


# ---------------------------------------------------------------------------------------------
# Playing a plan into a torch optimizer


class OneCycleScheduler(LRScheduler):
    """Set a ``torch.optim`` optimizer's lr and momentum from a `OneCycle`, batch by batch.

    Plays the role of fastai's ``ParamScheduler`` (``fastai/callback/schedule.py``) for a plain
    PyTorch training loop. The calling convention is PyTorch's usual one:

    1. Creating the scheduler sets every param group to row 0 of the plan (the values for
       batch 0).
    2. After each ``optimizer.step()``, call ``scheduler.step()`` once: it sets row ``i + 1``,
       the values for the next batch.

    So batch ``i`` (0-based, counted over all epochs) trains with ``plan.lr[i]`` and
    ``plan.mom[i]``, as in fastai. After the last batch, one more ``step()`` is allowed and
    leaves the values unchanged; stepping further raises `LensError`.

    The learning rate of group ``g`` is ``plan.lr[i, g]``. The momentum is written to
    ``betas[0]`` when the group has ``betas`` (Adam, AdamW, ...), else to ``momentum`` (SGD,
    RMSprop, ...); this is fastai's ``mom`` hyper-parameter.

    When the optimizer's param groups carry a ``"group_index"`` (`optimizer_param_groups` adds
    it: a fastai group may be split into a part with weight decay and a part without), every
    param group gets the learning rate of the fastai group it belongs to.

    ``state_dict()`` holds only tensors and plain values, so a checkpoint with the scheduler
    loads with ``torch.load(..., weights_only=True)``; ``load_state_dict`` resumes the schedule
    where it stopped.

    Args:
        optimizer: The optimizer; it must have ``plan.n_groups`` parameter groups, or param
            groups whose ``group_index`` values are ``0 .. plan.n_groups - 1``.
        plan: The schedule, from `one_cycle` (or a phase of `fine_tune_plan`:
            ``plan.phases[i].schedule``).
        momentum: Also set the momentum. Pass ``False`` for an optimizer without one.

    Raises:
        LensError: ``plan`` is not a `OneCycle` (a whole `FineTunePlan`, say), the optimizer's
            groups do not fit the plan's, or ``momentum`` is ``True`` and a group has neither
            ``betas`` nor ``momentum``.

    Examples:
        >>> model = torch.nn.Linear(2, 1)
        >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        >>> plan = one_cycle(3, 0.1)
        >>> scheduler = OneCycleScheduler(optimizer, plan)
        >>> for i in range(plan.n_steps):
        ...     assert optimizer.param_groups[0]["lr"] == plan.lr[i, 0].item()
        ...     assert optimizer.param_groups[0]["momentum"] == plan.mom[i].item()
        ...     model(torch.ones(1, 2)).sum().backward()
        ...     optimizer.step()
        ...     optimizer.zero_grad()
        ...     scheduler.step()
    """

    def __init__(self, optimizer: Optimizer, plan: OneCycle, *, momentum: bool = True) -> None:
        if isinstance(plan, FineTunePlan):
            raise LensError(
                "`plan` is a FineTunePlan (both phases of fine_tune); a scheduler plays one "
                "cycle. Pass one phase's schedule, `plan.phases[i].schedule`, with a new "
                "scheduler per phase, or let `transferlens.fine_tune` run both phases."
            )
        if not isinstance(plan, OneCycle):
            raise LensError(
                f"`plan` must be a OneCycle, as `one_cycle(...)` returns, got "
                f"{type(plan).__name__}."
            )
        self._group_rows = _plan_columns(optimizer, plan.n_groups)
        if momentum:
            for index, group in enumerate(optimizer.param_groups):
                if "betas" not in group and "momentum" not in group:
                    raise LensError(
                        f"`optimizer` group {index} ({type(optimizer).__name__}) has neither "
                        f"`betas` nor `momentum`, so the plan's momentum has nowhere to go. "
                        f"Pass `momentum=False` to set only the learning rate."
                    )
        self.plan = plan
        self.set_momentum = momentum
        super().__init__(optimizer)

    def get_lr(self) -> list[float | torch.Tensor]:
        """Return the learning rates for batch ``last_epoch`` (called by ``step()``)."""
        row = self._row()
        if row is None:
            return [group["lr"] for group in self.optimizer.param_groups]
        rates = self.plan.lr[row].tolist()
        return [float(rates[column]) for column in self._group_rows]

    def state_dict(self) -> dict[str, Any]:
        """Return the scheduler's state, plan included, as tensors and plain Python values.

        The plan is stored as a dict of tensors and numbers, not as a `OneCycle` object, so a
        checkpoint holding it loads with ``torch.load(path, weights_only=True)`` (PyTorch's
        default since 2.6), which refuses arbitrary classes.

        Returns:
            The state; `load_state_dict` restores it.
        """
        state = {key: value for key, value in self.__dict__.items() if key != "optimizer"}
        state["plan"] = _plan_to_dict(self.plan)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state from `state_dict`, plan included: training resumes where it stopped.

        Args:
            state_dict: What `state_dict` returned (possibly through ``torch.save`` /
                ``torch.load(weights_only=True)``).

        Raises:
            LensError: ``state_dict`` does not come from a `OneCycleScheduler`, or its plan does
                not fit this scheduler's optimizer.
        """
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("plan"), dict):
            raise LensError(
                "`state_dict` must be what OneCycleScheduler.state_dict() returned (a dict with "
                "a `plan` entry)."
            )
        plan = _plan_from_dict(state_dict["plan"])
        group_rows = _plan_columns(self.optimizer, plan.n_groups)
        self.__dict__.update({**state_dict, "plan": plan, "_group_rows": group_rows})

    def step(self, epoch: int | None = None) -> None:
        """Set the values for the next batch; call once after every ``optimizer.step()``.

        Args:
            epoch: Not supported (PyTorch deprecated it); leave it out.

        Raises:
            LensError: ``epoch`` was given, or the plan has already ended.
        """
        if epoch is not None:
            raise LensError(
                "`epoch` is not supported by OneCycleScheduler.step(); call `step()` with no "
                "argument once after every `optimizer.step()`."
            )
        super().step()
        row = self._row()
        if self.set_momentum and row is not None:
            value = float(self.plan.mom[row].item())
            for group in self.optimizer.param_groups:
                _set_momentum(group, value)

    def _row(self) -> int | None:
        """The plan row for the current batch, ``None`` once the plan has ended."""
        if self.last_epoch < self.plan.n_steps:
            return self.last_epoch
        if self.last_epoch == self.plan.n_steps:
            return None
        raise LensError(
            f"`scheduler.step()` was called {self.last_epoch} times but the plan has "
            f"{self.plan.n_steps} steps (`n_steps`). Call it once per batch, or build a plan "
            f"with more steps."
        )


def _plan_columns(optimizer: Optimizer, n_groups: int) -> list[int]:
    """For each optimizer param group, the plan column (fastai group) that sets its rate.

    Param groups carrying ``"group_index"`` (from `optimizer_param_groups`, which may split a
    fastai group in two) use it; otherwise param group ``i`` is fastai group ``i``.
    """
    if not isinstance(optimizer, Optimizer):
        raise LensError(
            f"`optimizer` must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
        )
    param_groups = optimizer.param_groups
    indices = [group.get("group_index") for group in param_groups]
    if all(index is None for index in indices):
        if len(param_groups) != n_groups:
            raise LensError(
                f"`optimizer` has {len(param_groups)} parameter groups but the plan has "
                f"{n_groups}. Build the plan with `n_groups={len(param_groups)}`."
            )
        return list(range(n_groups))
    if any(not isinstance(index, int) or isinstance(index, bool) for index in indices):
        raise LensError(
            "`optimizer` has param groups with and without an integer `group_index`; give "
            "every group one (optimizer_param_groups does) or none."
        )
    found = sorted(set(indices))  # type: ignore[type-var]
    if found != list(range(n_groups)):
        raise LensError(
            f"`optimizer`'s param groups belong to fastai groups {found} (their `group_index`), "
            f"but the plan has {n_groups} groups. Build the plan with "
            f"`n_groups={len(found)}`, the number of groups the optimizer was built from."
        )
    return [int(index) for index in indices]  # type: ignore[arg-type]


def _plan_to_dict(plan: OneCycle) -> dict[str, Any]:
    return {
        "lr": plan.lr.clone(),
        "mom": plan.mom.clone(),
        "lr_max": list(plan.lr_max),
        "div": plan.div,
        "div_final": plan.div_final,
        "pct_start": plan.pct_start,
        "moms": list(plan.moms),
        "steps_per_epoch": plan.steps_per_epoch,
    }


def _plan_from_dict(saved: dict[str, Any]) -> OneCycle:
    try:
        moms = saved["moms"]
        return OneCycle(
            lr=saved["lr"],
            mom=saved["mom"],
            lr_max=tuple(float(rate) for rate in saved["lr_max"]),
            div=float(saved["div"]),
            div_final=float(saved["div_final"]),
            pct_start=float(saved["pct_start"]),
            moms=(float(moms[0]), float(moms[1]), float(moms[2])),
            steps_per_epoch=int(saved["steps_per_epoch"]),
        )
    except (KeyError, TypeError, IndexError, ValueError) as error:
        raise LensError(
            f"`state_dict`'s plan is incomplete ({error!r}); pass what "
            "OneCycleScheduler.state_dict() returned."
        ) from error


def _set_momentum(group: dict[str, Any], value: float) -> None:
    if "betas" in group:
        betas = group["betas"]
        if isinstance(betas[0], torch.Tensor):
            betas[0].fill_(value)
        else:
            group["betas"] = (value, *tuple(betas)[1:])
    else:
        momentum = group["momentum"]
        if isinstance(momentum, torch.Tensor):
            momentum.fill_(value)
        else:
            group["momentum"] = value


# ---------------------------------------------------------------------------------------------
# fine_tune: a frozen cycle, then an unfrozen one


@dataclass(frozen=True, eq=False)
class FineTunePhase:
    """One ``fit_one_cycle`` call inside ``Learner.fine_tune``.

    Attributes:
        name: ``"frozen"`` or ``"unfrozen"``.
        frozen_idx: Groups ``0 .. frozen_idx - 1`` are frozen (``Learner.freeze_to``); 0 means
            everything trains. fastai still gives frozen groups a learning rate.
        epochs: Epochs in this phase.
        schedule: The phase's `OneCycle`, all groups, one row per batch.
    """

    name: str
    frozen_idx: int
    epochs: int
    schedule: OneCycle

    @property
    def lr(self) -> torch.Tensor:
        """Learning rates of this phase, shape ``(n_steps, n_groups)``."""
        return self.schedule.lr

    @property
    def mom(self) -> torch.Tensor:
        """Momentums of this phase, shape ``(n_steps,)``."""
        return self.schedule.mom


@dataclass(frozen=True, eq=False)
class FineTunePlan:
    """Both phases of ``Learner.fine_tune``; build it with `fine_tune_plan`.

    Attributes:
        phases: The phases in training order (the frozen one is left out when
            ``freeze_epochs == 0``).

    Examples:
        >>> plan = fine_tune_plan(2, 10)
        >>> [(p.name, p.frozen_idx, p.epochs, p.schedule.n_steps) for p in plan.phases]
        [('frozen', 2, 1, 10), ('unfrozen', 0, 2, 20)]
        >>> plan.lr.shape
        torch.Size([30, 3])
    """

    phases: tuple[FineTunePhase, ...]

    @property
    def lr(self) -> torch.Tensor:
        """Learning rates of all phases, one after the other, shape ``(n_steps, n_groups)``."""
        return torch.cat([phase.lr for phase in self.phases])

    @property
    def mom(self) -> torch.Tensor:
        """Momentums of all phases, one after the other, shape ``(n_steps,)``."""
        return torch.cat([phase.mom for phase in self.phases])

    @property
    def n_steps(self) -> int:
        """Training batches over all phases."""
        return sum(phase.schedule.n_steps for phase in self.phases)


def fine_tune_plan(
    epochs: int,
    steps_per_epoch: int,
    base_lr: float = 2e-3,
    freeze_epochs: int = 1,
    lr_mult: float = 100,
    pct_start: float = 0.3,
    div: float = 5.0,
    n_groups: int = 3,
    *,
    div_final: float = 1e5,
    moms: tuple[float, float, float] = _DEFAULT_MOMS,
) -> FineTunePlan:
    """Compute the schedule of fastai's ``Learner.fine_tune``, both phases.

    Mirrors ``Learner.fine_tune`` in ``fastai/callback/schedule.py``:

    1. ``freeze()`` (all groups but the last frozen), then
       ``fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)``; ``div`` is
       ``fit_one_cycle``'s default 25 here, and the frozen groups get ``base_lr / 10``.
    2. ``base_lr /= 2``; ``unfreeze()``; then
       ``fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div)``.

    ``div_final`` and ``moms`` are passed to both cycles, as ``fine_tune``'s ``**kwargs`` are.

    Args:
        epochs: Epochs of the unfrozen phase (at least 1).
        steps_per_epoch: Training batches per epoch.
        base_lr: The peak rate of the last group in the frozen phase (twice its peak after).
        freeze_epochs: Epochs of the frozen phase; 0 leaves that phase out.
        lr_mult: Ratio between the last and the first group's peak rate in the unfrozen phase.
        pct_start: ``pct_start`` of the unfrozen phase (the frozen one uses 0.99).
        div: ``div`` of the unfrozen phase (the frozen one uses 25).
        n_groups: Number of parameter groups.
        div_final: ``div_final`` of both phases.
        moms: ``moms`` of both phases.

    Returns:
        The `FineTunePlan`.

    Raises:
        LensError: A count is not a positive integer (``freeze_epochs`` may be 0), a rate or
            ratio is not positive, or an argument `one_cycle` refuses.

    Examples:
        >>> plan = fine_tune_plan(1, 4, base_lr=2e-3, n_groups=2)
        >>> frozen, unfrozen = plan.phases
        >>> frozen.schedule.lr_max, unfrozen.schedule.lr_max
        ((0.0002, 0.002), (1e-05, 0.001))
    """
    epochs = check_positive_int(epochs, "epochs")
    steps_per_epoch = check_positive_int(steps_per_epoch, "steps_per_epoch")
    freeze_epochs = check_positive_int(freeze_epochs, "freeze_epochs", allow_zero=True)
    n_groups = check_positive_int(n_groups, "n_groups")
    base_lr = check_positive_float(base_lr, "base_lr")
    lr_mult = check_positive_float(lr_mult, "lr_mult")
    if lr_mult < 1:
        raise LensError(
            f"`lr_mult` must be at least 1 (the last group's rate over the first's), got "
            f"{lr_mult!r}. fastai's default is 100."
        )

    phases: list[FineTunePhase] = []
    if freeze_epochs:
        frozen = one_cycle(
            freeze_epochs * steps_per_epoch,
            slice(base_lr),
            n_groups=n_groups,
            pct_start=0.99,
            div_final=div_final,
            moms=moms,
            steps_per_epoch=steps_per_epoch,
        )
        # Learner.freeze is freeze_to(-1): every group but the last.
        phases.append(FineTunePhase("frozen", n_groups - 1, freeze_epochs, frozen))
    base_lr /= 2
    unfrozen = one_cycle(
        epochs * steps_per_epoch,
        slice(base_lr / lr_mult, base_lr),
        n_groups=n_groups,
        div=div,
        div_final=div_final,
        pct_start=pct_start,
        moms=moms,
        steps_per_epoch=steps_per_epoch,
    )
    phases.append(FineTunePhase("unfrozen", 0, epochs, unfrozen))
    return FineTunePlan(tuple(phases))
