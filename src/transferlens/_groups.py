"""The parameter groups fastai splits a vision model into, per architecture.

fastai trains a pretrained model in groups: ``vision_learner`` looks the architecture up in
``fastai.vision.learner.model_meta`` and uses its ``split`` function, or ``default_split`` (body,
head) when the architecture is not there. Only these torchvision builders have a three-group split
of their own: ``resnet18`` to ``resnet152``, ``squeezenet1_0``/``1_1``, ``densenet121``/``161``/
``169``/``201``, the four ``vgg*_bn`` and ``alexnet`` (plus fastai's own ``xresnet`` builders).
Everything else, ResNeXt, wide ResNets and VGGs without batch norm included, gets two groups.

An architecture is a builder function or, as a string, a torchvision model name. (fastai reads a
string as a timm name; transferlens does not.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from transferlens._errors import LensError, suggest

__all__ = ["arch_name", "known_architectures", "param_groups", "resolve_arch", "split_family"]

#: torchvision builders with an entry in fastai's ``model_meta``, and the split family it gives.
_TORCHVISION_FAMILIES: dict[str, str] = {
    **{name: "resnet" for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    **{name: "squeezenet" for name in ("squeezenet1_0", "squeezenet1_1")},
    **{name: "densenet" for name in ("densenet121", "densenet161", "densenet169", "densenet201")},
    **{name: "vgg" for name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn")},
    "alexnet": "alexnet",
}

#: fastai's own builders in ``model_meta`` (module ``fastai.vision.models.xresnet``).
_XRESNET_MODULE = "fastai.vision.models.xresnet"
_XRESNET_NAMES = frozenset({"xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152"})

#: The ``cut`` of each family in fastai's ``model_meta`` (``None``: fastai's pooling-layer rule).
FAMILY_CUTS: dict[str, int | None] = {
    "resnet": -2,
    "xresnet": -4,
    "squeezenet": -1,
    "densenet": -1,
    "vgg": -2,
    "alexnet": -2,
    "default": None,
}

Arch = str | Callable[..., Any]


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
        transferlens._errors.LensError: `arch` 'resnet1800' is not ... Did you mean 'resnet18', ...
    """
    name = arch_name(arch)
    known = known_architectures()
    if name not in known:
        hint = ""
        if name in _XRESNET_NAMES:
            hint = " fastai's xresnet builders are accepted as functions, not as names."
        raise LensError(
            f"`arch` {name!r} is not a torchvision classification model.{suggest(name, known)}"
            f"{hint} known_architectures() lists them all."
        )
    return name


def split_family(arch: Arch) -> str:
    """Which of fastai's splitters ``vision_learner`` uses for ``arch``.

    Mirrors the ``model_meta.get(arch, _default_meta)['split']`` lookup of
    `fastai.vision.learner.vision_learner`. A string must be a torchvision model name. A function
    counts as its torchvision (or fastai ``xresnet``) namesake only when it comes from that
    library; any other builder gets the default split, as in fastai.

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
    if isinstance(arch, str):
        return _TORCHVISION_FAMILIES.get(resolve_arch(arch), "default")
    name = arch_name(arch)
    module = getattr(arch, "__module__", None) or ""
    if module.startswith("torchvision.models"):
        return _TORCHVISION_FAMILIES.get(name, "default")
    if module == _XRESNET_MODULE and name in _XRESNET_NAMES:
        return "xresnet"
    return "default"


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
        arch: The builder the body came from, or its torchvision name (see ``split_family``).

    Returns:
        One list of parameters per group, each in ``module.parameters()`` order.

    Raises:
        LensError: ``model`` is not a two-module ``nn.Sequential`` or its body cannot be split
            the way ``arch``'s family needs; ``arch`` is unknown.

    Examples:
        >>> body = nn.Sequential(*[nn.Conv2d(3, 3, 1) for _ in range(8)])
        >>> model = nn.Sequential(body, nn.Linear(3, 2))
        >>> [len(group) for group in param_groups(model, "resnet18")]
        [12, 4, 2]
        >>> [len(group) for group in param_groups(model, "mobilenet_v3_small")]
        [16, 2]
    """
    _check_body_and_head(model)
    family = split_family(arch)
    body, head = model[0], model[1:]
    cuts = {"resnet": 6, "xresnet": 3, "squeezenet": 5, "densenet": 7, "vgg": 22, "alexnet": 6}
    if family == "default":
        parts: list[nn.Module] = [body, head]
    else:
        try:
            # resnet/xresnet split the body itself; the others split its first child, `features`.
            to_split = body if family in ("resnet", "xresnet") else body[0]
            parts = [to_split[: cuts[family]], to_split[cuts[family] :], head]
        except (TypeError, IndexError, NotImplementedError) as error:
            where = "`model[0]`" if family in ("resnet", "xresnet") else "`model[0][0]`"
            raise LensError(
                f"`model` cannot be split as fastai splits {family} models: {where} must be an "
                f"nn.Sequential ({error}). Build it with create_vision_model or fastai's "
                "vision_learner, with the default `cut`."
            ) from error
    return [list(part.parameters()) for part in parts]
