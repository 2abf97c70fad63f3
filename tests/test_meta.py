"""``transferlens.arch_meta`` against ``fastai.vision.learner.model_meta``: one table, looked up by
the builder's identity as fastai does, for every classification builder torchvision has."""

from __future__ import annotations

import pytest
import torch
import torchvision
from fastai.vision import learner as fastai_learner
from fastai.vision.models import xresnet
from torch import nn

import transferlens
from transferlens import ArchMeta, arch_meta, create_vision_model, default_cut, split_family
from transferlens._recipe.meta import MODEL_META, model_class_meta

TORCHVISION_NAMES = torchvision.models.list_models(module=torchvision.models)
QUANTIZATION_NAMES = torchvision.models.list_models(module=torchvision.models.quantization)
XRESNETS = [getattr(xresnet, f"xresnet{depth}") for depth in (18, 34, 50, 101, 152)]
#: Every builder a user may pass: torchvision's classification builders, the quantization
#: namespace's namesakes, and fastai's xresnets.
BUILDERS = (
    [torchvision.models.get_model_builder(name) for name in TORCHVISION_NAMES]
    + [
        getattr(torchvision.models.quantization, name.removeprefix("quantized_"))
        for name in QUANTIZATION_NAMES
    ]
    + XRESNETS
)


def fastai_meta(builder: object) -> dict:
    return fastai_learner.model_meta.get(builder, fastai_learner._default_meta)


def as_tuples(stats: object) -> object:
    return None if stats is None else tuple(tuple(values) for values in stats)  # type: ignore[attr-defined]


def test_the_table_has_fastais_entries_and_no_others() -> None:
    ours = set(MODEL_META)
    theirs = {
        (
            b.__module__.rsplit(".", 1)[0]
            if b.__module__.startswith("torchvision")
            else b.__module__,
            b.__name__,
        )
        for b in fastai_learner.model_meta
    }
    assert ours == theirs
    assert len(MODEL_META) == len(fastai_learner.model_meta) == 21


@pytest.mark.oracle
@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: f"{b.__module__}.{b.__name__}")
def test_arch_meta_is_fastais_model_meta(builder: object) -> None:
    expected = fastai_meta(builder)
    meta = arch_meta(builder)  # type: ignore[arg-type]
    assert isinstance(meta, ArchMeta)
    assert meta.cut == expected["cut"] == default_cut(builder)  # type: ignore[arg-type]
    assert meta.splitter == expected["split"].__name__
    assert meta.stats == as_tuples(expected.get("stats"))
    assert meta.weights == expected.get("weights")
    assert split_family(builder) == meta.family  # type: ignore[arg-type]


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_a_name_means_torchvisions_builder(name: str) -> None:
    assert arch_meta(name) == arch_meta(torchvision.models.get_model_builder(name))


def test_quantization_namesakes_get_the_default_as_in_fastai() -> None:
    quantized = torchvision.models.quantization.resnet18
    assert quantized.__name__ == "resnet18" and quantized is not torchvision.models.resnet18
    assert arch_meta(quantized) == arch_meta(torchvision.models.efficientnet_b0)
    assert arch_meta(quantized).family == "default" and arch_meta("resnet18").family == "resnet"


#: Builders whose models are of a class the table knows: a built model is cut by its class.
CLASS_BUILDERS = [
    name
    for name in TORCHVISION_NAMES
    if name.startswith(("resnet", "resnext", "wide_resnet", "squeezenet", "densenet", "vgg"))
    or name == "alexnet"
]


@pytest.mark.oracle
@pytest.mark.parametrize("name", CLASS_BUILDERS)
def test_a_built_model_is_cut_where_fastai_cuts_its_builder(name: str) -> None:
    # A built model carries no builder: its class decides. fastai's create_vision_model on the
    # builder must give the same model, for builders with an entry and without one.
    builder = torchvision.models.get_model_builder(name)
    with torch.device("meta"):
        built = builder(weights=None)
        theirs = fastai_learner.create_vision_model(builder, 3, pretrained=False)
        ours = create_vision_model(built, 3)
    assert model_class_meta(built).family != "default"
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_arch_meta_refuses_what_is_not_an_architecture() -> None:
    with pytest.raises(transferlens.LensError, match="`arch`"):
        arch_meta(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(transferlens.LensError, match="Did you mean 'resnet18'"):
        arch_meta("resnet1800")
