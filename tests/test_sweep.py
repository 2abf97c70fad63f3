"""The sweep: every classification builder in torchvision, transferlens against fastai itself.

For each name of ``torchvision.models.list_models(module=torchvision.models)``,
``transferlens inspect NAME --format json`` (run in-process through ``transferlens.cli.main``,
so ``param_groups``, ``create_body``, ``num_features`` and ``create_head`` are what answers) must
agree with fastai's own ``vision_learner`` (``create_vision_model`` and the ``model_meta``
splitter), frozen as ``pretrained=True`` leaves it: the same body (number of children kept, and
the cut), the same head input features, the same number of parameters per group and the same
number of trainable parameters. Or both refuse: fastai raises, and transferlens refuses at the
same step with fastai's exception named and a ``--cut`` that fastai accepts.

Both sides build on the meta device (fastai's side with its parameters and buffers on meta), so
the whole sweep takes about a second of CPU per builder. fastai's side runs without
transferlens's shape memo: its shapes come from PyTorch's own meta kernels.
"""

from __future__ import annotations

import contextlib
import json
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torchvision.models
from torch import nn

from transferlens.inspector import main
from transferlens.inspector._meta_device import empty_weights

NAMES = sorted(torchvision.models.list_models(module=torchvision.models))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pretrained= deprecations, googlenet's init notice
        yield


def _fastai_on_meta(dls: Any, builder: Callable[..., nn.Module]) -> tuple[Any, Callable[[], Any]]:
    """fastai's ``vision_learner`` for ``builder`` on the meta device, frozen; or its error.

    With only parameters and buffers on meta first (no ``torch.device`` mode slowing every
    operation, and RegNets, which compute while building, build too), then under
    ``torch.device("meta")`` should a builder fail there before fastai does anything. Returns
    the learner (or the exception fastai raised) and the context used.
    """
    from fastai.vision import learner as fastai_learner

    outcome: Any = None
    for context in (empty_weights, lambda: torch.device("meta")):
        try:
            with _quiet(), context():
                learn = fastai_learner.vision_learner(
                    dls, builder, pretrained=False, n_out=2, loss_func=nn.CrossEntropyLoss()
                )
                learn.freeze()  # what vision_learner does for pretrained=True
        except Exception as error:
            outcome = error
            if _fastai_stage(error).startswith("other"):
                continue  # the builder itself failed on this device: try the next way
            return error, context
        return learn, context
    return outcome, contextlib.nullcontext


@pytest.fixture(scope="module")
def dls() -> Any:
    from fastai.data.core import DataLoaders

    samples = [(torch.zeros(3, 32, 32), 0), (torch.zeros(3, 32, 32), 1)]
    return DataLoaders.from_dsets(samples, samples, bs=2, num_workers=0, device="cpu")


def _fastai_stage(error: BaseException) -> str:
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    if "num_features_model" in frames:
        return "features"
    if "create_body" in frames:
        return "cut"
    return "other: " + " > ".join(frames)


def _lens(capsys: pytest.CaptureFixture[str], name: str) -> tuple[int, dict[str, Any], str]:
    code = main(["inspect", name, "--format", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


@pytest.mark.oracle
@pytest.mark.parametrize("name", NAMES)
def test_inspect_agrees_with_fastai(
    capsys: pytest.CaptureFixture[str], dls: Any, name: str
) -> None:
    from fastai.vision import learner as fastai_learner

    builder = torchvision.models.get_model_builder(name)
    code, lens, err = _lens(capsys, name)
    learn, context = _fastai_on_meta(dls, builder)
    if isinstance(learn, BaseException):
        error = learn
        assert code == 3, f"fastai refuses {name} ({error!r}), transferlens does not"
        assert lens["status"] == "refused" and lens["arch"] == name
        assert lens["stage"] == _fastai_stage(error)
        assert lens["fastai_error"] == type(error).__name__
        assert name in lens["reason"] and type(error).__name__ in lens["reason"]
        assert "--cut N" in lens["advice"]  # the CLI's option, not a Python argument
        assert "Pass `cut`" not in lens["reason"] + lens["advice"]
        assert " ".join(err.split()).startswith(f"transferlens inspect {name}: refused: fastai ")
        suggested = lens["suggested_cut"]
        assert suggested is not None and suggested >= 1
        with _quiet(), context():  # the advice works: fastai builds the model with that cut
            model = fastai_learner.create_vision_model(builder, 2, pretrained=False, cut=suggested)
        assert len(model[0]) == suggested
        return

    assert code == 0, err
    model = learn.model
    body, head = model[0], model[1]
    meta = fastai_learner.model_meta.get(builder, fastai_learner._default_meta)
    assert lens["status"] == "ok" and lens["device"] == "meta"
    assert lens["body"]["kept_children"] == len(body)
    if meta["cut"] is not None:
        assert lens["body"]["cut"] == meta["cut"]
    else:
        assert lens["body"]["cut"] == len(body)  # the pooling rule keeps children[:cut]
    first_linear = next(layer for layer in head.modules() if isinstance(layer, nn.Linear))
    assert lens["head"]["in_features"] == first_linear.in_features
    fastai_groups = [sum(p.numel() for p in group) for group in learn.opt.param_lists]
    assert lens["groups"] == fastai_groups
    assert lens["splitter"] == meta["split"].__name__
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    totals = lens["report"]["totals"]
    assert totals["trainable_elements"] == trainable
    assert totals["elements"] == sum(p.numel() for p in model.parameters())


def test_sweep_covers_every_builder() -> None:
    """The sweep is parametrized over the full list, not a sample of it."""
    assert len(NAMES) == len(set(torchvision.models.list_models(module=torchvision.models)))
    assert {"resnet18", "vit_h_14", "regnet_y_128gf", "googlenet"} <= set(NAMES)
