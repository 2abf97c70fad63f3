"""The cheat sheet's recipe cell against fastai, for one architecture of every fastai family.

The recipe in ``docs/cheat-sheet.ipynb`` (the code cell right after the heading "## The whole
recipe, to copy") is written to be copied into a project that never imports fastai; one line,
marked ``# <- your architecture``, picks the architecture. The oracle is fastai itself:
``create_vision_model(arch, n_out, pretrained=False)`` for the model, and the splitter fastai's
``model_meta`` gives that builder (``_default_meta``'s ``default_split`` for a builder it does
not list) for the groups, as ``vision_learner`` picks them.

The tests change the cell's source by two rules, and nothing else:

1. on the marked line, the builder ``models.resnet18`` becomes ``models.<arch>``;
2. ``weights="DEFAULT"`` becomes ``weights=None``: nothing can be downloaded here, and fastai's
   ``pretrained=False`` builds random weights the same way (``arch(weights=None)``, or
   ``arch(pretrained=False)`` for the builders ``model_meta`` does not list).

The model tests execute the cell up to its data comment (the line starting ``# Your data``) in
a fresh namespace, so they build and compare and never train. One test runs the whole cell in a
new Python process (``python -c``), training on its own random stand-in data, with a short report
appended after it. Another runs the page's ``transferlens`` cell (after the heading "## The same
in a few lines with transferlens") the same way, unchanged, with a random stand-in for resnet18's
weights in its ``TORCH_HOME``.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.torch_core import norm_bias_params
from fastai.vision import learner as fastai_learner
from torch import nn

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cheat-sheet.ipynb"
HEADING = "## The whole recipe, to copy"
LENS_HEADING = "## The same in a few lines with transferlens"
MARKER = "# <- your architecture"
DATA_COMMENT = "# Your data"
N_CLASSES = 37  # the cell's n_classes
#: One builder per fastai family: its five model_meta splitters, then default_split.
ARCHS = [
    "resnet18",
    "densenet121",
    "vgg11_bn",
    "squeezenet1_0",
    "alexnet",
    "efficientnet_b0",
    "convnext_tiny",
    "mobilenet_v3_small",
]
#: The recipe's layers that stand for fastai's (same computation, plain torch classes).
SAME_KIND = {"ConcatPool": "AdaptiveConcatPool2d"}


def code_after(heading: str) -> str:
    """The source of the code cell right after the markdown cell with ``heading``."""
    cells = json.loads(PAGE.read_text())["cells"]
    (index,) = [i for i, cell in enumerate(cells) if heading in "".join(cell["source"])]
    cell = cells[index + 1]
    assert cell["cell_type"] == "code", f"the cell after {heading!r} must be code"
    return "".join(cell["source"])


@functools.cache
def recipe_source() -> str:
    return code_after(HEADING)


def recipe_for(arch: str, *, whole: bool = False) -> str:
    """The recipe cell for ``arch`` by the two rules of the module docstring."""
    lines = recipe_source().split("\n")
    (marked,) = [i for i, line in enumerate(lines) if MARKER in line]
    assert re.match(rf"arch = models\.resnet18  {re.escape(MARKER)}", lines[marked])
    lines[marked] = lines[marked].replace("models.resnet18", f"models.{arch}", 1)
    source = "\n".join(lines)
    assert source.count('weights="DEFAULT"') == 1
    source = source.replace('weights="DEFAULT"', "weights=None")
    if whole:
        return source
    (data,) = [i for i, line in enumerate(lines) if line.startswith(DATA_COMMENT)]
    return "\n".join(source.split("\n")[:data])


@functools.cache
def recipe_namespace(arch: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "recipe"}
    exec(compile(recipe_for(arch), f"<cheat sheet recipe, {arch}>", "exec"), namespace)
    return namespace


@functools.cache
def fastai_model(arch: str) -> nn.Sequential:
    torch.manual_seed(0)  # the cell's seed, set at the same point: before the builder
    return fastai_learner.create_vision_model(builder(arch), N_CLASSES, pretrained=False)


def builder(arch: str) -> Any:
    return getattr(torchvision.models, arch)


def fastai_splitter(arch: str) -> Any:
    return fastai_learner.model_meta.get(builder(arch), fastai_learner._default_meta)["split"]


def names_by_group(model: nn.Module, groups: list[list[nn.Parameter]]) -> list[list[str]]:
    name = {id(p): key for key, p in model.named_parameters()}
    return [[name[id(p)] for p in group] for group in groups]


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ARCHS)
def test_recipe_builds_fastais_model_with_fastais_weights(arch: str) -> None:
    ours, theirs = recipe_namespace(arch)["model"], fastai_model(arch)
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert [(k, v.shape) for k, v in ours_state.items()] == [
        (k, v.shape) for k, v in theirs_state.items()
    ]
    # From the same seed: the builder's weights, fastai's random dummy batch for the channel
    # count (at the sizes fastai tries: alexnet's body needs the second one), then the head.
    assert [k for k in theirs_state if not torch.equal(ours_state[k], theirs_state[k])] == []
    kinds = [SAME_KIND.get(type(m).__name__, type(m).__name__) for m in ours[1]]
    assert kinds == [type(m).__name__ for m in theirs[1]]
    # fastai's dummy_eval leaves every layer of the body in eval mode (not its container).
    assert [m.training for key, m in ours[0].named_modules() if key] == [
        m.training for key, m in theirs[0].named_modules() if key
    ]


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ARCHS)
def test_recipe_splits_as_fastais_model_meta(arch: str) -> None:
    namespace = recipe_namespace(arch)
    ours = [list(group.parameters()) for group in namespace["groups"]]
    theirs = fastai_splitter(arch)(fastai_model(arch))
    assert all(ours) and len(ours) == (3 if builder(arch) in fastai_learner.model_meta else 2)
    assert names_by_group(namespace["model"], ours) == names_by_group(fastai_model(arch), theirs)


@pytest.mark.oracle
@pytest.mark.parametrize("arch", ARCHS)
def test_recipe_freezes_decays_and_spreads_rates_as_fastai(arch: str) -> None:
    namespace = recipe_namespace(arch)
    model, theirs = namespace["model"], fastai_model(arch)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(2, 3, 8, 8), torch.zeros(2).long())
    )
    learn = Learner(
        DataLoaders(loader, loader, device="cpu"),
        theirs,
        loss_func=nn.CrossEntropyLoss(),
        splitter=fastai_splitter(arch),
    )
    # Built, the recipe's model is frozen as vision_learner leaves a pretrained one (the only
    # test that changes requires_grad, and only after this check).
    learn.freeze()
    assert [p.requires_grad for p in model.parameters()] == [
        p.requires_grad for p in theirs.parameters()
    ]
    assert not all(p.requires_grad for p in model.parameters())
    for n in (0, -1, 0, len(namespace["groups"]) - 1, 0):  # -1: learn.freeze()
        namespace["freeze_to"](n)
        learn.freeze_to(n)
        assert [p.requires_grad for p in model.parameters()] == [
            p.requires_grad for p in theirs.parameters()
        ]
    # fastai's wd_bn_bias=False: do_wd off for norm_bias_params; the recipe's zero-decay groups.
    name = {id(p): key for key, p in model.named_parameters()}
    no_decay = {
        name[id(p)]
        for group in namespace["optimizer"].param_groups
        if group["weight_decay"] == 0
        for p in group["params"]
    }
    theirs_name = {id(p): key for key, p in theirs.named_parameters()}
    assert no_decay == {theirs_name[id(p)] for p in norm_bias_params(theirs, True)}
    assert all(learn.opt.state[p]["do_wd"] is False for p in norm_bias_params(theirs, True))
    # A rate or a slice, as fastai's fit_one_cycle takes them (fastbook chapter 5 passes 3e-3).
    for lr in (3e-3, slice(2e-3), slice(1e-5, 1e-3), slice(1e-3 / 100, 1e-3)):
        learn.opt.set_hyper("lr", lr)
        assert namespace["group_lrs"](lr) == [hyper["lr"] for hyper in learn.opt.hypers]


def test_recipe_cell_trains_alone_in_a_fresh_process(tmp_path: Path) -> None:
    # The case: only the builder changed to efficientnet_b0 used to give groups of 211,
    # 0 and 6 tensors, then "running_mean should contain 2560 elements not 1024".
    report = (
        "\nimport json as _json, sys as _sys\n"
        "print(_json.dumps({'losses': losses, 'batches': len(train_loader),"
        " 'groups': [len(list(g.parameters())) for g in groups],"
        " 'training': [m.training for m in model.modules()],"
        " 'modules': sorted({m.split('.')[0] for m in _sys.modules})}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run(
        [sys.executable, "-c", recipe_for("efficientnet_b0", whole=True) + report],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    ran = json.loads(result.stdout.splitlines()[-1])
    assert ran["groups"] == [211, 6]
    assert len(ran["losses"]) == 2 * ran["batches"] and all(map(math.isfinite, ran["losses"]))
    assert not any(ran["training"]), "fastai leaves the model in eval mode, after validating"
    assert not {"fastai", "fastcore", "transferlens", "timm"} & set(ran["modules"])


def test_transferlens_cell_trains_alone_in_a_fresh_process(tmp_path: Path) -> None:
    # The page says its transferlens cell runs on its own, without the cells above it. It
    # loads resnet18's DEFAULT weights: a random stand-in under torchvision's file name in
    # TORCH_HOME means nothing is downloaded (torch.hub checks a hash only when downloading).
    cached = tmp_path / "torch" / "hub" / "checkpoints"
    cached.mkdir(parents=True)
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    torch.save(torchvision.models.resnet18().state_dict(), cached / Path(url).name)
    report = (
        "\nimport json as _json, sys as _sys\n"
        "print(_json.dumps({'losses': [b.loss for b in log.batches],"
        " 'batches': len(train_loader),"
        " 'modules': sorted({m.split('.')[0] for m in _sys.modules})}))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(tmp_path / "torch")}
    result = subprocess.run(
        [sys.executable, "-c", code_after(LENS_HEADING) + report],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    ran = json.loads(result.stdout.splitlines()[-1])
    assert len(ran["losses"]) == 2 * ran["batches"] and all(map(math.isfinite, ran["losses"]))
    assert not {"fastai", "fastcore", "timm"} & set(ran["modules"])


def test_recipe_cell_imports_only_torch_and_torchvision() -> None:
    import ast

    imported = set()
    for node in ast.walk(ast.parse(recipe_source())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    assert {name.split(".")[0] for name in imported} == {"torch", "torchvision"}
    lines = recipe_source().split("\n")
    assert max(map(len, lines)) <= 80, "the recipe must fit the page's column"
    assert sum(MARKER in line for line in lines) == 1
