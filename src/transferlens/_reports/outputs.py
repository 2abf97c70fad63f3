"""``assert_same_outputs``: do two models compute exactly the same thing?

A testing helper, like ``torch.testing.assert_close``: a difference raises ``AssertionError``
with the difference in its message; a bad argument raises ``LensError``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .._recipe.checks import check_module
from .._recipe.errors import LensError
from .._recipe.eval_mode import eval_mode
from .tables import type_name


def _flatten_outputs(output: object, where: str) -> list[tuple[str, torch.Tensor]]:
    if isinstance(output, torch.Tensor):
        return [(where, output)]
    if isinstance(output, (tuple, list)):
        flat: list[tuple[str, torch.Tensor]] = []
        for index, item in enumerate(output):
            flat.extend(_flatten_outputs(item, f"{where}[{index}]"))
        return flat
    if isinstance(output, Mapping):
        flat = []
        for key in output:
            flat.extend(_flatten_outputs(output[key], f"{where}[{key!r}]"))
        return flat
    raise LensError(
        f"{where} is a {type_name(output)}; assert_same_outputs compares tensors and "
        "tuples, lists or dicts of tensors."
    )


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in [*model.parameters(), *model.buffers()]:
        return tensor.device
    return None


def _format_value(value: object) -> str:
    return f"{value:.8g}" if isinstance(value, float) else repr(value)


def _first_difference(out_a: torch.Tensor, out_b: torch.Tensor, where: str) -> str:
    differs = out_a != out_b
    if not bool(differs.any()):  # torch.equal is False, yet no element differs
        return f"{where} differs in dtype: a gives {out_a.dtype}, b gives {out_b.dtype}."
    index = tuple(int(i) for i in torch.nonzero(differs)[0])
    max_diff = float((out_a.double() - out_b.double()).abs()[differs].max())
    value_a, value_b = out_a[index].item(), out_b[index].item()
    return (
        f"{where} differs in {int(differs.sum()):,} of {out_a.numel():,} elements: "
        f"max absolute difference {max_diff:.6g}; first at index {index}: "
        f"a gives {_format_value(value_a)}, b gives {_format_value(value_b)}."
    )


def assert_same_outputs(
    a: nn.Module, b: nn.Module, x: torch.Tensor | tuple[torch.Tensor, ...]
) -> None:
    """Check that two models give exactly equal outputs (``torch.equal``) on the same input.

    The seed notebook's check that ``nn.Sequential(*children)`` computes what ResNet computes,
    as one call. Both models run in eval mode on the CPU under ``torch.inference_mode()``;
    afterwards every submodule's ``training`` flag and the models' devices are as they were.

    Args:
        a: the first model.
        b: the second model.
        x: the input: a tensor, or a tuple of tensors passed as positional arguments.

    Raises:
        AssertionError: The outputs differ (as ``torch.testing.assert_close`` raises it): the
            message gives their shapes if those differ, else the number of differing elements,
            the largest absolute difference and the first differing position with both values.
        LensError: An argument has the wrong type, or the outputs are not tensors (or tuples,
            lists or dicts of them).

    Examples:
        >>> import torch
        >>> from torch import nn
        >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
        >>> assert_same_outputs(model, nn.Sequential(*model.children()), torch.ones(1, 3))
        >>> assert_same_outputs(nn.ReLU(), nn.Identity(), torch.tensor([[-1.0, 2.0]]))
        Traceback (most recent call last):
        ...
        AssertionError: output differs in 1 of 2 elements: ...
    """
    check_module(a, "a")
    check_module(b, "b")
    inputs = x if isinstance(x, tuple) else (x,)
    if not inputs or not all(isinstance(item, torch.Tensor) for item in inputs):
        raise LensError(
            f"`x` must be a tensor or a tuple of tensors, got {type_name(x)}. "
            "Pass a batch such as torch.randn(2, 3, 224, 224)."
        )
    inputs = tuple(item.cpu() for item in inputs)

    outputs = []
    for model in (a, b):
        device = _model_device(model)
        try:
            with eval_mode(model.cpu()), torch.inference_mode():
                outputs.append(model(*inputs))
        finally:
            if device is not None:
                model.to(device)

    flat_a = _flatten_outputs(outputs[0], "output of a")
    flat_b = _flatten_outputs(outputs[1], "output of b")
    if len(flat_a) != len(flat_b):
        raise AssertionError(
            f"a gives {len(flat_a)} output tensors and b gives {len(flat_b)}; "
            "they cannot be the same."
        )
    for (where, out_a), (_, out_b) in zip(flat_a, flat_b, strict=True):
        where = where.replace("output of a", "output")
        if out_a.shape != out_b.shape:
            raise AssertionError(
                f"{where} shapes differ: a gives {tuple(out_a.shape)}, b gives "
                f"{tuple(out_b.shape)}."
            )
        if not torch.equal(out_a, out_b):
            raise AssertionError(_first_difference(out_a, out_b, where))
