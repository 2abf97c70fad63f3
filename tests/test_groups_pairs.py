"""A model built for one architecture, split as another: fastai's split of it, or a refusal.

For every model fastai builds (each torchvision classification builder but the 13 where fastai
fails, and fastai's five xresnets) and every architecture name B among one or more of each
fastai split family (and default-split ones), ``param_groups(model, B)`` must either return
exactly ``model_meta.get(B, _default_meta)['split'](model)`` (the same parameter objects, group
by group) or refuse with a `LensError` that says what to pass. It must accept exactly the models
that fit B: B's own family (a ResNeXt or wide ResNet fits ``resnet18``: same class, same
layers), or any model when B splits as body and head; and a refusal names the architecture the
model looks like.

Every model is built once for the module, on the meta device (structure, no numbers), with
PyTorch's initializers made no-ops while building: the values do not exist on meta anyway, and
the initializers' meta kernels are most of the build time.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torchvision
from fastai.vision import learner as fastai_learner
from fastai.vision.models import xresnet
from torch import nn

from transferlens import LensError, create_vision_model, param_groups
from transferlens._recipe.meta import SPLIT_LAYOUTS
from transferlens.inspector._meta_device import build_for_structure

TORCHVISION_NAMES = sorted(torchvision.models.list_models(module=torchvision.models))
#: Where fastai's create_vision_model fails (tests/test_sweep.py checks each against fastai).
FASTAI_FAILS = ("vit_", "mnasnet", "mobilenet_v2", "googlenet", "inception_v3", "maxvit_t")
XRESNETS = [f"xresnet{depth}" for depth in (18, 34, 50, 101, 152)]
#: The models: every one fastai builds.
A_NAMES = [name for name in TORCHVISION_NAMES if not name.startswith(FASTAI_FAILS)] + XRESNETS
#: The architectures to split them as: every split family, and default-split ones.
B_NAMES = [
    "resnet18",
    "resnet50",
    "squeezenet1_0",
    "squeezenet1_1",
    "densenet121",
    "densenet201",
    "vgg11_bn",
    "vgg16_bn",
    "alexnet",
    "xresnet50",
    "efficientnet_b0",
    "mobilenet_v3_small",
    "convnext_tiny",
    "vgg11",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "regnet_x_400mf",
]
#: torchvision's ResNet class: fastai's _resnet_split fits all of them.
RESNET_CLASS = {name for name in A_NAMES if name.startswith(("resnet", "resnext", "wide_resnet"))}


def builder(name: str) -> Callable[..., nn.Module]:
    if name.startswith("xresnet"):
        return getattr(xresnet, name)
    return torchvision.models.get_model_builder(name)


def fastai_splitter(name: str) -> Callable[[nn.Module], Any]:
    return fastai_learner.model_meta.get(builder(name), fastai_learner._default_meta)["split"]


def ids(groups: Any) -> list[list[int]]:
    return [[id(p) for p in group] for group in groups]


def _keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


@contextlib.contextmanager
def _no_initializers() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in dir(nn.init):
            if name.endswith("_") and not name.startswith("_"):
                patch.setattr(nn.init, name, _keep)
        yield


@pytest.fixture(scope="module")
def models() -> dict[str, nn.Module]:
    """``create_vision_model(builder, n_out=2, pretrained=False)`` for every A, on meta."""
    built = {}
    with _no_initializers():
        for name in A_NAMES:
            made = build_for_structure(
                create_vision_model, model=builder(name), n_out=2, pretrained=False, init=None
            )
            assert made.device == "meta", (name, made.note)
            built[name] = made.model
    return built


def test_the_models_are_every_builder_fastai_builds() -> None:
    failing = [name for name in TORCHVISION_NAMES if name.startswith(FASTAI_FAILS)]
    assert len(failing) == 13
    assert len(A_NAMES) == len(TORCHVISION_NAMES) - 13 + 5


def fits(a_name: str, b_name: str) -> bool:
    """The rule: B splits as body and head, or the model is of B's family."""
    b_split = fastai_splitter(b_name)
    if b_split is fastai_learner.default_split:
        return True
    if b_split is fastai_learner._resnet_split and a_name in RESNET_CLASS:
        return True
    return fastai_splitter(a_name) is b_split


