"""Cutting a pretrained classifier into a body, and putting fastai's head on it.

fastai keeps the convolutional part of a pretrained network (the *body*) and replaces the rest with
a new head. Where to cut comes from ``fastai.vision.learner.model_meta`` (e.g. ``-2`` for ResNets:
drop the average pool and the final ``fc``) or, for architectures it does not know, from a rule:
cut before the last child that contains a pooling layer.

Every function here takes an already built model, so transferlens never imports torchvision.

Needs beside it: ``errors.py``, ``eval_mode.py``, ``freeze.py``, ``head.py``, ``meta.py``.
"""

from __future__ import annotations

import copy
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import LensError
from .eval_mode import eval_mode
from .freeze import NORM_TYPES
from .head import create_head
from .meta import Arch, arch_meta, builder_meta, model_class_meta, torchvision_builder

Cut = int | Callable[[nn.Module], nn.Module] | None

_POOL_CLASS_NAME = re.compile(r"Pool[123]d$")

_MAX_PROBE_SIZE = 2048


def has_pool_type(module: nn.Module) -> bool:
    """Whether ``module`` is a pooling layer or contains one.

    Mirrors `fastai.vision.learner.has_pool_type`: a pooling layer is any module whose class name
    ends in ``Pool1d``, ``Pool2d`` or ``Pool3d`` (``MaxPool2d``, ``AdaptiveAvgPool2d``, ...).

    Args:
        module: Any module.

    Returns:
        True when ``module`` or any module inside it is a pooling layer.

    Examples:
        >>> has_pool_type(nn.Sequential(nn.Conv2d(3, 8, 3), nn.MaxPool2d(2)))
        True
        >>> has_pool_type(nn.Linear(8, 2))
        False
    """
    if _POOL_CLASS_NAME.search(type(module).__name__):
        return True
    return any(has_pool_type(child) for child in module.children())


def create_body(model: nn.Module, cut: Cut = None) -> nn.Module:
    """Cut the body off a built classifier.

    Mirrors `fastai.vision.learner.create_body` (with ``n_in=3``) and
    `fastai.vision.learner.cut_model`: an int ``cut`` keeps ``list(model.children())[:cut]`` in an
    ``nn.Sequential``; a callable returns ``cut(model)``; ``None`` cuts before the last child that
    contains a pooling layer. The body shares its modules (and weights) with ``model``.

    Args:
        model: A built classifier, e.g. ``torchvision.models.resnet18(weights=None)``.
        cut: Where to cut: an int, a function of the model, or ``None`` for fastai's rule. For
            fastai's own choice per architecture pass ``default_cut(arch)``.

    Returns:
        The body, an ``nn.Sequential`` of children, or whatever a callable ``cut`` returns.

    Raises:
        LensError: ``cut`` is of the wrong type, a callable ``cut`` did not return a module, or
            ``cut`` is None and no child of ``model`` contains a pooling layer.

    Examples:
        >>> model = nn.Sequential(
        ...     nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8, 2)
        ... )
        >>> create_body(model)
        Sequential(
          (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
        )
        >>> len(create_body(model, cut=-1))
        3
    """
    if cut is None:
        children = list(model.children())
        pooled = [index for index, child in enumerate(children) if has_pool_type(child)]
        if not pooled:
            raise LensError(
                f"`cut` is None, but no child of the {type(model).__name__} contains a pooling "
                "layer, so fastai's rule (cut before the last pooling child) does not apply. "
                "Pass `cut` as an int (keep children[:cut]) or a function of the model."
            )
        cut = pooled[-1]
    if isinstance(cut, int) and not isinstance(cut, bool):
        return nn.Sequential(*list(model.children())[:cut])
    if callable(cut):
        body = cut(model)
        if not isinstance(body, nn.Module):
            raise LensError(
                f"`cut` returned a {type(body).__name__}; a callable `cut` must return the body "
                "as an nn.Module."
            )
        return body
    raise LensError(
        f"`cut` must be an int, a function of the model, or None, got {type(cut).__name__}. "
        "Pass e.g. cut=-2 to keep all children but the last two."
    )


