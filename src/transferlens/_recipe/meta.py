"""What fastai knows about each architecture: where to cut it, how to split it, its statistics.

One table, shaped like ``fastai.vision.learner.model_meta``: fastai keys it by the builder
function itself (``model_meta.get(arch, _default_meta)``), so only the very functions it lists get
an entry. ``torchvision.models.quantization.resnet18`` is another function than
``torchvision.models.resnet18``, so it gets the default (cut by the pooling-layer rule, split into
body and head), as in fastai. transferlens never imports torchvision or fastai to look a builder
up: a builder can only exist once its library is imported, so the lookup compares it with the
function of that name in the already imported module (``sys.modules``), by identity.

The entries (``_resnet_meta`` ... ``_alexnet_meta`` in ``fastai/vision/learner.py``), as
family: builders, cut, first parameter group:

- ``resnet``: torchvision ``resnet18`` ... ``resnet152``; -2; ``body[:6]``
- ``xresnet``: fastai's ``xresnet18`` ... ``xresnet152``; -4; ``body[:3]``
- ``squeezenet``: torchvision ``squeezenet1_0``, ``squeezenet1_1``; -1; ``body[0][:5]``
- ``densenet``: torchvision ``densenet121``, ``161``, ``169``, ``201``; -1; ``body[0][:7]``
- ``vgg``: torchvision ``vgg11_bn``, ``vgg13_bn``, ``vgg16_bn``, ``vgg19_bn``; -2; ``body[0][:22]``
- ``alexnet``: torchvision ``alexnet``; -2; ``body[0][:6]``
- ``default``: everything else (ResNeXt, wide ResNets, VGGs without batch norm included);
  ``None`` (the pooling-layer rule); ``body`` (then the head)

Beside the table, ``SPLIT_LAYOUTS``: the layers (by class name) that each family's splitter
slices in its own models, which ``param_groups`` checks a model against.

An architecture is a builder function or, as a string, a torchvision classification model name.
(fastai reads a string as a timm name; transferlens does not.)

Needs beside it: ``errors.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .errors import LensError, suggest

Arch = str | Callable[..., Any]

#: ``fastai.vision.core.imagenet_stats``: per-channel means and standard deviations.
IMAGENET_STATS: tuple[tuple[float, float, float], tuple[float, float, float]] = (
    (0.485, 0.456, 0.406),
    (0.229, 0.224, 0.225),
)

_TORCHVISION = "torchvision.models"
_XRESNET = "fastai.vision.models.xresnet"


@dataclass(frozen=True)
class ArchMeta:
    """fastai's ``model_meta`` entry of one architecture (or its ``_default_meta``).

    Attributes:
        family: ``"resnet"``, ``"xresnet"``, ``"squeezenet"``, ``"densenet"``, ``"vgg"``,
            ``"alexnet"``, or ``"default"`` for an architecture fastai has no entry for.
        cut: ``meta['cut']``: where ``create_body`` cuts the model (``list(children)[:cut]``), or
            ``None`` for fastai's rule (cut before the last child with a pooling layer).
        split_at: where fastai's splitter (``_resnet_split`` ...) ends the first group: the
            index into the body (``resnet``, ``xresnet``) or into its first child, the
            torchvision ``features`` (the others); ``None`` for ``default_split`` (body, head).
        splits_features: whether the splitter splits ``body[0]`` rather than ``body``.
        stats: ``meta['stats']``, the normalization statistics ``vision_learner`` adds for a
            pretrained model, or ``None``.
        weights: ``meta['weights']``: ``"DEFAULT"`` where fastai builds the model with
            ``arch(weights=...)``, ``None`` where it calls ``arch(pretrained=...)``.
        model_class: ``module.ClassName`` of the model the family's builders return, or
            ``None`` (default).
    """

    family: str
    cut: int | None
    split_at: int | None = None
    splits_features: bool = False
    stats: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    weights: str | None = None
    model_class: str | None = None

    @property
    def splitter(self) -> str:
        """The name of fastai's splitter function (``"_resnet_split"``, ``"default_split"``)."""
        return "default_split" if self.family == "default" else f"_{self.family}_split"


_DEFAULT = ArchMeta("default", None)