@pytest.mark.oracle
@pytest.mark.parametrize("b_name", B_NAMES)
def test_param_groups_is_fastais_split_or_a_refusal(
    models: dict[str, nn.Module], b_name: str
) -> None:
    arch = builder(b_name) if b_name.startswith("xresnet") else b_name
    looks_like = {name for layouts in SPLIT_LAYOUTS.values() for name in layouts}
    wrong = []
    for a_name, model in models.items():
        try:
            groups = param_groups(model, arch)
        except LensError as error:
            message = str(error)
            if fits(a_name, b_name):
                wrong.append(f"{a_name}: refused, but it fits: {message}")
            elif f"`arch` {b_name!r}" not in message or "Pass as `arch` the builder" not in message:
                wrong.append(f"{a_name}: the refusal does not say what to pass: {message}")
            elif a_name in looks_like and f" {a_name}" not in message.split("it looks like")[-1]:
                wrong.append(f"{a_name}: the refusal does not say what it looks like: {message}")
            continue
        if not fits(a_name, b_name):
            wrong.append(f"{a_name}: accepted, but it does not fit {b_name}")
        if ids(groups) != ids(fastai_splitter(b_name)(model)):
            wrong.append(f"{a_name}: accepted, but the groups are not fastai's")
        if not all(groups):
            wrong.append(f"{a_name}: an empty group")
    assert wrong == []


def test_the_pairs_cover_every_family(models: dict[str, nn.Module]) -> None:
    families = {fastai_splitter(name).__name__ for name in B_NAMES}
    assert families == {
        "_resnet_split",
        "_squeezenet_split",
        "_densenet_split",
        "_vgg_split",
        "_alexnet_split",
        "_xresnet_split",
        "default_split",
    }
    assert len(models) * len(B_NAMES) >= 1200


@pytest.mark.parametrize(
    ("family", "name"),
    [(family, name) for family, layouts in SPLIT_LAYOUTS.items() for name in layouts],
)
def test_each_layout_is_the_layers_fastai_splits(
    models: dict[str, nn.Module], family: str, name: str
) -> None:
    # The body for ResNets and xresnets (their splitters slice model[0]), else its features.
    body = models[name][0]
    sliced = body if family in ("resnet", "xresnet") else body[0]
    assert tuple(type(layer).__name__ for layer in sliced.children()) == SPLIT_LAYOUTS[family][name]


def test_a_vgg_without_batch_norm_is_not_split_as_alexnet(models: dict[str, nn.Module]) -> None:
    # fastai's _alexnet_split cuts vgg11's features at 6 too (the first six layers are alike),
    # but vgg11 is a default-split architecture: fastai splits it as body and head.
    assert [len(group) for group in fastai_learner._alexnet_split(models["vgg11"])] == [4, 12, 6]
    with pytest.raises(LensError, match=r"MaxPool2d as layer 10, where alexnet has a Conv2d") as e:
        param_groups(models["vgg11"], "alexnet")
    assert "it looks like torchvision's vgg11)" in str(e.value)
    assert [len(group) for group in param_groups(models["vgg11"], "vgg11")] == [16, 6]


@functools.cache
def resnet18_on_meta() -> nn.Module:
    with torch.device("meta"):
        return torchvision.models.resnet18(weights=None)


@pytest.mark.oracle
@pytest.mark.parametrize("cut", [-3, -1, 7, 9])
def test_a_later_or_earlier_cut_of_the_family_still_fits(cut: int) -> None:
    with torch.device("meta"):
        model = create_vision_model(resnet18_on_meta(), 2, cut=cut)
    groups = param_groups(model, "resnet50")
    assert ids(groups) == ids(fastai_learner._resnet_split(model))
    assert all(groups)


@pytest.mark.parametrize("cut", [3, 5, 6])
def test_a_cut_before_the_split_point_is_refused(cut: int) -> None:
    with torch.device("meta"):
        body = nn.Sequential(*list(resnet18_on_meta().children())[:cut])
        model = nn.Sequential(body, nn.Linear(2, 2))
    with pytest.raises(LensError, match=rf"of only {cut} layers .*second group would hold nothing"):
        param_groups(model, "resnet18")


def test_a_model_fastai_cannot_build_cut_by_hand_is_refused_by_every_family() -> None:
    with torch.device("meta"):
        model = create_vision_model(torchvision.models.mobilenet_v2(weights=None), 2, cut=-1)
    for name in ["resnet18", "squeezenet1_0", "densenet121", "vgg11_bn", "alexnet"]:
        with pytest.raises(LensError, match=r"e\.g\. torchvision\.models\.efficientnet_b0"):
            param_groups(model, name)
    assert [len(group) for group in param_groups(model, "mobilenet_v2")] == [156, 6]