@dataclass(frozen=True)
class FeatureProbe:
    """What fastai's dummy forward through a body found: its output, or which child fails where.

    `probe_features` returns it; `num_features` and `create_vision_model` read it and raise a
    `LensError` that says what failed. A body that is a plain ``nn.Sequential`` runs child by
    child (what its forward does), so a failure names the child; any other body runs whole.

    Attributes:
        size: Height and width of the last dummy input: the one the body ran on, or the last
            one tried when it failed at every size.
        sizes_tried: Every size tried, in order (the size doubles while the forward fails).
        output_shape: The shape of the body's output at ``size``; ``None`` when the forward
            raised or returned something other than a tensor.
        output_type: The class name of what the body returned (``"Tensor"``), or ``None`` when
            the forward raised.
        failed_child: The index among the body's children of the child that raised at
            ``size``; ``None`` when nothing raised or the body ran whole.
        input_shape: The shape of the input the failed child got (the probe, or the output of
            the child before it); ``None`` when no child failed.
        error: The exception the forward raised at ``size``, or ``None``. An empty
            ``nn.Sequential`` gets an ``IndexError`` (nothing to measure), as in fastai.
        feature_map_children: The most leading children that ran at ``size`` and ended on 4-d
            feature maps (batch, channels, height, width): the longest cut of this body whose
            output fastai's head can pool. ``None`` when none did, or the body ran whole.
    """

    size: tuple[int, int]
    sizes_tried: tuple[tuple[int, int], ...]
    output_shape: tuple[int, ...] | None = None
    output_type: str | None = None
    failed_child: int | None = None
    input_shape: tuple[int, ...] | None = None
    error: BaseException | None = None
    feature_map_children: int | None = None

    @property
    def n_features(self) -> int | None:
        """``output_shape[1]``, what fastai's ``num_features_model`` returns (else ``None``)."""
        shape = self.output_shape
        return shape[1] if shape is not None and len(shape) >= 2 else None


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _probe_once(
    body: nn.Module, probe: torch.Tensor, size: tuple[int, int], tried: list[tuple[int, int]]
) -> FeatureProbe:
    """One forward of ``probe`` through ``body``, child by child for a plain ``nn.Sequential``."""
    found: dict[str, Any] = {"size": size, "sizes_tried": tuple(tried)}
    if type(body).forward is not nn.Sequential.forward:
        try:
            output = body(probe)
        except Exception as error:  # fastai retries on any failure (usually a too small input)
            return FeatureProbe(**found, error=error)
    else:
        output, feature_maps = probe, None
        for index, child in enumerate(body.children()):
            try:
                next_output = child(output)
            except Exception as error:
                return FeatureProbe(
                    **found,
                    failed_child=index,
                    input_shape=_shape(output),
                    error=error,
                    feature_map_children=feature_maps,
                )
            output = next_output
            if isinstance(output, torch.Tensor) and output.ndim == 4:
                feature_maps = index + 1
        found["feature_map_children"] = feature_maps
    return FeatureProbe(**found, output_shape=_shape(output), output_type=type(output).__name__)


def probe_features(
    body: nn.Module,
    n_in: int = 3,
    size: tuple[int, int] = (32, 32),
    max_size: int = _MAX_PROBE_SIZE,
) -> FeatureProbe:
    """Run ``body`` on fastai's dummy input and say what came out, or which child fails where.

    Mirrors `fastai.callback.hook.num_features_model` and `fastai.callback.hook.dummy_eval`: a
    ``1 x n_in x size`` input drawn uniformly from ``[-1, 1)`` with the global random generator
    (as fastai does, so a seeded build draws fastai's numbers), in eval mode and without
    gradients; while the forward raises, the size doubles, up to ``max_size`` (fastai: 2048;
    pass ``max_size=size[0]`` for one try). The modules' training flags are restored after.
    Nothing is raised: the result says what failed (`num_features` raises from it).

    Args:
        body: A module taking images, e.g. from ``create_body``.
        n_in: Channels of the dummy input.
        size: Height and width of the first dummy input (fastai's ``create_vision_model``: 32).
        max_size: The largest height or width to try.

    Returns:
        A `FeatureProbe` with the output shape, or with the size, child, input shape and error
        of the last failure.

    Examples:
        >>> probe_features(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())).output_shape
        (1, 8, 30, 30)
        >>> body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8, 2))
        >>> found = probe_features(body, max_size=64)
        >>> found.sizes_tried, found.failed_child, found.input_shape, type(found.error).__name__
        (((32, 32), (64, 64)), 2, (1, 30752), 'RuntimeError')
        >>> found.feature_map_children  # body[:1] ends on feature maps
        1
    """
    first_parameter = next(body.parameters(), None)
    dtype = first_parameter.dtype if first_parameter is not None else torch.get_default_dtype()
    device = first_parameter.device if first_parameter is not None else torch.device("cpu")
    height, width = size
    tried: list[tuple[int, int]] = []
    if isinstance(body, nn.Sequential) and len(body) == 0:
        # fastai hooks the children, so an empty body has no output to measure at any size.
        nothing = IndexError("the body is an empty nn.Sequential: there is nothing to measure")
        return FeatureProbe(size, (size,), error=nothing)
    with eval_mode(body), torch.no_grad():
        while True:
            tried.append((height, width))
            probe = torch.empty(1, n_in, height, width, dtype=dtype, device=device).uniform_(-1, 1)
            found = _probe_once(body, probe, (height, width), tried)
            if found.error is None or max(height, width) * 2 > max_size:
                return found
            height, width = height * 2, width * 2


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    first = text[0].rstrip(".") if text else ""
    return f"{type(error).__name__}: {first[:300]}" if first else type(error).__name__