_FAMILIES: dict[str, ArchMeta] = {
    "resnet": ArchMeta(
        family="resnet",
        cut=-2,
        split_at=6,
        splits_features=False,
        stats=IMAGENET_STATS,
        weights="DEFAULT",
        model_class="torchvision.models.resnet.ResNet",
    ),
    "xresnet": ArchMeta(
        family="xresnet",
        cut=-4,
        split_at=3,
        splits_features=False,
        stats=IMAGENET_STATS,
        weights=None,
        model_class="fastai.vision.models.xresnet.XResNet",
    ),
    "squeezenet": ArchMeta(
        family="squeezenet",
        cut=-1,
        split_at=5,
        splits_features=True,
        stats=IMAGENET_STATS,
        weights="DEFAULT",
        model_class="torchvision.models.squeezenet.SqueezeNet",
    ),
    "densenet": ArchMeta(
        family="densenet",
        cut=-1,
        split_at=7,
        splits_features=True,
        stats=IMAGENET_STATS,
        weights="DEFAULT",
        model_class="torchvision.models.densenet.DenseNet",
    ),
    "vgg": ArchMeta(
        family="vgg",
        cut=-2,
        split_at=22,
        splits_features=True,
        stats=IMAGENET_STATS,
        weights="DEFAULT",
        model_class="torchvision.models.vgg.VGG",
    ),
    "alexnet": ArchMeta(
        family="alexnet",
        cut=-2,
        split_at=6,
        splits_features=True,
        stats=IMAGENET_STATS,
        weights="DEFAULT",
        model_class="torchvision.models.alexnet.AlexNet",
    ),
}

#: ``model_meta`` itself: (module fastai takes the builder from, builder name) -> entry.
MODEL_META: dict[tuple[str, str], ArchMeta] = {
    **{(_XRESNET, f"xresnet{depth}"): _FAMILIES["xresnet"] for depth in (18, 34, 50, 101, 152)},
    **{(_TORCHVISION, f"resnet{depth}"): _FAMILIES["resnet"] for depth in (18, 34, 50, 101, 152)},
    **{(_TORCHVISION, f"squeezenet1_{minor}"): _FAMILIES["squeezenet"] for minor in (0, 1)},
    **{(_TORCHVISION, f"densenet{depth}"): _FAMILIES["densenet"] for depth in (121, 169, 201, 161)},
    **{(_TORCHVISION, f"vgg{depth}_bn"): _FAMILIES["vgg"] for depth in (11, 13, 16, 19)},
    (_TORCHVISION, "alexnet"): _FAMILIES["alexnet"],
}

#: Model classes whose cut is known whatever builder made them: every torchvision builder of
#: these classes without an entry (ResNeXt, wide ResNets, VGGs without batch norm) is cut by
#: fastai's pooling-layer rule at the family's very cut, so the class decides the body exactly.
#: ``test_meta.py`` checks this against fastai for every torchvision builder.
_CLASS_META: dict[str, ArchMeta] = {
    meta.model_class: meta for meta in _FAMILIES.values() if meta.model_class is not None
}


def _vgg_features(convolutions_and_pools: str, batch_norm: bool) -> tuple[str, ...]:
    """torchvision's ``vgg.make_layers``, as class names: ``C`` a convolution, ``M`` a max pool."""
    convolution = ("Conv2d", "BatchNorm2d", "ReLU") if batch_norm else ("Conv2d", "ReLU")
    layers: list[str] = []
    for item in convolutions_and_pools:
        layers += convolution if item == "C" else ("MaxPool2d",)
    return tuple(layers)


#: torchvision's ``vgg.cfgs`` "A", "B", "D", "E", by depth, without the channel counts.
_VGG_CONFIGS = {
    11: "CMCMCCMCCMCCM",
    13: "CCMCCMCCMCCMCCM",
    16: "CCMCCMCCCMCCCMCCCM",
    19: "CCMCCMCCCCMCCCCMCCCCM",
}
_RESNET_BODY = ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", *("Sequential",) * 4)

