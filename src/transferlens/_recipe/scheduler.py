"""Playing a 1cycle plan into any ``torch.optim`` optimizer, batch by batch, with checkpoints.

`OneCycleScheduler` is a ``torch.optim.lr_scheduler.LRScheduler`` that plays the role of fastai's
``ParamScheduler`` (``fastai/callback/schedule.py``) in a plain PyTorch loop: it sets each param
group's learning rate and momentum from a `OneCycle` before every batch.

Needs beside it: ``checks.py``, ``errors.py``, ``one_cycle.py``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from .checks import GROUP_INDEX
from .errors import LensError
from .one_cycle import OneCycle


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
        >>> from transferlens import one_cycle
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
        if hasattr(plan, "phases"):  # a FineTunePlan
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
    indices = [group.get(GROUP_INDEX) for group in param_groups]
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