def _probe_failure(body: nn.Module, found: FeatureProbe, n_in: int) -> str:
    """Why the dummy forward failed, in words (``found.error`` is set)."""
    assert found.error is not None
    first, last = found.sizes_tried[0], found.size
    if len(found.sizes_tried) == 1:
        tried = f"fails on a {first[0]}x{first[1]} dummy input with {n_in} channels"
    else:
        sizes = ", ".join(str(height) for height, _ in found.sizes_tried)
        tried = (
            f"fails on every dummy input from {first[0]}x{first[1]} up to {last[0]}x{last[1]} "
            f"pixels ({sizes}) with {n_in} channels"
        )
    if found.failed_child is None:
        where = "the body fails"
    else:
        index = found.failed_child
        child = type(list(body.children())[index]).__name__
        given = "the input" if index == 0 else f"the output of child {index - 1}"
        shape = list(found.input_shape) if found.input_shape is not None else "not a tensor"
        where = f"child {index} ({child}) fails on {given} (shape {shape})"
    return (
        f"`body` {tried}: at {last[0]}x{last[1]}, {where} with {_first_line(found.error)}. "
        "Check `n_in`; cut the body before the failing child (a smaller `cut`); or measure "
        "the features yourself and pass `nf` to create_head (`custom_head` to "
        "create_vision_model)."
    )


def num_features(body: nn.Module, n_in: int = 3, size: tuple[int, int] = (64, 64)) -> int:
    """The number of channels ``body`` outputs, found by running it on a dummy image.

    Mirrors `fastai.callback.hook.num_features_model` and `fastai.callback.hook.dummy_eval`: a
    ``1 x n_in x size`` input drawn uniformly from ``[-1, 1)`` with the global random generator
    (as fastai does, so that a seeded ``create_vision_model`` draws the same numbers as
    fastai's), in eval mode and without gradients; when the forward fails the size is doubled,
    up to 2048. Unlike fastai, the modules' training flags are restored afterwards. This is
    `probe_features`, raising when it found no channels.

    Args:
        body: A module taking images, e.g. from ``create_body``.
        n_in: Channels of the dummy input.
        size: Height and width of the first dummy input.

    Returns:
        ``output.shape[1]`` of the body's output.

    Raises:
        LensError: The forward fails at every size up to 2048 (the message names the child
            that fails, on what input, at which size), or the output has no channel dimension.

    Examples:
        >>> body = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU())
        >>> num_features(body)
        16
    """
    found = probe_features(body, n_in=n_in, size=size)
    if found.error is not None:
        raise LensError(_probe_failure(body, found, n_in)) from found.error
    if found.n_features is None:
        raise LensError(
            "`body` must return a tensor of shape (batch, channels, ...), got "
            f"{found.output_shape or found.output_type}."
        )
    return found.n_features