#: ``family -> {builder name: layers}``: the layers fastai's splitter slices, as class names, in
#: the model fastai builds for each builder of the family's model class: the body (the
#: model's first children) for ``resnet`` and ``xresnet``, whose splitters slice ``model[0]``;
#: the model's ``features`` for the others, whose splitters slice ``model[0][0]``. The builders
#: of those classes that have no ``model_meta`` entry (ResNeXt, wide ResNets, VGGs without batch
#: norm) are listed too: fastai splits them as body and head, and ``param_groups`` names them
#: when a model it refuses looks like one. ``test_groups_pairs.py`` checks every entry against
#: the model built.
SPLIT_LAYOUTS: dict[str, dict[str, tuple[str, ...]]] = {
    "resnet": {
        name: _RESNET_BODY
        for name in (
            *(f"resnet{depth}" for depth in (18, 34, 50, 101, 152)),
            "resnext50_32x4d",
            "resnext101_32x8d",
            "resnext101_64x4d",
            "wide_resnet50_2",
            "wide_resnet101_2",
        )
    },
    "xresnet": {
        f"xresnet{depth}": ("ConvLayer",) * 3 + ("MaxPool2d",) + ("Sequential",) * 4
        for depth in (18, 34, 50, 101, 152)
    },
    "squeezenet": {
        "squeezenet1_0": (
            *("Conv2d", "ReLU", "MaxPool2d", "Fire", "Fire", "Fire", "MaxPool2d"),
            *("Fire", "Fire", "Fire", "Fire", "MaxPool2d", "Fire"),
        ),
        "squeezenet1_1": (
            *("Conv2d", "ReLU", "MaxPool2d", "Fire", "Fire", "MaxPool2d", "Fire"),
            *("Fire", "MaxPool2d", "Fire", "Fire", "Fire", "Fire"),
        ),
    },
    "densenet": {
        f"densenet{depth}": (
            ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d")
            + ("_DenseBlock", "_Transition") * 3
            + ("_DenseBlock", "BatchNorm2d")
        )
        for depth in (121, 161, 169, 201)
    },
    "vgg": {
        f"vgg{depth}{suffix}": _vgg_features(config, batch_norm=bool(suffix))
        for suffix in ("_bn", "")
        for depth, config in _VGG_CONFIGS.items()
    },
    "alexnet": {"alexnet": _vgg_features("CMCMCCCM", batch_norm=False)},
}


def family_layouts(meta: ArchMeta) -> dict[str, tuple[str, ...]]:
    """The layouts (``SPLIT_LAYOUTS``) of the builders ``model_meta`` gives ``meta``'s entry."""
    own = {name for (_, name), entry in MODEL_META.items() if entry is meta}
    layouts = SPLIT_LAYOUTS.get(meta.family, {})
    return {name: layers for name, layers in layouts.items() if name in own}


def builder_meta(builder: Callable[..., Any]) -> ArchMeta:
    """fastai's ``model_meta.get(builder, _default_meta)``, without importing torchvision.

    Args:
        builder: A model builder function.

    Returns:
        The entry of ``builder`` when it IS one of the functions fastai lists, else the default.
    """
    name = getattr(builder, "__name__", None)
    if not isinstance(name, str):
        return _DEFAULT
    for module_name in (_TORCHVISION, _XRESNET):
        meta = MODEL_META.get((module_name, name))
        module = sys.modules.get(module_name)
        if meta is not None and module is not None and getattr(module, name, None) is builder:
            return meta
    return _DEFAULT


def model_class_meta(model: nn.Module) -> ArchMeta:
    """The entry whose builders build models of exactly ``type(model)`` (not a subclass)."""
    cls = type(model)
    return _CLASS_META.get(f"{cls.__module__}.{cls.__qualname__}", _DEFAULT)


def torchvision_builder(name: str, argument: str = "arch") -> Callable[..., nn.Module]:
    """The torchvision classification builder called ``name`` (imports torchvision).

    Raises:
        LensError: ``name`` is not a torchvision classification model; the message names
            ``argument`` and suggests close names.
    """
    import torchvision.models

    return torchvision.models.get_model_builder(_check_torchvision_name(name, argument))


def arch_meta(arch: Arch) -> ArchMeta:
    """What fastai knows about ``arch``: its ``model_meta`` entry, or the default.

    Mirrors ``model_meta.get(arch, _default_meta)`` in `fastai.vision.learner.vision_learner` and
    `fastai.vision.learner.create_vision_model`: an architecture is identified by the builder
    function itself, so only the functions fastai lists get an entry (a namesake from elsewhere,
    e.g. ``torchvision.models.quantization.resnet18``, gets the default). A string is a torchvision
    classification model name (fastai reads a string as a timm name; transferlens does not).

    Args:
        arch: A builder function (``torchvision.models.resnet18``) or a torchvision model name.

    Returns:
        The `ArchMeta`, with family, cut, split point, statistics and weights.

    Raises:
        LensError: ``arch`` is neither a function nor a torchvision classification model name.

    Examples:
        >>> meta = arch_meta("resnet34")
        >>> meta.family, meta.cut, meta.splitter, meta.weights
        ('resnet', -2, '_resnet_split', 'DEFAULT')
        >>> meta.stats[0]
        (0.485, 0.456, 0.406)
        >>> arch_meta("efficientnet_b0")
        ArchMeta(family='default', cut=None, split_at=None, splits_features=False, stats=None, weights=None, model_class=None)
    """  # noqa: E501
    if isinstance(arch, str):
        return builder_meta(torchvision_builder(arch))
    arch_name(arch)  # a LensError unless a named function
    return builder_meta(arch)


