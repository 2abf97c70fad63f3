"""The parameter groups fastai splits a vision model into, per architecture.

fastai trains a pretrained model in groups: ``vision_learner`` looks the architecture up in
``fastai.vision.learner.model_meta`` and uses its ``split`` function, or ``default_split`` (body,
head) when the architecture is not there. Only these torchvision builders have a three-group split
of their own: ``resnet18`` to ``resnet152``, ``squeezenet1_0``/``1_1``, ``densenet121``/``161``/
``169``/``201``, the four ``vgg*_bn`` and ``alexnet`` (plus fastai's own ``xresnet`` builders).
Everything else, ResNeXt, wide ResNets and VGGs without batch norm included, gets two groups.

fastai's splitters slice at fixed indices whatever model they are given; ``param_groups`` first
checks that the model fits the architecture (its layers laid out as in the family's own models),
and refuses, naming the architecture the model looks like, when it does not.

An architecture is a builder function or, as a string, a torchvision model name. (fastai reads a
string as a timm name; transferlens does not.)

Needs beside it: ``errors.py``, ``meta.py``.
"""

from __future__ import annotations

from torch import nn

from .errors import LensError
from .meta import MODEL_META, SPLIT_LAYOUTS, Arch, ArchMeta, arch_meta, arch_name, family_layouts


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

    fastai's splitters slice at fixed indices whatever model they get, so a model of another
    architecture is split somewhere meaningless, or with an empty group, without an error. Here
    a model must *fit* ``arch``: the part the splitter slices (the body, or ``body[0]``, the
    ``features``) is an ``nn.Sequential`` whose layers, by class name, are laid out as in one of
    the family's own models for as long as both go, and that has more layers than the split
    point. So the first group holds exactly the layers it holds in the family's models, and the
    second is not empty; a later cut (more layers after the family's body) still fits. ResNeXts
    and wide ResNets are ResNets, so they fit ``resnet18`` (and ``_resnet_split`` splits them as
    it splits a ResNet); every model fits a ``default_split`` architecture. The layouts are
    those of torchvision's (and fastai's xresnet) models, e.g. every ``vgg*_bn``'s ``features``.

    Args:
        model: ``nn.Sequential(body, head)`` as ``create_vision_model`` or fastai's
            ``vision_learner`` builds it.
        arch: The builder the body came from, or its torchvision name (see ``arch_meta``).

    Returns:
        One list of parameters per group, each in ``module.parameters()`` order.

    Raises:
        LensError: ``model`` is not a two-module ``nn.Sequential``; it does not fit ``arch``
            (e.g. an EfficientNet or a VGG without batch norm split as a ResNet or an AlexNet;
            the message says which architecture it looks like when its layers tell); a group
            would be empty; ``arch`` is unknown.

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


def _sliced_part(model: nn.Sequential, splits_features: bool) -> nn.Module | None:
    """What a splitter slices: ``model[0]``, or ``model[0][0]`` (``None`` where there is none)."""
    body = model[0]
    if not splits_features:
        return body
    return body[0] if isinstance(body, nn.Sequential) and len(body) > 0 else None


def _layer_names(part: nn.Module | None) -> tuple[str, ...]:
    if not isinstance(part, nn.Sequential):
        return ()
    return tuple(type(layer).__name__ for layer in part.children())


def _agree(layers: tuple[str, ...], layout: tuple[str, ...]) -> bool:
    """Laid out alike for as long as both go (a longer or shorter cut of the same model)."""
    common = min(len(layers), len(layout))
    return common > 0 and layers[:common] == layout[:common]


def _looks_like(model: nn.Sequential) -> list[str]:
    """The builders whose whole layout (``SPLIT_LAYOUTS``) ``model`` starts with."""
    levels = {meta.family: meta.splits_features for meta in MODEL_META.values()}
    found = []
    for family, layouts in SPLIT_LAYOUTS.items():
        layers = _layer_names(_sliced_part(model, levels[family]))
        found += [
            name
            for name, layout in layouts.items()
            if len(layers) >= len(layout) and layers[: len(layout)] == layout
        ]
    return found


def _mismatch(layers: tuple[str, ...], layouts: dict[str, tuple[str, ...]]) -> str:
    """Where ``layers`` first parts from the family layout it follows longest."""

    def first_difference(layout: tuple[str, ...]) -> int:
        return next(i for i, (a, b) in enumerate(zip(layers, layout, strict=False)) if a != b)

    name = max(layouts, key=lambda candidate: first_difference(layouts[candidate]))
    index = first_difference(layouts[name])
    return f"a {layers[index]} as layer {index}, where {name} has a {layouts[name][index]}"


def _listed(names: list[str], conjunction: str) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def _builders(names: list[str]) -> str:
    source = "fastai's" if names[0].startswith("xresnet") else "torchvision's"
    return f"{source} {_listed(names, 'or')}"


def _split_part(model: nn.Sequential, arch: Arch, meta: ArchMeta) -> nn.Sequential:
    """The module fastai's splitter slices (the body, or its ``features``), checked to fit."""
    part = _sliced_part(model, meta.splits_features)
    layers = _layer_names(part)
    layouts = family_layouts(meta)
    split_at = meta.split_at or 0
    agreeing = [name for name, layout in layouts.items() if _agree(layers, layout)]
    if isinstance(part, nn.Sequential) and agreeing and len(layers) > split_at:
        return part
    where = "`model[0][0]`" if meta.splits_features else "`model[0]`"
    if part is None:
        found = "missing: `model[0]` is not an nn.Sequential with a first layer"
    elif not isinstance(part, nn.Sequential):
        found = f"a {type(part).__name__}, not an nn.Sequential"
    elif not layers:
        found = "an empty nn.Sequential"
    elif agreeing:
        found = (
            f"an nn.Sequential of only {len(layers)} layers ({', '.join(layers)}), so the "
            "second group would hold nothing"
        )
    else:
        found = f"an nn.Sequential with {_mismatch(layers, layouts)}"
    looks_like = _looks_like(model)
    if looks_like:
        hint = f"it looks like {_builders(looks_like)}"
    else:
        hint = "e.g. torchvision.models.efficientnet_b0, which fastai splits as body and head"
    source = "fastai" if meta.family == "xresnet" else "torchvision"
    raise LensError(
        f"`model` does not fit `arch` {arch_name(arch)!r}: fastai's {meta.splitter} slices "
        f"{where} at {split_at}, made for the layers of {_listed(list(layouts), 'and')} as "
        f"{source} builds them; here {where} is {found}. Pass as `arch` the builder `model` "
        f"was built from ({hint}), and build the model with create_vision_model (the default "
        "`cut`)."
    )
