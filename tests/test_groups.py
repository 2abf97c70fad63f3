"""``param_groups`` against fastai: the same parameter groups, in the same order.

For every architecture in fastai's ``model_meta`` (and a dozen it has no meta for) fastai's
``vision_learner`` builds the model on the meta device, and ``param_groups`` must return exactly the
parameter objects of ``learn.splitter(learn.model)``, group by group, whether the architecture is
given as the builder function or as its name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torchvision
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.vision import learner as fastai_learner
from fastai.vision.models import xresnet
from torch import nn

from transferlens import (
    LensError,
    arch_name,
    create_vision_model,
    known_architectures,
    param_groups,
    resolve_arch,
    split_family,
)

#: Every torchvision builder in fastai's model_meta.
META_ARCHS = sorted(
    builder.__name__
    for builder in fastai_learner.model_meta
    if builder.__module__.startswith("torchvision.models")
)
#: torchvision architectures fastai has no meta for: its default split (body, head).
DEFAULT_ARCHS = [
    "resnext50_32x4d",
    "resnext101_32x8d",
    "resnext101_64x4d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "convnext_tiny",
]
XRESNET_ARCHS = ["xresnet18", "xresnet34", "xresnet50", "xresnet101", "xresnet152"]


def builder(name: str) -> Callable[..., nn.Module]:
    if name.startswith("xresnet"):
        return getattr(xresnet, name)
    return torchvision.models.get_model_builder(name)


@functools.cache
def fastai_vision_learner(name: str) -> Learner:
    """fastai's own learner for ``name``, its model on the meta device (no weights, no time)."""
    dls = DataLoaders.from_dsets([(torch.zeros(3, 8, 8), 0)], [(torch.zeros(3, 8, 8), 0)], bs=1)
    with torch.device("meta"):
        return fastai_learner.vision_learner(
            dls, builder(name), pretrained=False, n_out=3, loss_func=nn.CrossEntropyLoss()
        )


def ids(groups: list[list[nn.Parameter]]) -> list[list[int]]:
    return [[id(p) for p in group] for group in groups]


def test_meta_archs_are_the_sixteen_fastai_lists() -> None:
    assert len(META_ARCHS) == 16
    assert "resnext50_32x4d" not in META_ARCHS and "vgg11" not in META_ARCHS


@pytest.mark.oracle
@pytest.mark.parametrize("form", ["builder", "name"])
@pytest.mark.parametrize("name", META_ARCHS + DEFAULT_ARCHS)
def test_param_groups_match_fastai_splitter(name: str, form: str) -> None:
    learn = fastai_vision_learner(name)
    arch = builder(name) if form == "builder" else name
    expected = ids(learn.splitter(learn.model))
    assert len(expected) == (3 if name in META_ARCHS else 2)
    assert ids(param_groups(learn.model, arch)) == expected


@pytest.mark.oracle
@pytest.mark.parametrize("name", XRESNET_ARCHS)
def test_param_groups_match_fastai_for_fastai_xresnets(name: str) -> None:
    learn = fastai_vision_learner(name)
    assert split_family(builder(name)) == "xresnet"
    assert ids(param_groups(learn.model, builder(name))) == ids(learn.splitter(learn.model))


@pytest.mark.oracle
@pytest.mark.parametrize(
    "name", ["resnet34", "squeezenet1_1", "densenet169", "vgg13_bn", "alexnet", "vgg13"]
)
def test_param_groups_of_our_model_have_fastais_shapes(name: str) -> None:
    # Our own create_vision_model output, split by us, against fastai's model split by fastai.
    learn = fastai_vision_learner(name)
    with torch.device("meta"):
        ours = create_vision_model(builder(name)(weights=None), n_out=3)
    our_shapes = [[p.shape for p in group] for group in param_groups(ours, name)]
    assert our_shapes == [[p.shape for p in group] for group in learn.splitter(learn.model)]


@pytest.mark.oracle
def test_split_family_is_fastais_choice_for_every_torchvision_model() -> None:
    in_meta = {name for name in known_architectures() if builder(name) in fastai_learner.model_meta}
    assert in_meta == set(META_ARCHS)
    for name in known_architectures():
        assert (split_family(name) != "default") == (name in in_meta), name
        assert split_family(builder(name)) == split_family(name), name


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("resnet152", "resnet"),
        ("squeezenet1_1", "squeezenet"),
        ("densenet201", "densenet"),
        ("vgg19_bn", "vgg"),
        ("alexnet", "alexnet"),
        ("vgg19", "default"),
        ("resnext101_64x4d", "default"),
        ("wide_resnet101_2", "default"),
        ("vit_b_16", "default"),
    ],
)
def test_split_family_names(name: str, family: str) -> None:
    assert split_family(name) == family


