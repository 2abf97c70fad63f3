"""Discriminative learning rates: one rate per parameter group, from a number, a list or a slice.

fastai lets every parameter group train at its own rate: ``fit(lr=slice(1e-5, 1e-3))`` gives the
first group (closest to the input) ``1e-5``, the last (the head) ``1e-3``, and the groups between
rates spread evenly on a log scale. `discriminative_lrs` computes those rates the way
``Optimizer.set_hyper('lr', ...)`` does (``fastai/optimizer.py``, with ``even_mults`` from
``fastcore/basics.py``).

Needs beside it: ``checks.py``, ``errors.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .checks import check_positive_float, check_positive_int, is_number
from .errors import LensError

#: What fastai accepts as a learning rate: one rate, one rate per group, or a ``slice``.
LearningRates = float | Sequence[float] | slice


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
    return per_group_lrs(lr, n_groups, "lr")


def per_group_lrs(lr: LearningRates, n_groups: int, name: str) -> list[float]:
    """`discriminative_lrs`, with ``name`` (the caller's argument) in the messages."""
    n_groups = check_positive_int(n_groups, "n_groups")
    if isinstance(lr, slice):
        return _slice_lrs(lr, n_groups, name)
    if is_number(lr):
        return [check_positive_float(lr, name)] * n_groups
    if isinstance(lr, Sequence) and not isinstance(lr, str):
        rates = [
            check_positive_float(rate, name, where=f"`{name}[{i}]`") for i, rate in enumerate(lr)
        ]
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
    stop = check_positive_float(lr.stop, name, where="the slice's stop")
    if lr.start is None:
        # fastai/optimizer.py Optimizer.set_hyper: `[v.stop/10]*(n-1) + [v.stop]`
        return [stop / 10] * (n_groups - 1) + [stop]
    start = check_positive_float(lr.start, name, where="the slice's start")
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
