"""Argument checks shared by every module: each names the argument, what was expected, and what
to do, and raises `LensError` when the value does not fit.

Each ``check_*`` function returns the value it checked (converted to the plain Python type where
that helps), so callers write ``n = check_positive_int(n, "n")``.

Needs beside it: ``errors.py``.
"""

from __future__ import annotations

import math
import numbers

from torch import nn

from .errors import LensError

#: The key, in each ``torch.optim`` param group, of the fastai parameter group it belongs to:
#: ``optim.optimizer_param_groups`` writes it (a fastai group may become two param groups, with
#: and without weight decay), ``scheduler.OneCycleScheduler`` and ``train.fine_tune`` read it.
GROUP_INDEX = "group_index"


def is_number(value: object) -> bool:
    """Whether ``value`` is a real number (an int, a float, a NumPy scalar...), not a bool.

    Examples:
        >>> is_number(3), is_number(0.5), is_number(True), is_number("1")
        (True, True, False, False)
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_count(value: object) -> bool:
    """Whether ``value`` is a positive integer (not a bool): a size, a number of outputs.

    Examples:
        >>> is_count(3), is_count(0), is_count(2.0), is_count(True)
        (True, False, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def check_positive_int(value: object, name: str, *, allow_zero: bool = False) -> int:
    """Return ``value`` as an int, or raise `LensError` unless it is a positive integer.

    Args:
        value: The argument's value.
        name: The argument's name, as the caller spells it.
        allow_zero: Accept 0 too (a non-negative integer).

    Returns:
        ``int(value)``.

    Raises:
        LensError: ``value`` is not an integer (bools are not), or is below 1 (below 0 with
            ``allow_zero``).

    Examples:
        >>> check_positive_int(3, "epochs")
        3
        >>> check_positive_int(0, "epochs")
        Traceback (most recent call last):
        ...
        transferlens.LensError: `epochs` must be a positive integer, got 0. Pass e.g. `epochs=1`.
    """
    smallest = 0 if allow_zero else 1
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < smallest:
        wanted = "a non-negative integer" if allow_zero else "a positive integer"
        raise LensError(f"`{name}` must be {wanted}, got {value!r}. Pass e.g. `{name}=1`.")
    return int(value)


def check_positive_float(value: object, name: str, *, where: str | None = None) -> float:
    """Return ``value`` as a float, or raise `LensError` unless it is a positive finite number.

    Args:
        value: The argument's value (or one element of it).
        name: The argument's name, as the caller spells it.
        where: Which part of the argument ``value`` is (``"`lr[1]`"``, ``"the slice's stop"``),
            when it is not the whole argument.

    Returns:
        ``float(value)``.

    Raises:
        LensError: ``value`` is not a number (bools are not), is not finite, or is not above 0.

    Examples:
        >>> check_positive_float(1, "div")
        1.0
        >>> check_positive_float(float("inf"), "lr", where="the slice's stop")
        Traceback (most recent call last):
        ...
        transferlens.LensError: `lr` must hold positive finite numbers, but the slice's stop is inf. Pass a number greater than 0, e.g. 1e-3.
    """  # noqa: E501
    if not is_number(value) or not math.isfinite(float(value)) or float(value) <= 0:  # type: ignore[arg-type]
        if where is None:
            raise LensError(
                f"`{name}` must be a positive finite number, got {value!r}. "
                "Pass a number greater than 0, e.g. 1e-3."
            )
        raise LensError(
            f"`{name}` must hold positive finite numbers, but {where} is {value!r}. "
            "Pass a number greater than 0, e.g. 1e-3."
        )
    return float(value)  # type: ignore[arg-type]


def check_non_negative_float(value: object, name: str, *, default: float | None = None) -> float:
    """Return ``value`` as a float, or raise `LensError` unless it is a finite number >= 0.

    Args:
        value: The argument's value.
        name: The argument's name, as the caller spells it.
        default: fastai's default for the argument, named in the message.

    Returns:
        ``float(value)``.

    Raises:
        LensError: ``value`` is not a number (bools are not), is not finite, or is below 0.

    Examples:
        >>> check_non_negative_float(0, "wd")
        0.0
        >>> check_non_negative_float(float("inf"), "wd", default=0.01)
        Traceback (most recent call last):
        ...
        transferlens.LensError: `wd` must be a finite number >= 0 (fastai's default is 0.01), got inf.
    """  # noqa: E501
    if not is_number(value) or not math.isfinite(float(value)) or float(value) < 0:  # type: ignore[arg-type]
        hint = "" if default is None else f" (fastai's default is {default})"
        raise LensError(f"`{name}` must be a finite number >= 0{hint}, got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def check_module(value: object, name: str) -> nn.Module:
    """Return ``value``, or raise `LensError` unless it is a ``torch.nn.Module``.

    Args:
        value: The argument's value.
        name: The argument's name, as the caller spells it.

    Returns:
        ``value``, typed as a module.

    Raises:
        LensError: ``value`` is not an ``nn.Module``; the message says to pass ``learn.model``
            for a fastai ``Learner``.

    Examples:
        >>> check_module(nn.Linear(2, 1), "model")
        Linear(in_features=2, out_features=1, bias=True)
    """
    if not isinstance(value, nn.Module):
        raise LensError(
            f"`{name}` must be a torch.nn.Module, got {type(value).__name__}. "
            "Pass the model itself (for a fastai Learner, pass `learn.model`)."
        )
    return value