def test_a_builder_from_elsewhere_gets_the_default_split_as_in_fastai() -> None:
    def resnet18(**kwargs: object) -> nn.Module:  # same name, not torchvision's
        return torchvision.models.resnet18(**kwargs)

    assert split_family(resnet18) == "default"
    assert fastai_learner.model_meta.get(resnet18) is None


def test_arch_name_and_resolve_arch() -> None:
    assert arch_name(torchvision.models.resnet18) == "resnet18"
    assert arch_name("densenet121") == "densenet121"
    assert resolve_arch(torchvision.models.vgg11_bn) == "vgg11_bn"
    assert resolve_arch("resnet50") == "resnet50"


def test_known_architectures_is_torchvisions_classification_list() -> None:
    names = known_architectures()
    assert names == sorted(torchvision.models.list_models(module=torchvision.models))
    assert "resnet18" in names and "maskrcnn_resnet50_fpn" not in names


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(LensError, match=r"`arch`.*Did you mean 'resnet18'") as caught:
        resolve_arch("resnet1800")
    assert isinstance(caught.value, ValueError)
    with pytest.raises(LensError, match=r"`arch`.*as functions"):
        split_family("xresnet50")


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: param_groups(nn.Linear(2, 2), "resnet18"), "`model`"),
        (lambda: param_groups(nn.Sequential(nn.Linear(2, 2)), "resnet18"), "`model`"),
        (
            lambda: param_groups(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "resnet18"),
            "`model`",
        ),
        (
            lambda: param_groups(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "densenet121"),
            "`model`",
        ),
        (
            lambda: param_groups(nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2)), "resnt18"),
            "`arch`",
        ),
        (lambda: arch_name(nn.Linear(2, 2)), "`arch`"),
        (lambda: arch_name(functools.partial(torchvision.models.resnet18)), "`arch`"),
    ],
    ids=[
        "not-sequential",
        "one-module",
        "body-not-sliceable",
        "no-features",
        "typo",
        "module",
        "partial",
    ],
)
def test_bad_inputs_raise_lens_error(call: Callable[[], object], argument: str) -> None:
    with pytest.raises(LensError, match=argument) as caught:
        call()
    assert isinstance(caught.value, ValueError)


# ---------------------------------------------------------------------------------------------
# A model that does not fit `arch` is refused, never split silently.


@functools.cache
def efficientnet_model() -> nn.Sequential:
    with torch.device("meta"):
        return create_vision_model(torchvision.models.efficientnet_b0, 3, pretrained=False)


@pytest.mark.parametrize(
    "arch", ["resnet18", "densenet121", "vgg16_bn", "alexnet", "squeezenet1_0", "xresnet50"]
)
def test_param_groups_refuses_a_model_that_does_not_fit_arch(arch: str) -> None:
    # The cheat sheet with only the builder changed: fastai's resnet split of an EfficientNet
    # gives groups of 211, 0 and 6 tensors.
    arch_or_builder = builder(arch) if arch.startswith("xresnet") else arch
    with pytest.raises(LensError, match=r"`model` does not fit `arch`.*Pass as `arch` the builder"):
        param_groups(efficientnet_model(), arch_or_builder)


@pytest.mark.oracle
def test_param_groups_of_the_matching_arch_is_fastais_default_split() -> None:
    learn = fastai_vision_learner("efficientnet_b0")
    theirs = [[p.shape for p in group] for group in learn.splitter(learn.model)]
    ours = param_groups(efficientnet_model(), torchvision.models.efficientnet_b0)
    assert [[p.shape for p in group] for group in ours] == theirs
    assert all(ours) and len(ours) == 2


@pytest.mark.parametrize(
    ("head", "arch"), [(nn.Identity(), "resnet18"), (nn.Flatten(), "efficientnet_b0")]
)
def test_param_groups_refuses_an_empty_group(head: nn.Module, arch: str) -> None:
    with torch.device("meta"):
        body = create_vision_model(builder(arch)(weights=None), 3)[0]
    with pytest.raises(LensError, match=r"empty parameter group \(group \d of \d\)"):
        param_groups(nn.Sequential(body, head), arch)


def test_a_resnet_model_fits_every_resnet_depth() -> None:
    # fastai's _resnet_split is the same for every depth: a resnet18 model split as resnet50.
    with torch.device("meta"):
        model = create_vision_model(torchvision.models.resnet18, 3, pretrained=False)
    assert [len(g) for g in param_groups(model, "resnet50")] == [
        len(g) for g in param_groups(model, "resnet18")
    ]
