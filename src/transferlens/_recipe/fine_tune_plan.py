"""The schedule of fastai's ``Learner.fine_tune``: a frozen 1cycle, then an unfrozen one.

``learn.fine_tune(epochs)`` (``fastai/callback/schedule.py``) is ``freeze()``, a cycle of
``freeze_epochs`` at ``slice(base_lr)``, then ``unfreeze()`` and a cycle of ``epochs`` at
``slice(base_lr / 2 / lr_mult, base_lr / 2)``. `fine_tune_plan` computes both cycles ahead of
time; the ``DEFAULT_*`` constants are ``Learner.fine_tune``'s defaults, which
`transferlens.fine_tune` shares.

Needs beside it: ``checks.py``, ``errors.py``, ``one_cycle.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import check_positive_float, check_positive_int
from .errors import LensError
from .one_cycle import DEFAULT_MOMS, OneCycle, one_cycle

#: ``Learner.fine_tune``'s defaults (``fastai/callback/schedule.py``).
DEFAULT_BASE_LR = 2e-3
DEFAULT_FREEZE_EPOCHS = 1
DEFAULT_LR_MULT = 100.0
DEFAULT_PCT_START = 0.3
DEFAULT_DIV = 5.0
#: ``fit_one_cycle``'s default ``div_final``.
DEFAULT_DIV_FINAL = 1e5


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
    base_lr: float = DEFAULT_BASE_LR,
    freeze_epochs: int = DEFAULT_FREEZE_EPOCHS,
    lr_mult: float = DEFAULT_LR_MULT,
    pct_start: float = DEFAULT_PCT_START,
    div: float = DEFAULT_DIV,
    n_groups: int = 3,
    *,
    div_final: float = DEFAULT_DIV_FINAL,
    moms: tuple[float, float, float] = DEFAULT_MOMS,
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
