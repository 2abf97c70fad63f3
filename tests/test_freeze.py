"""``transferlens._freeze`` against a real fastai ``Learner``: same flags, parameter by parameter.

For each architecture, each valid ``n`` (negative ones included) and both values of ``train_bn``,
fastai's ``learn.freeze_to(n)`` sets the pattern; then every flag is inverted and our
``freeze_to`` must set exactly the same pattern again. Models live on the meta device: flags need
no weights.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import pytest
import torch
import torchvision
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.torch_core import norm_types
from fastai.vision import learner as fastai_learner
from fastai.vision.models import xresnet
from torch import nn

from transferlens import NORM_TYPES, LensError, freeze, freeze_to, is_norm, param_groups, unfreeze

#: Architectures and their number of parameter groups in fastai.
GROUP_COUNTS = {
    "resnet18": 3,
    "squeezenet1_0": 3,
    "densenet121": 3,
    "vgg11_bn": 3,
    "alexnet": 3,  # convolutions with biases, no norm layers in the body
    "xresnet18": 3,
    "vgg11": 2,  # convolutions with biases, fastai's default split
    "mobilenet_v3_small": 2,
    "efficientnet_b0": 2,
}
CASES = [
    (name, n, train_bn)
    for name, count in GROUP_COUNTS.items()
    for n in range(-count, count)
    for train_bn in (True, False)
]


def builder(name: str) -> Callable[..., nn.Module]:
    if name.startswith("xresnet"):
        return getattr(xresnet, name)
    return torchvision.models.get_model_builder(name)


@functools.cache
def fastai_learner_for(name: str, train_bn: bool) -> Learner:
    """A real fastai Learner (vision_learner) whose model lives on the meta device."""
    dls = DataLoaders.from_dsets([(torch.zeros(3, 8, 8), 0)], [(torch.zeros(3, 8, 8), 0)], bs=1)
    with torch.device("meta"):
        return fastai_learner.vision_learner(
            dls,
            builder(name),
            pretrained=False,
            n_out=3,
            loss_func=nn.CrossEntropyLoss(),
            train_bn=train_bn,
        )


def flags(model: nn.Module) -> list[bool]:
    return [p.requires_grad for p in model.parameters()]


def invert(model: nn.Module) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(not parameter.requires_grad)


@pytest.mark.oracle
@pytest.mark.parametrize(("name", "n", "train_bn"), CASES)
def test_freeze_to_matches_fastai_learner(name: str, n: int, train_bn: bool) -> None:
    learn = fastai_learner_for(name, train_bn)
    learn.freeze_to(n)
    expected = flags(learn.model)

    invert(learn.model)  # our freeze_to must set every flag, whatever it was
    groups = param_groups(learn.model, builder(name))
    assert len(groups) == GROUP_COUNTS[name]
    assert sum(map(len, groups)) == len(expected), "the groups cover the whole model"
    frozen_idx = freeze_to(learn.model, groups, n, train_bn=train_bn)

    assert flags(learn.model) == expected
    assert frozen_idx == learn.opt.frozen_idx


@pytest.mark.oracle
@pytest.mark.parametrize("train_bn", [True, False])
@pytest.mark.parametrize("name", list(GROUP_COUNTS))
def test_freeze_and_unfreeze_match_fastai_learner(name: str, train_bn: bool) -> None:
    learn = fastai_learner_for(name, train_bn)
    groups = param_groups(learn.model, builder(name))
    learn.freeze()
    expected = flags(learn.model)
    invert(learn.model)
    assert freeze(learn.model, groups, train_bn=train_bn) == len(groups) - 1
    assert flags(learn.model) == expected

    learn.unfreeze()
    expected = flags(learn.model)
    invert(learn.model)
    assert unfreeze(learn.model, groups) == 0
    assert flags(learn.model) == expected == [True] * len(expected)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_convolution_biases_freeze_even_with_train_bn(name: str) -> None:
    learn = fastai_learner_for(name, True)
    learn.freeze()
    body = learn.model[0]
    biases = [m.bias for m in body.modules() if isinstance(m, nn.Conv2d)]
    assert biases and not any(b.requires_grad for b in biases)  # fastai: frozen

    invert(learn.model)
    freeze(learn.model, param_groups(learn.model, builder(name)), train_bn=True)
    assert not any(b.requires_grad for b in biases)  # ours: frozen too
    assert not any(p.requires_grad for p in body.parameters())
    assert all(p.requires_grad for p in learn.model[1].parameters())


@pytest.mark.oracle
def test_norm_layers_keep_training_in_frozen_groups_with_train_bn() -> None:
    learn = fastai_learner_for("vgg11_bn", True)
    groups = param_groups(learn.model, builder("vgg11_bn"))
    freeze(learn.model, groups)
    body = learn.model[0]
    norm_parameters = {id(p) for m in body.modules() if is_norm(m) for p in m.parameters()}
    assert norm_parameters
    for parameter in body.parameters():
        assert parameter.requires_grad == (id(parameter) in norm_parameters)


@pytest.mark.oracle
def test_norm_types_are_fastais() -> None:
    assert NORM_TYPES == norm_types


@pytest.mark.oracle
@pytest.mark.parametrize(
    "module",
    [
        nn.BatchNorm1d(3),
        nn.BatchNorm2d(3),
        nn.BatchNorm3d(3),
        nn.InstanceNorm2d(3, affine=True),
        nn.LayerNorm(3),
        nn.GroupNorm(1, 3),
        nn.SyncBatchNorm(3),
        nn.LocalResponseNorm(2),
        nn.Conv2d(3, 3, 1),
        nn.Linear(3, 3),
        torchvision.ops.FrozenBatchNorm2d(3),
    ],
    ids=lambda module: type(module).__name__,
)
def test_is_norm_matches_fastai(module: nn.Module) -> None:
    assert is_norm(module) == isinstance(module, norm_types)


def test_parameters_outside_the_groups_are_left_alone() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2))
    groups = [list(model[0].parameters()), list(model[1].parameters())]
    model[2].weight.requires_grad_(False)
    freeze_to(model, groups, 1)
    assert flags(model) == [False, False, True, True, False, True]


def _tiny() -> tuple[nn.Module, list[list[nn.Parameter]]]:
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    return model, [list(model[:2].parameters()), list(model[2:].parameters())]


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda m, g: freeze_to(m, g, 2), "`n`"),
        (lambda m, g: freeze_to(m, g, -3), "`n`"),
        (lambda m, g: freeze_to(m, g, 1.0), "`n`"),
        (lambda m, g: freeze_to(m, g, True), "`n`"),
        (lambda m, g: freeze_to(m, [], 0), "`groups`"),
        (lambda m, g: freeze_to(m, list(m.parameters()), 0), "`groups"),
        (lambda m, g: freeze_to(m, [*g, [nn.Parameter(torch.zeros(1))]], 0), "`groups"),
        (lambda m, g: freeze(nn.Linear(2, 2), g), "`groups"),
    ],
    ids=[
        "n-too-big",
        "n-too-small",
        "n-float",
        "n-bool",
        "groups-empty",
        "groups-flat",
        "groups-foreign",
        "model-mismatch",
    ],
)
def test_bad_inputs_raise_lens_error(
    call: Callable[[nn.Module, list[list[nn.Parameter]]], object], argument: str
) -> None:
    model, groups = _tiny()
    with pytest.raises(LensError, match=argument) as caught:
        call(model, groups)
    assert isinstance(caught.value, ValueError)


def test_out_of_range_message_names_the_valid_range() -> None:
    model, groups = _tiny()
    with pytest.raises(LensError, match="between -2 and 1"):
        freeze_to(model, groups, 5)


# ---------------------------------------------------------------------------------------------
# The optimizer's state is cleared at every freeze_to, as Learner.freeze_to clears fastai's


def _train_one_step(learn_or_model: nn.Module, optimizer: object) -> None:
    learn_or_model(torch.randn(4, 3, 16, 16)).sum().backward()
    optimizer.step()  # type: ignore[attr-defined]
    optimizer.zero_grad()  # type: ignore[attr-defined]


@pytest.mark.oracle
@pytest.mark.parametrize("change", ["freeze", "unfreeze", "freeze_to_1"])
def test_freeze_clears_optimizer_state_as_fastai_does(change: str) -> None:
    """fastai's Learner.freeze_to ends with opt.clear_state(): moments and steps are gone."""
    torch.manual_seed(0)
    dls = DataLoaders.from_dsets([(torch.zeros(3, 16, 16), 0)], [(torch.zeros(3, 16, 16), 0)])
    learn = fastai_learner.vision_learner(
        dls, torchvision.models.resnet18, pretrained=False, n_out=3,
        loss_func=nn.CrossEntropyLoss(),
    )
    learn.create_opt()
    learn.unfreeze()
    _train_one_step(learn.model, learn.opt)
    head_weight = learn.model[1][-1].weight
    assert learn.opt.state[head_weight]["step"] == 1  # fastai has state before...
    fastai_call = {"freeze": learn.freeze, "unfreeze": learn.unfreeze,
                   "freeze_to_1": lambda: learn.freeze_to(1)}[change]
    fastai_call()
    kept = {key for p in learn.model.parameters() for key in learn.opt.state[p]}
    assert kept <= {"do_wd", "force_train"}  # ...and only its flags after

    model = learn.model
    groups = param_groups(model, torchvision.models.resnet18)
    unfreeze(model, groups)
    optimizer = torch.optim.Adam(model.parameters())
    _train_one_step(model, optimizer)
    assert optimizer.state[head_weight]["step"] == 1
    ours = {"freeze": lambda: freeze(model, groups, optimizer=optimizer),
            "unfreeze": lambda: unfreeze(model, groups, optimizer=optimizer),
            "freeze_to_1": lambda: freeze_to(model, groups, 1, optimizer=optimizer)}[change]
    ours()
    assert len(optimizer.state) == 0
    _train_one_step(model, optimizer)
    assert optimizer.state[head_weight]["step"] == 1  # restarts, as fastai's step_stat does


def test_freeze_without_optimizer_keeps_its_state() -> None:
    model, groups = _tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    assert len(optimizer.state) == 6
    freeze(model, groups)
    assert len(optimizer.state) == 6


def test_freeze_clears_a_fastai_optimizer_with_its_clear_state() -> None:
    model, groups = _tiny()
    from fastai.optimizer import Adam as FastaiAdam

    optimizer = FastaiAdam([list(g) for g in groups], lr=1e-3)
    model(torch.randn(4, 2)).sum().backward()
    optimizer.step()
    assert optimizer.state[model[2].weight]["step"] == 1
    unfreeze(model, groups, optimizer=optimizer)
    assert "step" not in optimizer.state[model[2].weight]


def test_freeze_refuses_what_is_not_an_optimizer() -> None:
    model, groups = _tiny()
    flags_before = flags(model)
    with pytest.raises(LensError, match="`optimizer`"):
        freeze(model, groups, optimizer=[p for g in groups for p in g])
    assert flags(model) == flags_before  # refused before changing anything
