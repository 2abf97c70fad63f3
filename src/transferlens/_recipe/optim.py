"""fastai's Adam as a ``torch.optim.Optimizer``, op for op.

A fastai ``Learner`` does not train with ``torch.optim.Adam``: it trains with fastai's own
``Adam`` (``fastai/optimizer.py``), a chain of small callbacks run for every parameter:

1. ``weight_decay``: decoupled weight decay, ``p *= 1 - lr * wd`` (skipped when ``wd == 0`` and
   for parameters marked ``do_wd=False``: ``Learner.create_opt`` marks normalization layers and
   biases so with ``wd_bn_bias=False``, the default);
2. ``average_grad`` with ``dampening=True``: ``grad_avg = grad_avg * mom + grad * (1 - mom)``;
3. ``average_sqr_grad``: ``sqr_avg = sqr_avg * sqr_mom + grad * grad * (1 - sqr_mom)``;
4. ``step_stat``: the step count, kept per parameter;
5. ``adam_step``: ``p -= lr / debias1 * grad_avg / (sqrt(sqr_avg / debias2) + eps)``.

`torch.optim.AdamW(betas=(mom, 0.99), eps=1e-5)` is the same algorithm on paper, but not in
float32, for two reasons that both matter: torch updates the first moment with
``grad_avg.lerp_(grad, 1 - mom)`` where fastai computes ``grad_avg.mul_(mom).add_(grad, alpha=1 -
mom)``, and torch computes ``sqrt(v) / sqrt(debias2)`` where fastai computes ``sqrt(v /
debias2)``. Adam's normalisation amplifies such last-bit differences over the steps (the
without-fastai page swaps each into fastai's optimizer: only both together give AdamW's bits).
`Adam` below does fastai's tensor operations, in fastai's order, with fastai's scalars, so that
the same inputs give the same bits. `optimizer_param_groups` builds its parameter groups from
fastai's groups, with the decay / no-decay split `Learner.create_opt` makes.

Needs beside it: ``checks.py``, ``errors.py``, ``freeze.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from .checks import GROUP_INDEX, check_non_negative_float, is_number
from .errors import LensError
from .freeze import NORM_TYPES, _check_groups


class Adam(Optimizer):
    """fastai's ``Adam`` (``fastai/optimizer.py``) as a ``torch.optim.Optimizer``, bit for bit.

    The hyper-parameters keep PyTorch's names so that schedulers (ours and PyTorch's) can drive
    it: ``betas = (mom, sqr_mom)`` and ``weight_decay`` is fastai's ``wd``. The defaults are
    fastai's: ``betas=(0.9, 0.99)``, ``eps=1e-5``, ``weight_decay=0.01``, decoupled (as in
    AdamW). Each step runs, for every parameter that has a gradient, fastai's callbacks
    ``weight_decay``, ``average_grad(dampening=True)``, ``average_sqr_grad``, ``step_stat`` and
    ``adam_step`` with the same tensor operations in the same order, so the result equals
    fastai's to the last bit. The step count is kept per parameter (``state[p]["step"]``, an
    int), as fastai keeps it.

    fastai skips weight decay for normalization layers and biases by a per-parameter flag
    (``do_wd``); here those parameters go in a param group with ``weight_decay=0``, which
    `optimizer_param_groups` builds. fastai also clears the state at every ``freeze_to``;
    pass the optimizer to `freeze_to` / `freeze` / `unfreeze` to do the same.

    Like fastai's, it steps every parameter whose ``grad`` is not ``None``, even a zero
    gradient: train with ``zero_grad(set_to_none=False)`` to match fastai's ``zero_grad``,
    which zeroes gradients instead of dropping them.

    Args:
        params: Parameters, or param groups (dicts with ``"params"`` and any hyper-parameter).
        lr: Learning rate (a 1cycle scheduler sets it before each batch).
        betas: ``(mom, sqr_mom)``: fastai's momentum of the gradient average and of the squared
            gradient average.
        eps: Added to the denominator (fastai's 1e-5; PyTorch's Adam uses 1e-8).
        weight_decay: Decoupled weight decay, fastai's ``wd``.

    Raises:
        LensError: A hyper-parameter is not a number in its range.

    Examples:
        >>> weights = torch.nn.Parameter(torch.ones(3))
        >>> optimizer = Adam([weights], lr=0.1)
        >>> weights.grad = torch.tensor([1.0, -1.0, 0.0])
        >>> optimizer.step()
        >>> weights.data
        tensor([0.8990, 1.0990, 0.9990])
        >>> optimizer.state[weights]["step"]
        1
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-5,
        weight_decay: float = 0.01,
    ) -> None:
        _check_hypers(lr, betas, eps, weight_decay, "")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        for index, group in enumerate(self.param_groups):
            _check_hypers(
                group["lr"], group["betas"], group["eps"], group["weight_decay"], f"[{index}]"
            )

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Update every parameter that has a gradient, as fastai's ``Optimizer.step`` does.

        Args:
            closure: Not supported, as in fastai; leave it out.

        Raises:
            LensError: A closure was given.
        """
        if closure is not None:
            raise LensError(
                "`closure` is not supported (fastai's optimizers do not support it either); "
                "compute the loss and call `backward()` before `step()`."
            )
        for group in self.param_groups:
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            mom, sqr_mom = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                grad = p.grad
                # weight_decay(p, lr, wd, do_wd): `p.data.mul_(1 - lr*wd)`
                if wd != 0:
                    p.mul_(1 - lr * wd)
                # average_grad(p, mom, dampening=True): `grad_avg.mul_(mom).add_(grad, alpha=damp)`
                if "grad_avg" not in state:
                    state["grad_avg"] = torch.zeros_like(grad)
                    state["sqr_avg"] = torch.zeros_like(grad)
                    state["step"] = 0
                grad_avg, sqr_avg = state["grad_avg"], state["sqr_avg"]
                grad_avg.mul_(mom).add_(grad, alpha=1 - mom)
                # average_sqr_grad: `sqr_avg.mul_(sqr_mom).addcmul_(grad, grad, value=damp)`
                sqr_avg.mul_(sqr_mom).addcmul_(grad, grad, value=1 - sqr_mom)
                # step_stat
                state["step"] += 1
                step = state["step"]
                # adam_step, with debias(mom, damp, step) = damp * (1 - mom**step) / (1 - mom)
                debias1 = (1 - mom) * (1 - mom**step) / (1 - mom)
                debias2 = (1 - sqr_mom) * (1 - sqr_mom**step) / (1 - sqr_mom)
                p.addcdiv_(grad_avg, (sqr_avg / debias2).sqrt() + eps, value=-lr / debias1)


def _check_hypers(lr: object, betas: object, eps: object, wd: object, where: str) -> None:
    def refuse(name: str, value: object, wanted: str) -> None:
        prefix = f"param group {where[1:-1]}: " if where else ""
        raise LensError(f"{prefix}`{name}` must be {wanted}, got {value!r}.")

    def finite(value: object, low: float, *, low_ok: bool = True) -> bool:
        if not is_number(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
            return False
        return float(value) >= low if low_ok else float(value) > low  # type: ignore[arg-type]

    if not finite(lr, 0):
        refuse("lr", lr, "a finite number >= 0, e.g. 1e-3")
    if (
        not isinstance(betas, Sequence)
        or len(betas) != 2
        or not all(finite(b, 0) and float(b) < 1 for b in betas)
    ):
        refuse("betas", betas, "two numbers in [0, 1), (mom, sqr_mom): fastai's (0.9, 0.99)")
    if not finite(eps, 0, low_ok=False):
        refuse("eps", eps, "a finite number > 0: fastai's is 1e-5")
    if not finite(wd, 0):
        refuse("weight_decay", wd, "a finite number >= 0: fastai's is 0.01")


def no_decay_parameters(model: nn.Module, with_bias: bool = True) -> list[nn.Parameter]:
    """The parameters fastai exempts from weight decay: normalization layers and biases.

    Mirrors ``norm_bias_params`` in ``fastai/torch_core.py``, in its order: every parameter of a
    normalization layer (``NORM_TYPES``), and, with ``with_bias``, the ``bias`` of every other
    module that has one. ``Learner.create_opt`` marks these ``do_wd=False`` when
    ``wd_bn_bias=False`` (the default).

    Args:
        model: Any model.
        with_bias: Include the biases of layers other than normalization layers.

    Returns:
        The parameters, each once.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
        >>> len(no_decay_parameters(model)), len(no_decay_parameters(model, with_bias=False))
        (4, 2)
    """
    found: list[nn.Parameter] = []
    seen: set[int] = set()

    def visit(module: nn.Module) -> None:
        if isinstance(module, NORM_TYPES):
            candidates = list(module.parameters())
        else:
            for child in module.children():
                visit(child)
            bias = getattr(module, "bias", None)
            candidates = [bias] if with_bias and isinstance(bias, nn.Parameter) else []
        for parameter in candidates:
            if id(parameter) not in seen:
                seen.add(id(parameter))
                found.append(parameter)

    visit(model)
    return found


def optimizer_param_groups(
    model: nn.Module,
    groups: Sequence[Sequence[torch.Tensor]],
    *,
    wd: float = 0.01,
    wd_bn_bias: bool = False,
) -> list[dict[str, Any]]:
    """Param groups for a ``torch.optim`` optimizer from fastai's groups, with fastai's decay.

    ``Learner.create_opt`` (``fastai/learner.py``) gives the optimizer one group per fastai
    group and, with ``wd_bn_bias=False``, marks normalization-layer parameters and biases
    ``do_wd=False``. A ``torch.optim`` optimizer sets weight decay per group, so each fastai group
    becomes up to two param groups: the parameters that decay (``weight_decay=wd``) and those
    that do not (``weight_decay=0.0``); an empty part is left out. Each param group carries
    ``"group_index"``, the fastai group it came from: `OneCycleScheduler` reads it to give
    both parts their group's learning rate.

    Args:
        model: The model the groups come from.
        groups: fastai's parameter groups, e.g. ``param_groups(model, arch)``.
        wd: Weight decay of the parameters that decay (fastai's default 0.01).
        wd_bn_bias: Decay normalization layers and biases too (fastai's default ``False``).

    Returns:
        Param group dicts (``params``, ``weight_decay``, ``group_index``), in group order,
        decaying part first; pass them to `Adam` or ``torch.optim.AdamW``.

    Raises:
        LensError: ``groups`` is not a list of non-empty parameter lists from ``model``, or ``wd``
            is not a number >= 0.

    Examples:
        >>> model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        >>> groups = [list(model[:2].parameters()), list(model[2].parameters())]
        >>> [(len(g["params"]), g["weight_decay"], g["group_index"])
        ...  for g in optimizer_param_groups(model, groups)]
        [(1, 0.01, 0), (3, 0.0, 0), (1, 0.01, 1), (1, 0.0, 1)]
    """
    _check_groups(model, groups)
    wd = check_non_negative_float(wd, "wd", default=0.01)
    exempt = set() if wd_bn_bias else {id(p) for p in no_decay_parameters(model)}
    param_groups: list[dict[str, Any]] = []
    for index, group in enumerate(groups):
        if not group:
            raise LensError(
                f"`groups[{index}]` is empty: fastai's groups each hold parameters. Check that "
                "the groups were built for this architecture: param_groups(model, arch)."
            )
        decay = [p for p in group if id(p) not in exempt]
        no_decay = [p for p in group if id(p) in exempt]
        for params, rate in ((decay, wd), (no_decay, 0.0)):
            if params:
                param_groups.append(
                    {"params": params, "weight_decay": rate, GROUP_INDEX: index}
                )
    return param_groups
