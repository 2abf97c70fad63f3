"""The parameter groups fastai splits a vision model into, per architecture.

fastai trains a pretrained model in groups: ``vision_learner`` looks the architecture up in
``fastai.vision.learner.model_meta`` and uses its ``split`` function, or ``default_split`` (body,
head) when the architecture is not there. Only these torchvision builders have a three-group split
of their own: ``resnet18`` to ``resnet152``, ``squeezenet1_0``/``1_1``, ``densenet121``/``161``/
``169``/``201``, the four ``vgg*_bn`` and ``alexnet`` (plus fastai's own ``xresnet`` builders).
Everything else, ResNeXt, wide ResNets and VGGs without batch norm included, gets two groups.

An architecture is a builder function or, as a string, a torchvision model name. (fastai reads a
string as a timm name; transferlens does not.)

Needs beside it: ``errors.py``, ``meta.py``.
"""

from __future__ import annotations

from torch import nn

from .errors import LensError
from .meta import Arch, ArchMeta, arch_meta, arch_name


def _check_body_and_head(model: nn.Module) -> None:
    if not isinstance(model, nn.Sequential) or len(model) != 2:
        described = (
            f"an nn.Sequential of {len(model)}"
            if isinstance(model, nn.Sequential)
            else f"a {type(model).__name__}"
        )
        raise LensError(
            f"`model` must be an nn.Sequential of two modules (body, head), got {described}. "
            "Build it with create_vision_model or fastai's vision_learner."
        )


def param_groups(model: nn.Module, arch: Arch) -> list[list[nn.Parameter]]:
    """Split a body+head model into fastai's parameter groups for ``arch``, in fastai's order.

    Mirrors the splitters of `fastai.vision.learner` that ``vision_learner`` picks from
    ``model_meta``: ``_resnet_split`` (``body[:6]``, ``body[6:]``, head), ``_xresnet_split``
    (``body[:3]``, ``body[3:]``, head), ``_squeezenet_split`` (``features[:5]``, the rest,
    head), ``_densenet_split`` (``features[:7]``, ...), ``_vgg_split`` (``features[:22]``, ...),
    ``_alexnet_split`` (``features[:6]``, ...), where ``features = body[0]``, and
    ``default_split`` (body, head) for everything else.

    Args:
        model: ``nn.Sequential(body, head)`` as ``create_vision_model`` or fastai's
            ``vision_learner`` builds it.
        arch: The builder the body came from, or its torchvision name (see ``arch_meta``).

    Returns:
        One list of parameters per group, each in ``module.parameters()`` order.

    Raises:
        LensError: ``model`` is not a two-module ``nn.Sequential``; its body does not fit
            ``arch`` (e.g. an EfficientNet split as a ResNet: the part fastai's splitter slices
            does not start with the layers of ``arch``'s family); a group would be empty;
            ``arch`` is unknown.

    Examples:
        >>> from torchvision.models import resnet18
        >>> from transferlens import create_vision_model
        >>> model = create_vision_model(resnet18, n_out=2, pretrained=False)
        >>> [len(group) for group in param_groups(model, resnet18)]
        [30, 30, 6]
        >>> efficientnet = create_vision_model("efficientnet_b0", n_out=2, pretrained=False)
        >>> [len(group) for group in param_groups(efficientnet, "efficientnet_b0")]
        [211, 6]
        >>> param_groups(efficientnet, resnet18)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        transferlens.LensError: `model` does not fit `arch` 'resnet18': ...
    """
    _check_body_and_head(model)
    meta = arch_meta(arch)
    if meta.split_at is None:
        parts: list[nn.Module] = [model[0], model[1:]]
    else:
        to_split = _split_part(model, arch, meta)
        parts = [to_split[: meta.split_at], to_split[meta.split_at :], model[1:]]
    groups = [list(part.parameters()) for part in parts]
    empty = [index for index, group in enumerate(groups) if not group]
    if empty:
        raise LensError(
            f"`model` gives an empty parameter group (group {empty[0]} of {len(groups)}) with "
            f"fastai's {meta.splitter} for `arch` {arch_name(arch)!r}, so freezing would not "
            "do what fastai does. Pass as `arch` the builder `model` was built from, and build "
            "the model with create_vision_model (the default `cut`)."
        )
    return groups


def _split_part(model: nn.Sequential, arch: Arch, meta: ArchMeta) -> nn.Sequential:
    """The module fastai's splitter slices (the body, or its ``features``), checked to fit."""
    body = model[0]
    where = "`model[0][0]`" if meta.splits_features else "`model[0]`"
    to_split: nn.Module | None = body
    if meta.splits_features:
        to_split = body[0] if isinstance(body, nn.Sequential) and len(body) > 0 else None
    layers = [] if to_split is None else [type(layer).__name__ for layer in to_split.children()]
    starts = layers[: len(meta.first_layers)]
    if (
        isinstance(to_split, nn.Sequential)
        and tuple(starts) == meta.first_layers
        and len(layers) > (meta.split_at or 0)
    ):
        return to_split
    found = "missing" if to_split is None else f"a {type(to_split).__name__}"
    raise LensError(
        f"`model` does not fit `arch` {arch_name(arch)!r}: fastai's {meta.splitter} slices "
        f"{where} at {meta.split_at}, which in a {meta.family} model is an nn.Sequential "
        f"starting with {', '.join(meta.first_layers)}, but here {where} is {found} starting "
        f"with {', '.join(starts) or 'nothing'}. Pass as `arch` the builder `model` was built "
        "from (e.g. torchvision.models.efficientnet_b0, which fastai splits as body and head), "
        "and build the model with create_vision_model (the default `cut`)."
    )