def default_cut(arch: Arch) -> int | None:
    """fastai's ``model_meta`` cut for an architecture, or ``None`` when fastai has none.

    Mirrors the ``cut`` entries of `fastai.vision.learner.model_meta`: ``-2`` for ResNets, VGGs
    with batch norm and AlexNet, ``-1`` for SqueezeNets and DenseNets, ``-4`` for fastai's
    xresnets. ``None`` means fastai's rule: cut before the last child with a pooling layer. As in
    fastai, a builder is looked up by identity (``arch_meta(arch).cut``): only the very functions
    fastai lists have a cut, so ``torchvision.models.quantization.resnet18`` gets ``None``.

    Args:
        arch: A builder function or a torchvision model name.

    Returns:
        The cut, or ``None``.

    Raises:
        LensError: A string that is not a torchvision model name.

    Examples:
        >>> default_cut("resnet34"), default_cut("densenet121"), default_cut("mobilenet_v3_small")
        (-2, -1, None)
    """
    return arch_meta(arch).cut


def _first_parameter_trains(module: nn.Module) -> bool:
    first_parameter = next(module.parameters(), None)
    return first_parameter is not None and first_parameter.requires_grad


def _init_head(module: nn.Module, init: Callable[[torch.Tensor], Any]) -> None:
    """Initialize every non-norm layer in ``module`` the way fastai's ``apply_init`` does."""
    # fastai's cond_init: skip norm layers and layers whose first parameter is frozen.
    if not isinstance(module, NORM_TYPES) and _first_parameter_trains(module):
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            init(weight)
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor):
            bias.data.fill_(0.0)
    for child in module.children():
        _init_head(child, init)


def _raised_in_torch_hub(error: BaseException) -> bool:
    """Whether ``error`` came from ``torch.hub`` (downloading or loading pretrained weights)."""
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.replace("\\", "/").endswith("/torch/hub.py"):
            return True
        frame = frame.tb_next
    return False


def _build(model: nn.Module | Arch, pretrained: bool, weights: Any) -> tuple[nn.Module, int | None]:
    """The built model and fastai's ``model_meta`` cut for it (see ``create_vision_model``)."""
    if isinstance(model, nn.Module):
        if weights is not None:
            raise LensError(
                f"`weights` goes with a builder, but `model` is an already built "
                f"{type(model).__name__}. Pass the builder (e.g. torchvision.models.resnet18) "
                "with `weights`, or load the weights into the model yourself."
            )
        return model, model_class_meta(model).cut
    if isinstance(model, str):
        model = torchvision_builder(model, "model")
    if isinstance(model, type) or not callable(model):
        raise LensError(
            f"`model` must be a built nn.Module, a builder function or a torchvision model name, "
            f"got {model!r}. Pass e.g. torchvision.models.resnet18, 'resnet18', or "
            "resnet18(weights=None)."
        )
    meta = builder_meta(model)
    # fastai's call: arch(weights=...) for the builders its model_meta gives weights, else
    # arch(pretrained=...). fastai ignores `weights` in the second case; we pass it on.
    if meta.weights is not None:
        kwargs = {"weights": meta.weights if weights is None and pretrained else weights}
    elif weights is not None:
        kwargs = {"weights": weights}
    else:
        kwargs = {"pretrained": pretrained}
    name = getattr(model, "__name__", repr(model))
    try:
        built = model(**kwargs)
    except TypeError as error:
        raise LensError(
            f"`model` {name!r} cannot be called as fastai calls a "
            f"builder, with {kwargs} ({error}). Build the model yourself and pass it built."
        ) from error
    except Exception as error:
        if kwargs.get("weights") is None and not kwargs.get("pretrained"):
            raise
        if not isinstance(error, OSError) and not _raised_in_torch_hub(error):
            raise
        called = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
        raise LensError(
            f"`model` {name!r} could not get its pretrained weights: fastai's call "
            f"{name}({called}) failed with {_first_line(error)}. `pretrained=True` is the "
            "default (as in fastai), and `weights=None` means 'not given', so the default "
            f"weights are downloaded on first use into {torch.hub.get_dir()}/checkpoints. For "
            f"random weights pass pretrained=False, or a model built without them, e.g. "
            f"create_vision_model({name}(weights=None), n_out). Offline, put the weights file "
            "in that folder first."
        ) from error
    if not isinstance(built, nn.Module):
        raise LensError(
            f"`model` is a builder that returned a {type(built).__name__}, not an nn.Module. "
            "Pass a function that builds a model, or the built model."
        )
    return built, meta.cut


