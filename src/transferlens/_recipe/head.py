"""The classifier head fastai puts on a pretrained body, layer for layer.

``create_head`` builds the same ``nn.Sequential`` as ``fastai.vision.learner.create_head``: the
same layers in the same order, so the two ``state_dict()`` have the same keys and shapes and a
fastai head's weights load into ours unchanged. The building blocks are the three small fastai
layers it uses: ``AdaptiveConcatPool2d``, ``Flatten`` and ``SigmoidRange``.

Needs beside it: ``checks.py``, ``errors.py``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
from torch import nn

from .checks import is_count, is_number
from .errors import LensError


class AdaptiveConcatPool2d(nn.Module):
    """Max pooling and average pooling side by side: twice the channels of either.

    Mirrors `fastai.layers.AdaptiveConcatPool2d`: the submodules are named ``ap`` and ``mp`` as in
    fastai and the output is ``torch.cat([mp(x), ap(x)], 1)`` (max first).

    Args:
        size: Output size of both pools; ``None`` means 1, as in fastai.

    Examples:
        >>> pool = AdaptiveConcatPool2d()
        >>> pool(torch.zeros(2, 5, 7, 7)).shape
        torch.Size([2, 10, 1, 1])
    """

    def __init__(self, size: int | tuple[int, int] | None = None) -> None:
        super().__init__()
        self.size = size or 1
        # Registered in fastai's order (ap, then mp), so reprs and module lists line up.
        self.ap = nn.AdaptiveAvgPool2d(self.size)
        self.mp = nn.AdaptiveMaxPool2d(self.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenate the max-pooled and the average-pooled ``x`` along the channels."""
        return torch.cat([self.mp(x), self.ap(x)], 1)


class Flatten(nn.Module):
    """Flatten everything but the batch dimension (or everything, with ``full``).

    Mirrors `fastai.layers.Flatten`: ``x.view(x.size(0), -1)``, or ``x.view(-1)`` when ``full``.

    Args:
        full: Flatten to a rank-1 tensor instead of keeping the batch dimension.

    Examples:
        >>> Flatten()(torch.zeros(2, 3, 1, 1)).shape
        torch.Size([2, 3])
    """

    def __init__(self, full: bool = False) -> None:
        super().__init__()
        self.full = full

    def extra_repr(self) -> str:
        """``full=...``, so the repr reads like fastai's ``Flatten(full=False)``."""
        return f"full={self.full!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` viewed as ``(batch, -1)``, or as ``(-1,)`` when ``full``."""
        return x.view(-1) if self.full else x.view(x.size(0), -1)


class SigmoidRange(nn.Module):
    """A sigmoid squeezed into ``(low, high)``, for regression targets with known bounds.

    Mirrors `fastai.layers.SigmoidRange` (and `fastai.layers.sigmoid_range`):
    ``torch.sigmoid(x) * (high - low) + low``.

    Args:
        low: Lower bound of the output.
        high: Upper bound of the output.

    Examples:
        >>> SigmoidRange(-1.0, 3.0)(torch.zeros(2))
        tensor([1., 1.])
    """

    def __init__(self, low: float, high: float) -> None:
        super().__init__()
        self.low = low
        self.high = high

    def extra_repr(self) -> str:
        """``low=..., high=...``, so the repr reads like fastai's."""
        return f"low={self.low!r}, high={self.high!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``sigmoid(x)`` rescaled from ``(0, 1)`` to ``(low, high)``."""
        return torch.sigmoid(x) * (self.high - self.low) + self.low


def _batchnorm1d(num_features: int) -> nn.BatchNorm1d:
    """A ``BatchNorm1d`` initialized as fastai's ``BatchNorm(nf, ndim=1)`` (weight 1, bias 1e-3)."""
    norm = nn.BatchNorm1d(num_features)
    norm.bias.data.fill_(1e-3)
    norm.weight.data.fill_(1.0)
    return norm


def _lin_bn_drop(
    n_in: int, n_out: int, bn: bool, p: float, act: nn.Module | None, lin_first: bool
) -> list[nn.Module]:
    """The layers of fastai's ``LinBnDrop``, as a flat list (fastai's head unpacks the block too).

    Built in fastai's order (norm, dropout, then linear) so that a seeded build draws the same
    random numbers as fastai's.
    """
    norm_layers: list[nn.Module] = [_batchnorm1d(n_out if lin_first else n_in)] if bn else []
    if p != 0:
        norm_layers.append(nn.Dropout(p))
    # A bias right before (or after) a BatchNorm is redundant, so fastai drops it whenever bn is on.
    linear_layers: list[nn.Module] = [nn.Linear(n_in, n_out, bias=not bn)]
    if act is not None:
        linear_layers.append(act)
    return linear_layers + norm_layers if lin_first else norm_layers + linear_layers


