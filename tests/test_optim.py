"""``transferlens.Adam`` and its param groups against fastai's ``Adam`` and ``Learner.create_opt``.

fastai's optimizer is the oracle: the same parameters, the same gradients and the same
hyper-parameters (changed between steps, as the 1cycle scheduler changes them) must give the same
bits, and the decay / no-decay split must be fastai's ``do_wd`` flags.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
import torch
from fastai.data.core import DataLoaders
from fastai.optimizer import Adam as FastaiAdam
from fastai.torch_core import norm_bias_params
from fastai.vision.learner import vision_learner
from torch import nn
from torchvision import models

from transferlens import (
    Adam,
    LensError,
    OneCycleScheduler,
    freeze_to,
    no_decay_parameters,
    optimizer_param_groups,
    param_groups,
)


def _weights(seed: int = 0) -> list[torch.Tensor]:
    torch.manual_seed(seed)
    return [torch.randn(50), torch.randn(7, 3), torch.randn(1)]


def _run_steps(
    optimizer: Any, params: list[torch.Tensor], hypers: list[tuple[float, float]], *, fastai: bool
) -> None:
    """Step with fresh gradients, setting (lr, mom) before each step as a scheduler does."""
    generator = torch.Generator().manual_seed(1)
    for lr, mom in hypers:
        if fastai:
            optimizer.set_hypers(lr=lr, mom=mom)
        else:
            for group in optimizer.param_groups:
                group["lr"], group["betas"] = lr, (mom, group["betas"][1])
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        optimizer.step()


HYPERS = [(1e-3, 0.95), (3e-3, 0.9), (1e-2, 0.85), (5e-3, 0.9), (1e-4, 0.95)] * 3


@pytest.mark.oracle
@pytest.mark.parametrize("wd", [0.0, 0.01, 0.1])
def test_adam_equals_fastai_adam_bit_for_bit(wd: float) -> None:
    ours_params = [w.clone().requires_grad_() for w in _weights()]
    theirs_params = [w.clone().requires_grad_() for w in _weights()]
    ours = Adam(ours_params, betas=(0.95, 0.99), weight_decay=wd)
    theirs = FastaiAdam(theirs_params, lr=1e-3, wd=wd)
    _run_steps(ours, ours_params, HYPERS, fastai=False)
    _run_steps(theirs, theirs_params, HYPERS, fastai=True)
    for mine, fastais, start in zip(ours_params, theirs_params, _weights(), strict=True):
        assert torch.equal(mine, fastais)
        assert not torch.equal(mine, start)
    for mine, fastais in zip(ours_params, theirs_params, strict=True):
        assert ours.state[mine]["step"] == theirs.state[fastais]["step"] == len(HYPERS)
        assert torch.equal(ours.state[mine]["grad_avg"], theirs.state[fastais]["grad_avg"])
        assert torch.equal(ours.state[mine]["sqr_avg"], theirs.state[fastais]["sqr_avg"])


@pytest.mark.oracle
def test_torch_adamw_is_not_bit_for_bit() -> None:
    """Why `Adam` exists: torch's AdamW, with fastai's settings, rounds differently."""
    ours_params = [w.clone().requires_grad_() for w in _weights()]
    torch_params = [w.clone().requires_grad_() for w in _weights()]
    ours = Adam(ours_params, betas=(0.95, 0.99), weight_decay=0.01)
    adamw = torch.optim.AdamW(torch_params, betas=(0.95, 0.99), eps=1e-5, weight_decay=0.01)
    _run_steps(ours, ours_params, HYPERS, fastai=False)
    _run_steps(adamw, torch_params, HYPERS, fastai=False)
    assert not all(torch.equal(a, b) for a, b in zip(ours_params, torch_params, strict=True))
    for a, b in zip(ours_params, torch_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.oracle
def test_clearing_state_restarts_like_fastai() -> None:
    """After freeze_to(..., optimizer=...), steps restart from step 1, as after clear_state()."""
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    groups = [list(model[0].parameters()), list(model[1].parameters())]
    ours = Adam(optimizer_param_groups(model, groups, wd=0.0))
    fastai_params = [p.detach().clone().requires_grad_() for p in model.parameters()]
    theirs = FastaiAdam(fastai_params, lr=1e-3, wd=0.0)
    ours_params = list(model.parameters())
    _run_steps(ours, ours_params, HYPERS[:3], fastai=False)
    _run_steps(theirs, fastai_params, HYPERS[:3], fastai=True)
    freeze_to(model, groups, 0, optimizer=ours)
    theirs.clear_state()
    assert len(ours.state) == 0
    _run_steps(ours, ours_params, HYPERS[3:6], fastai=False)
    _run_steps(theirs, fastai_params, HYPERS[3:6], fastai=True)
    assert all(torch.equal(a, b) for a, b in zip(ours_params, fastai_params, strict=True))
    assert all(ours.state[p]["step"] == 3 for p in ours_params)


def test_adam_state_dict_loads_with_weights_only() -> None:
    params = [w.clone().requires_grad_() for w in _weights()]
    optimizer = Adam(params)
    _run_steps(optimizer, params, HYPERS[:2], fastai=False)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    buffer.seek(0)
    restored = Adam([w.clone().requires_grad_() for w in _weights()])
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert restored.state_dict()["state"][0]["step"] == 2


# ---------------------------------------------------------------------------------------------
# The decay / no-decay split is fastai's do_wd


def _vision_learner(builder: Any) -> Any:
    dls = DataLoaders.from_dsets([(torch.zeros(3, 8, 8), 0)], [(torch.zeros(3, 8, 8), 0)], bs=1)
    with torch.device("meta"):
        learn = vision_learner(
            dls, builder, pretrained=False, n_out=3, loss_func=nn.CrossEntropyLoss()
        )
    learn.create_opt()
    return learn


@pytest.mark.oracle
@pytest.mark.parametrize(
    "arch", ["resnet18", "mobilenet_v3_small", "alexnet", "squeezenet1_0", "convnext_tiny"]
)
def test_param_groups_split_as_fastai_marks_do_wd(arch: str) -> None:
    learn = _vision_learner(models.get_model_builder(arch))
    model = learn.model
    assert [id(p) for p in no_decay_parameters(model)] == [
        id(p) for p in norm_bias_params(model, True)
    ]
    assert [id(p) for p in no_decay_parameters(model, with_bias=False)] == [
        id(p) for p in norm_bias_params(model, False)
    ]
    groups = param_groups(model, arch)
    built = optimizer_param_groups(model, groups, wd=0.01)
    for group in built:
        for p in group["params"]:
            fastai_decays = learn.opt.state[p].get("do_wd", True)
            assert fastai_decays == (group["weight_decay"] == 0.01)
            assert any(p is q for q in learn.opt.param_lists[group["group_index"]])
    assert sum(len(g["params"]) for g in built) == len(list(model.parameters()))
    assert sorted({g["group_index"] for g in built}) == list(range(len(groups)))


def test_wd_bn_bias_decays_everything() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    groups = [list(model[:2].parameters()), list(model[2].parameters())]
    built = optimizer_param_groups(model, groups, wd=0.1, wd_bn_bias=True)
    assert [(len(g["params"]), g["weight_decay"], g["group_index"]) for g in built] == [
        (4, 0.1, 0),
        (2, 0.1, 1),
    ]


def test_scheduler_sets_both_parts_of_a_split_group() -> None:
    from transferlens import one_cycle

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    groups = [list(model[:2].parameters()), list(model[2].parameters())]
    optimizer = Adam(optimizer_param_groups(model, groups))
    plan = one_cycle(3, slice(1e-4, 1e-2), n_groups=2)
    OneCycleScheduler(optimizer, plan)
    lrs = {(g["group_index"], g["weight_decay"]): g["lr"] for g in optimizer.param_groups}
    assert lrs == {
        (0, 0.01): plan.lr[0, 0].item(),
        (0, 0.0): plan.lr[0, 0].item(),
        (1, 0.01): plan.lr[0, 1].item(),
        (1, 0.0): plan.lr[0, 1].item(),
    }
    assert {g["betas"][0] for g in optimizer.param_groups} == {plan.mom[0].item()}


# ---------------------------------------------------------------------------------------------
# Bad inputs


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"lr": -1.0}, "lr"),
        ({"betas": (0.9,)}, "betas"),
        ({"betas": (1.0, 0.99)}, "betas"),
        ({"eps": 0.0}, "eps"),
        ({"weight_decay": -0.01}, "weight_decay"),
    ],
)
def test_adam_refuses(kwargs: dict[str, Any], argument: str) -> None:
    with pytest.raises(LensError, match=f"`{argument}`"):
        Adam([nn.Parameter(torch.zeros(2))], **kwargs)


def test_adam_refuses_a_bad_param_group() -> None:
    with pytest.raises(LensError, match=r"param group 1: `lr`"):
        Adam([{"params": [nn.Parameter(torch.zeros(2))]},
              {"params": [nn.Parameter(torch.zeros(2))], "lr": "fast"}])


def test_adam_refuses_a_closure() -> None:
    with pytest.raises(LensError, match="`closure`"):
        Adam([nn.Parameter(torch.zeros(2))]).step(lambda: 0.0)


def test_optimizer_param_groups_refuses() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    groups = [list(model[0].parameters()), list(model[1].parameters())]
    with pytest.raises(LensError, match="`wd`"):
        optimizer_param_groups(model, groups, wd=-1.0)
    with pytest.raises(LensError, match=r"`groups\[1\]` is empty"):
        optimizer_param_groups(model, [list(model.parameters()), []])
    with pytest.raises(LensError, match="`groups"):
        optimizer_param_groups(model, [[nn.Parameter(torch.zeros(1))]])