def create_vision_model(
    model: nn.Module | Arch,
    n_out: int,
    cut: Cut = None,
    *,
    pretrained: bool = True,
    weights: Any = None,
    n_in: int = 3,
    init: Callable[[torch.Tensor], Any] | None = nn.init.kaiming_normal_,
    custom_head: nn.Module | None = None,
    concat_pool: bool = True,
    pool: bool = True,
    lin_ftrs: list[int] | None = None,
    ps: float | list[float] = 0.5,
    first_bn: bool = True,
    bn_final: bool = False,
    lin_first: bool = False,
    y_range: tuple[float, float] | None = None,
) -> nn.Sequential:
    """Put fastai's head on the body of a classifier: ``nn.Sequential(body, head)``.

    Given a builder, it loads (and on first use downloads) the pretrained weights, as fastai
    does: ``pretrained=True`` is the default and ``weights=None`` means "not given". For random
    weights pass ``pretrained=False``, or a model you built, e.g. ``resnet18(weights=None)``.

    Mirrors `fastai.vision.learner.create_vision_model` (and `fastai.vision.learner.add_head`).
    ``model`` is what fastai calls ``arch``, a builder such as ``torchvision.models.resnet18``, or
    its torchvision name, or a model you built yourself (e.g. ``resnet18(weights=None)``).

    A builder is called as fastai calls it: ``arch(weights="DEFAULT")`` when ``pretrained`` for
    the builders fastai's ``model_meta`` lists (``arch(weights=None)`` when not), else
    ``arch(pretrained=pretrained)``; a ``weights`` you pass is passed on instead (fastai ignores
    it for builders without an entry). When getting the weights fails (no network, a bad
    download), the `LensError` says so and what to pass instead.

    With ``cut=None`` the body is cut where fastai's ``model_meta`` cuts that architecture (the
    builder, looked up by identity as in fastai; a built model by its class), or else by
    fastai's pooling-layer rule. The head is ``create_head(num_features(body), n_out, ...)``, or
    ``custom_head``; then its non-norm layers get ``init`` on their weights and zero biases, as
    fastai's ``apply_init``. A model built from the same seed therefore gets exactly fastai's
    weights.

    The head must fit what the body returns on fastai's dummy input (`probe_features`), which
    fastai does not check: with ``pool=True`` it pools 2-d feature maps (``AdaptiveConcatPool2d``),
    so the body must return a 4-d (batch, channels, height, width) tensor; with ``pool=False``
    it starts with ``BatchNorm1d``/``Linear`` on (batch, features), a 2-d tensor. A transformer
    cut like a CNN (e.g. a timm ViT with ``cut=-1``, which returns (batch, tokens, dim)) is
    refused with what to do instead, rather than given a head of the wrong width.

    Args:
        model: A builder function, a torchvision model name, or a built classifier (its modules
            become the body; they are not copied).
        n_out: Number of outputs (classes).
        cut: Where to cut the body (see ``create_body``); ``None`` for fastai's choice.
        pretrained: With a builder: build it with its pretrained weights (fastai's default).
            Ignored for a built model.
        weights: With a builder: the torchvision weights to build it with (an enum member or
            its name, e.g. ``"IMAGENET1K_V1"``), instead of the default ones.
        n_in: Input channels; only 3 is supported for now.
        init: Initializer for the head's weights, or ``None`` to keep PyTorch's.
        custom_head: A head to use instead of ``create_head``'s.
        concat_pool: See ``create_head``.
        pool: See ``create_head``.
        lin_ftrs: See ``create_head``.
        ps: See ``create_head``.
        first_bn: See ``create_head``.
        bn_final: See ``create_head``.
        lin_first: See ``create_head``.
        y_range: See ``create_head``.

    Returns:
        ``nn.Sequential(body, head)``, ready for ``param_groups``.

    Raises:
        LensError: ``model`` is neither a module, nor a builder, nor a torchvision model name
            (or the builder fails to be called as fastai calls it, or its pretrained weights
            cannot be downloaded or loaded); ``weights`` comes with a built model; ``n_in`` is
            not 3; ``custom_head`` is not a module; the body fails on every dummy input, or
            returns a shape the head cannot take (see above); or a head argument is invalid.

    Examples:
        >>> model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        ...                       nn.Linear(8, 10))
        >>> vision_model = create_vision_model(model, n_out=2)
        >>> vision_model[0]
        Sequential(
          (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1))
        )
        >>> vision_model.eval()(torch.zeros(4, 3, 32, 32)).shape
        torch.Size([4, 2])
        >>> from torchvision.models import resnet18
        >>> len(create_vision_model(resnet18, n_out=2, pretrained=False)[0])  # fastai's cut: -2
        8
    """
    if n_in != 3:
        raise LensError(
            f"`n_in` must be 3 for now, got {n_in!r}. Replace the first convolution yourself, "
            "or use fastai's create_vision_model for other channel counts."
        )
    if custom_head is not None and not isinstance(custom_head, nn.Module):
        raise LensError(
            f"`custom_head` must be an nn.Module or None, got {type(custom_head).__name__}."
        )
    model, meta_cut = _build(model, pretrained, weights)
    body = create_body(model, meta_cut if cut is None else cut)
    if custom_head is None:
        # fastai measures nn.Sequential(*body.children()), starting at 32x32 pixels.
        children = list(body.children())
        measured = nn.Sequential(*children) if children else body
        nf = _head_features(measured, n_in, pool, concat_pool, model)
        head = create_head(
            nf,
            n_out,
            lin_ftrs=lin_ftrs,
            ps=ps,
            pool=pool,
            concat_pool=concat_pool,
            first_bn=first_bn,
            bn_final=bn_final,
            lin_first=lin_first,
            y_range=y_range,
        )
    else:
        head = custom_head
    vision_model = nn.Sequential(body, head)
    if init is not None:
        _init_head(vision_model[1], init)
    return vision_model


