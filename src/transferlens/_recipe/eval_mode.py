"""Run a model in eval mode for a moment, then give every module its training flag back.

Needs beside it: nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode inside the block; restore each module's own flag after it.

    ``model.train(previous)`` would not do: it sets one flag on every module, while a model being
    fine-tuned can mix modes (fastai's ``train_bn`` keeps frozen norm layers training...). The
    flags are restored even when the block raises.

    Args:
        model: Any module.

    Yields:
        ``model``, in eval mode.

    Examples:
        >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        >>> _ = model[1].eval()
        >>> with eval_mode(model):
        ...     [m.training for m in model.modules()]
        [False, False, False]
        >>> [m.training for m in model.modules()]
        [True, True, False]
    """
    training = {module: module.training for module in model.modules()}
    try:
        model.eval()
        yield model
    finally:
        for module, was_training in training.items():
            module.train(was_training)