def arch_name(arch: Arch) -> str:
    """The name of an architecture: the string itself, or the builder's ``__name__``.

    Args:
        arch: A builder function such as ``torchvision.models.resnet18``, or its name.

    Returns:
        The name, e.g. ``"resnet18"``.

    Raises:
        LensError: ``arch`` is neither a string nor a named function.

    Examples:
        >>> arch_name("resnet18")
        'resnet18'
        >>> def my_net(): ...
        >>> arch_name(my_net)
        'my_net'
    """
    if isinstance(arch, str):
        return arch
    name = getattr(arch, "__name__", None)
    if not callable(arch) or not isinstance(name, str):
        raise LensError(
            f"`arch` must be a model builder function or its name (e.g. 'resnet18'), got "
            f"{type(arch).__name__}. Pass the function itself, not a partial or a built model."
        )
    return name


def known_architectures() -> list[str]:
    """The torchvision classification model names a string ``arch`` may take.

    Uses ``torchvision.models.list_models(module=torchvision.models)``, imported only when called.

    Returns:
        The names, sorted.

    Examples:
        >>> names = known_architectures()
        >>> "resnet18" in names, "vgg11_bn" in names, "fasterrcnn_resnet50_fpn" in names
        (True, True, False)
    """
    try:
        import torchvision.models
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "Architecture names need torchvision: pip install 'transferlens[vision]'."
        ) from error
    return sorted(torchvision.models.list_models(module=torchvision.models))


def resolve_arch(arch: Arch) -> str:
    """Check that ``arch`` names a torchvision classification model and return that name.

    Args:
        arch: A torchvision builder such as ``torchvision.models.resnet18``, or its name.

    Returns:
        The torchvision model name.

    Raises:
        LensError: The name is not a torchvision classification model; the message suggests
            close names.

    Examples:
        >>> resolve_arch("resnet18")
        'resnet18'
        >>> resolve_arch("resnet1800")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        transferlens.LensError: `arch` 'resnet1800' is not ... Did you mean 'resnet18', ...
    """
    return _check_torchvision_name(arch_name(arch), "arch")


def _check_torchvision_name(name: str, argument: str) -> str:
    known = known_architectures()
    if name not in known:
        hint = ""
        if (_XRESNET, name) in MODEL_META:
            hint = " fastai's xresnet builders are accepted as functions, not as names."
        raise LensError(
            f"`{argument}` {name!r} is not a torchvision classification model."
            f"{suggest(name, known)}{hint} known_architectures() lists them all."
        )
    return name


def split_family(arch: Arch) -> str:
    """Which of fastai's splitters ``vision_learner`` uses for ``arch``.

    Mirrors the ``model_meta.get(arch, _default_meta)['split']`` lookup of
    `fastai.vision.learner.vision_learner`: ``arch_meta(arch).family``. A string must be a
    torchvision model name. A function gets an entry only when it IS the function fastai lists
    (identity, as fastai's dict lookup): a namesake from elsewhere, even
    ``torchvision.models.quantization.resnet18``, gets the default split, as in fastai.

    Args:
        arch: A builder function or a torchvision model name.

    Returns:
        ``"resnet"``, ``"squeezenet"``, ``"densenet"``, ``"vgg"``, ``"alexnet"``, ``"xresnet"`` or
        ``"default"`` (body, head).

    Raises:
        LensError: A string that is not a torchvision model name.

    Examples:
        >>> split_family("resnet50"), split_family("vgg16_bn"), split_family("vgg16")
        ('resnet', 'vgg', 'default')
        >>> split_family("resnext50_32x4d")
        'default'
    """
    return arch_meta(arch).family