def _timm_name(model: nn.Module) -> str | None:
    if not type(model).__module__.startswith("timm."):
        return None
    config = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    name = config.get("architecture") if isinstance(config, dict) else None
    return name if isinstance(name, str) else None


def _timm_advice(model: nn.Module) -> str:
    """What fastai's timm path does, as a ``create_vision_model`` call (ends with a period)."""
    name = _timm_name(model) or "arch"
    return (
        f"do what fastai's timm path does (vision_learner(dls, {name!r}), through "
        f"create_timm_model and TimmBody): build timm.create_model({name!r}, num_classes=0), "
        "which pools itself, and pass it with cut=lambda m: m and "
        "custom_head=create_head(model.num_features, n_out, pool=False)."
    )


def _head_features(
    measured: nn.Module, n_in: int, pool: bool, concat_pool: bool, model: nn.Module
) -> int:
    """fastai's ``num_features_model(measured)``, checked against the head it is for."""
    found = probe_features(measured, n_in=n_in, size=(32, 32))
    if found.error is not None:
        message = _probe_failure(measured, found, n_in)
        if _timm_name(model) is not None:
            message += f" For this timm model, {_timm_advice(model)}"
        raise LensError(message) from found.error
    shape = found.output_shape
    wanted = 4 if pool else 2
    if shape is not None and len(shape) == wanted:
        return shape[1]
    got = f"a tensor of shape {shape}" if shape is not None else f"a {found.output_type}"
    probe = f"a 1x{n_in}x{found.size[0]}x{found.size[1]} dummy input"
    if pool:
        first = "AdaptiveConcatPool2d" if concat_pool else "AdaptiveAvgPool2d(1)"
        read = (
            f" (here it would read {shape[1]} as the channels)" if shape and len(shape) > 1 else ""
        )
        what = (
            f"`model`'s body returns {got} on {probe}, not feature maps (a 4-d tensor: batch, "
            f"channels, height, width): fastai's head (pool=True) starts with {first} and "
            f"Flatten, which pool feature maps{read}, so the model would fail at its first "
            "forward."
        )
        if shape is not None and len(shape) == 3:
            what += " A (batch, tokens, dim) output is a transformer's."
        keep = found.feature_map_children
        cut_advice = f" (the body's first {keep} children end on them)" if keep else ""
        advice = (
            f"Pass a `cut` that ends on feature maps{cut_advice}; or pool=False with a "
            f"`custom_head` that takes this shape; or, for a timm model, {_timm_advice(model)}"
        )
    else:
        what = (
            f"`model`'s body returns {got} on {probe}, but with pool=False fastai's head "
            "starts with BatchNorm1d and Linear on (batch, features): it takes a 2-d tensor."
        )
        advice = (
            "Pass pool=True to pool 4-d feature maps, a `cut` that ends on (batch, features), "
            "or a `custom_head` that takes this shape."
        )
    raise LensError(f"{what} {advice}")


