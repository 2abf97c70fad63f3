"""fastai's 1cycle schedule as plain numbers: the lr and momentum set before each batch.

fastai never shows the schedule it trains with; ``Learner.fit_one_cycle``
(``fastai/callback/schedule.py``) computes each value just before each training batch. `one_cycle`
computes the same values ahead of time, as tensors you can print, plot, test and play into a
plain ``torch.optim`` optimizer (``scheduler.py``'s `OneCycleScheduler` does that).

The values equal fastai's bit for bit on the machines we test on (and to 1e-9 relative, which the
tests assert), because the arithmetic is fastai's own, including its quirks: the position inside
the cycle is accumulated batch by batch and restarted at every epoch (``TrainEvalCallback`` in
``fastai/callback/core.py``), and the position inside each half of the cycle is computed in
float32 (``combine_scheds``).

Needs beside it: ``checks.py``, ``errors.py``, ``lrs.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import check_positive_float, check_positive_int, is_number
from .errors import LensError
from .lrs import LearningRates, per_group_lrs

#: fastai's default momentums: at the start, at the peak learning rate, at the end of a cycle.
DEFAULT_MOMS: tuple[float, float, float] = (0.95, 0.85, 0.95)


@dataclass(frozen=True, eq=False)
class OneCycle:
    """The learning rates and momentums of one ``fit_one_cycle`` call, one row per batch.

    Row ``i`` holds the values in force during training batch ``i`` (counted from 0 over all
    epochs), which fastai's ``ParamScheduler.before_batch`` sets just before that batch.
    Build it with `one_cycle`; play it into an optimizer with `OneCycleScheduler`.

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
    moms: tuple[float, float, float] = DEFAULT_MOMS,
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
    lr_max_per_group = per_group_lrs(lr_max, n_groups, "lr_max")

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
            f"fastai's default is {DEFAULT_MOMS}."
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