def _dropout_list(ps: float | Sequence[float], n_linear: int) -> list[float]:
    """Expand ``ps`` to one dropout probability per linear layer, as fastai's ``create_head``."""
    if isinstance(ps, numbers.Real):
        probabilities = [ps]
    elif isinstance(ps, Sequence) and not isinstance(ps, str | bytes):
        probabilities = list(ps)
    else:
        raise LensError(
            f"`ps` must be a dropout probability in [0, 1] or a list of them (one per linear "
            f"layer), got {type(ps).__name__} {ps!r}. Pass e.g. ps=0.5 or ps=[0.25, 0.5]; unlike "
            "a learning rate, fastai's `ps` takes no slice."
        )
    for p in probabilities:
        if not is_number(p) or not 0 <= p <= 1:
            raise LensError(
                f"`ps` must be a dropout probability in [0, 1] or a list of them, got {ps!r}. "
                "Pass e.g. ps=0.5."
            )
    if len(probabilities) == 1:
        # One value: the last layer gets it, every hidden layer gets half of it (fastai's rule).
        return [probabilities[0] / 2] * (n_linear - 1) + probabilities
    if len(probabilities) != n_linear:
        raise LensError(
            f"`ps` has {len(probabilities)} values but the head has {n_linear} linear layers "
            f"(len(lin_ftrs) + 1). Pass one probability, or exactly {n_linear}."
        )
    return probabilities


def create_head(
    nf: int,
    n_out: int,
    lin_ftrs: Sequence[int] | None = None,
    ps: float | Sequence[float] = 0.5,
    pool: bool = True,
    concat_pool: bool = True,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    y_range: tuple[float, float] | None = None,
) -> nn.Sequential:
    """Build fastai's classifier head: pool, flatten, then BatchNorm/Dropout/Linear blocks.

    Mirrors `fastai.vision.learner.create_head`, layer for layer: the result has the same
    ``state_dict()`` keys and shapes, so ``load_state_dict(fastai_head.state_dict())`` works and the
    two heads then compute the same outputs. As in fastai, ``nf`` is the number of channels coming
    out of the body; with ``pool`` and ``concat_pool`` the first linear layer sees ``2 * nf``
    features because the concat pool doubles them.

    Args:
        nf: Channels of the body's output (features, if ``pool`` is False).
        n_out: Number of outputs (classes).
        lin_ftrs: Sizes of the hidden linear layers; ``None`` means ``[512]``.
        ps: Dropout probability of the last block (hidden blocks get half of it), or one
            probability per linear layer (``len(lin_ftrs) + 1`` values).
        pool: Start with a pooling layer and a flatten (input is 4D); otherwise input is 2D.
        concat_pool: Pool with ``AdaptiveConcatPool2d`` (max and average) instead of average only.
        first_bn: Put a BatchNorm before the first linear layer.
        bn_final: End with a ``BatchNorm1d(n_out, momentum=0.01)``.
        lin_first: Put each linear layer before its BatchNorm and dropout instead of after.
        y_range: End with ``SigmoidRange(*y_range)`` to bound the outputs.

    Returns:
        The head as a flat ``nn.Sequential``.

    Raises:
        LensError: A count is not a positive integer, ``ps`` has the wrong length or a value
            outside [0, 1], or ``y_range`` is not a pair.

    Examples:
        >>> head = create_head(512, 10)
        >>> [type(layer).__name__ for layer in head]  # doctest: +NORMALIZE_WHITESPACE
        ['AdaptiveConcatPool2d', 'Flatten', 'BatchNorm1d', 'Dropout', 'Linear', 'ReLU',
         'BatchNorm1d', 'Dropout', 'Linear']
        >>> head[4]
        Linear(in_features=1024, out_features=512, bias=False)
        >>> head.eval()(torch.zeros(2, 512, 7, 7)).shape
        torch.Size([2, 10])
    """
    if not is_count(nf):
        raise LensError(
            f"`nf` must be a positive int (the channels coming out of the body), got {nf!r}. "
            "Use num_features(body) to measure it."
        )
    if not is_count(n_out):
        raise LensError(f"`n_out` must be a positive int (the number of outputs), got {n_out!r}.")
    if lin_ftrs is not None and (
        isinstance(lin_ftrs, str | bytes) or not all(is_count(size) for size in lin_ftrs)
    ):
        raise LensError(
            f"`lin_ftrs` must be None or a list of positive ints (hidden layer sizes), "
            f"got {lin_ftrs!r}. Pass e.g. lin_ftrs=[512]."
        )
    if y_range is not None and (not isinstance(y_range, Sequence) or len(y_range) != 2):
        raise LensError(f"`y_range` must be None or a pair (low, high), got {y_range!r}.")

    if pool and concat_pool:
        nf *= 2
    sizes = [nf, 512, n_out] if lin_ftrs is None else [nf, *lin_ftrs, n_out]
    use_bn = [first_bn] + [True] * len(sizes[1:])
    dropouts = _dropout_list(ps, len(sizes) - 1)
    # fastai repeats one ReLU instance between the blocks; so do we, so module lists match.
    relu = nn.ReLU(inplace=True)
    activations: list[nn.Module | None] = [relu] * (len(sizes) - 2) + [None]

    layers: list[nn.Module] = []
    if pool:
        layers += [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), Flatten()]
    if lin_first:
        # fastai spends the first probability here; zip below then stops one block early and the
        # final Linear is appended by hand.
        layers.append(nn.Dropout(dropouts.pop(0)))
    for n_in, n_next, bn, p, act in zip(
        sizes[:-1], sizes[1:], use_bn, dropouts, activations, strict=False
    ):
        layers += _lin_bn_drop(n_in, n_next, bn=bn, p=p, act=act, lin_first=lin_first)
    if lin_first:
        layers.append(nn.Linear(sizes[-2], n_out))
    if bn_final:
        layers.append(nn.BatchNorm1d(sizes[-1], momentum=0.01))
    if y_range is not None:
        layers.append(SigmoidRange(*y_range))
    return nn.Sequential(*layers)