def as_sequential(model: nn.Module) -> nn.Sequential:
    """A classifier's children as an ``nn.Sequential``, with ``nn.Flatten(1)`` before the last.

    This is how ResNets, VGGs, AlexNet and EfficientNets compute: children in order, flattening
    before the final classifier. The result shares the modules of ``model`` and keeps their
    names, so its ``state_dict()`` keys are those of ``model``. It checks itself: on a seeded
    2x3x64x64 probe (eval mode, no gradients, global random state untouched) it must compute
    exactly what ``model`` computes. The probe runs on the CPU, whose kernels are deterministic:
    a model on a GPU is probed as a CPU copy and itself stays where it is (on the ``meta``
    device, where there are no values, only the shapes are checked). (fastai needs no such
    conversion; this makes a torchvision model sliceable like fastai's bodies, e.g.
    ``as_sequential(model)[:6]``.)

    Args:
        model: A built classifier whose forward is its children in order with a flatten before
            the last one (torchvision's ResNets, ResNeXts, VGGs, AlexNet, EfficientNets).

    Returns:
        ``nn.Sequential(child_0, ..., flatten, last_child)``.

    Raises:
        LensError: ``model`` has no children, or its forward does more than its children in
            order (e.g. torchvision's DenseNet, MobileNet or SqueezeNet), so the sequential
            version fails on the probe or computes something else.

    Examples:
        >>> class Tiny(nn.Module):
        ...             def __init__(self):
        ...                 super().__init__()
        ...                 self.conv, self.pool = nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1)
        ...                 self.fc = nn.Linear(4, 2)
        ...             def forward(self, x):
        ...                 return self.fc(torch.flatten(self.pool(self.conv(x)), 1))
        >>> [name for name, _ in as_sequential(Tiny()).named_children()]
        ['conv', 'pool', 'flatten', 'fc']
    """
    named_children = list(model.named_children())
    if not named_children:
        raise LensError(
            f"`model` ({type(model).__name__}) has no children to put in a sequence. Pass a "
            "classifier built from submodules, e.g. torchvision's resnet18."
        )
    flatten_name = "flatten"
    while flatten_name in dict(named_children):
        flatten_name += "_"
    layers = OrderedDict(named_children[:-1])
    layers[flatten_name] = nn.Flatten(1)
    layers[named_children[-1][0]] = named_children[-1][1]
    sequential = nn.Sequential(layers)

    # Probe on the CPU, whose kernels are deterministic (a GPU's need not be, and torch.equal
    # would then fail on a model that fits). A model elsewhere is probed as a CPU copy, so the
    # model itself never moves; on the meta device there are only shapes to check.
    tensors = [*model.parameters(), *model.buffers()]
    devices = {tensor.device.type for tensor in tensors}
    if devices <= {"cpu"} or devices == {"meta"}:
        probed, probed_sequential = model, sequential
    else:
        probed = copy.deepcopy(model).cpu()
        probed_sequential = nn.Sequential(
            OrderedDict(
                (name, dict(probed.named_children()).get(name, layer))
                for name, layer in sequential.named_children()
            )
        )
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(2, 3, 64, 64, generator=generator)
    if tensors:
        probe = probe.to(dtype=tensors[0].dtype, device="meta" if devices == {"meta"} else "cpu")
    with eval_mode(probed), torch.no_grad():
        try:
            expected = probed(probe)
        except Exception as error:
            raise LensError(
                f"`model` ({type(model).__name__}) fails on a 2x3x64x64 probe itself "
                f"({error}). as_sequential needs a classifier of 3-channel images."
            ) from error
        try:
            actual = probed_sequential(probe)
        except Exception as error:
            raise LensError(
                f"`model` ({type(model).__name__}) does more in its forward than run its "
                f"children in order: the sequential version fails on a 2x3x64x64 probe "
                f"({error}). as_sequential only fits ResNet-like classifiers; use create_body "
                "to cut the model instead."
            ) from error
    same = (
        isinstance(actual, torch.Tensor)
        and isinstance(expected, torch.Tensor)
        and actual.shape == expected.shape
        and (expected.device.type == "meta" or torch.equal(actual, expected))
    )
    if not same:
        raise LensError(
            f"`model` ({type(model).__name__}) does more in its forward than run its children in "
            "order: the sequential version computes something else on a 2x3x64x64 probe. "
            "as_sequential only fits ResNet-like classifiers; use create_body to cut the model "
            "instead."
        )
    return sequential
