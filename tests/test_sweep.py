"""The sweep: every classification builder in torchvision, transferlens against fastai itself.

For each name of ``transferlens.known_architectures()`` (torchvision's
``list_models(module=torchvision.models)``), what the atlas and ``transferlens inspect`` say for
both calls (``inspect_both_calls``: fastai's default ``vision_learner(dls, arch)`` and
``pretrained=False``) must agree with fastai's own ``vision_learner``, frozen as
``pretrained=True`` leaves it: the same body (number of children kept, and the cut), the same
head input features, the same number of parameters per group and the same number of trainable
parameters. Or both refuse: fastai raises, and transferlens refuses at the same step with
fastai's exception named, and a ``--cut`` that fastai accepts (suggested only when it keeps
the feature extractor).

The default call: where torchvision has no weights for it, fastai's ``vision_learner(dls,
arch)`` itself must raise torchvision's ``ValueError``. Elsewhere, a pretrained build (its
weights resolved, not loaded) is compared with a ``weights=None`` build: where the two models
have the same modules and tensor shapes, fastai does the same with both (``create_vision_model``
reads nothing else for ``n_in=3``), so transferlens's two answers must be the same; where they
differ (``googlenet``: its weights drop the auxiliary classifiers), fastai's default call itself
is the oracle.

Every model is inspected on the meta device, without real parameters. Both sides build on meta
(fastai's side with its parameters and buffers on meta, its initializers skipped: they only
write values), so the sweep costs well under a second of CPU per builder. fastai's side runs
without transferlens's shape memo: its shapes come from PyTorch's own meta kernels.
"""

from __future__ import annotations

import contextlib
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torchvision.models
from torch import nn

from transferlens import known_architectures
from transferlens.inspector import Inspection, Refusal
from transferlens.inspector._inspect import fastai_call, inspect_both_calls
from transferlens.inspector._meta_device import (
    empty_weights,
    initializers_skipped,
    weights_not_loaded,
)

NAMES = known_architectures()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pretrained= deprecations, googlenet's init notice
        yield


def _fastai_on_meta(
    dls: Any, builder: Callable[..., nn.Module], pretrained: bool
) -> tuple[Any, Callable[[], Any]]:
    """fastai's ``vision_learner`` for ``builder`` on the meta device, frozen; or its error.

    With only parameters and buffers on meta first (no ``torch.device`` mode slowing every
    operation, and RegNets, which compute while building, build too), then under
    ``torch.device("meta")`` should a builder fail there before fastai does anything. With
    ``pretrained``, the weights are resolved and not loaded. Returns the learner (or the
    exception fastai raised) and the context used.
    """
    from fastai.vision import learner as fastai_learner

    outcome: Any = None
    loading = weights_not_loaded if pretrained else contextlib.nullcontext
    for context in (empty_weights, lambda: torch.device("meta")):
        try:
            with _quiet(), context(), initializers_skipped(), loading():
                learn = fastai_learner.vision_learner(
                    dls, builder, pretrained=pretrained, n_out=2, loss_func=nn.CrossEntropyLoss()
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


def _structure(model: nn.Module) -> tuple[Any, ...]:
    return (
        repr(model),
        [(name, p.shape) for name, p in model.named_parameters()],
        [(name, b.shape) for name, b in model.named_buffers()],
    )


def _same_structure_both_calls(name: str) -> bool:
    """Whether the default call's model and the ``weights=None`` one have the same modules and
    tensor shapes (raises torchvision's ValueError when the default call has no weights)."""
    builder = torchvision.models.get_model_builder(name)
    _, kwargs, _ = fastai_call(name, pretrained=True)
    models = []
    for context, call in (
        (weights_not_loaded, kwargs),
        (contextlib.nullcontext, {"weights": None}),
    ):
        for device in (lambda: torch.device("meta"), empty_weights):  # RegNets: the second
            try:
                with _quiet(), context(), device(), initializers_skipped():
                    models.append(builder(**call))
                break
            except (NotImplementedError, RuntimeError):
                continue
    return _structure(models[0]) == _structure(models[1])


def _check_against_fastai(
    outcome: Inspection | Refusal,
    learn: Any,
    context: Callable[[], Any],
    builder: Callable[..., nn.Module],
    name: str,
) -> None:
    """One transferlens answer against fastai's learner (or its error)."""
    from fastai.vision import learner as fastai_learner

    assert outcome.device == "meta", name  # inspected without real parameters
    if isinstance(learn, BaseException):
        error = learn
        assert isinstance(outcome, Refusal), f"fastai refuses {name} ({error!r}), not transferlens"
        assert outcome.arch == name
        assert outcome.stage == _fastai_stage(error)
        assert outcome.fastai_error == type(error).__name__
        assert name in outcome.reason and type(error).__name__ in outcome.reason
        assert "Pass `cut`" not in outcome.reason + outcome.advice
        runnable = outcome.runnable_cut
        assert runnable is not None and runnable >= 1
        # a cut is suggested only where it keeps most of what the model's forward uses
        assert (outcome.suggested_cut == runnable) == (outcome.runnable_share > 0.5)
        if outcome.suggested_cut is not None:
            assert f"--cut {runnable}" in outcome.advice  # the CLI's option, not Python's
        else:
            assert "No --cut gives a useful body" in outcome.advice
            assert 'vision_learner(dls, "vit_base_patch16_224")' in outcome.advice
        with _quiet(), context():  # the longest runnable cut: fastai builds the model with it
            model = fastai_learner.create_vision_model(builder, 2, pretrained=False, cut=runnable)
        assert len(model[0]) == runnable
        return

    assert isinstance(outcome, Inspection), f"fastai builds {name}, transferlens refuses it"
    model = learn.model
    body, head = model[0], model[1]
    meta = fastai_learner.model_meta.get(builder, fastai_learner._default_meta)
    assert outcome.body_children == len(body)
    if meta["cut"] is not None:
        assert outcome.cut == meta["cut"]
    else:
        assert outcome.cut == len(body)  # the pooling rule keeps children[:cut]
    first_linear = next(layer for layer in head.modules() if isinstance(layer, nn.Linear))
    assert 2 * outcome.n_features == first_linear.in_features
    assert all(p.is_meta for p in outcome.head.parameters())
    fastai_groups = [sum(p.numel() for p in group) for group in learn.opt.param_lists]
    assert outcome.groups == fastai_groups
    assert outcome.splitter == meta["split"].__name__
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert outcome.report.trainable_elements == trainable
    assert outcome.report.elements == sum(p.numel() for p in model.parameters())


def _without_call(outcome: Inspection | Refusal) -> dict[str, Any]:
    """What an answer says about the model, without which call built it."""
    fields = {key: value for key, value in vars(outcome).items()}
    for key in ("pretrained", "call", "builder_call", "weights", "head", "report"):
        fields.pop(key, None)
    if isinstance(outcome, Inspection):
        fields["report"] = outcome.report.to_dict()
    return fields


@pytest.mark.oracle
@pytest.mark.parametrize("name", NAMES)
def test_inspect_agrees_with_fastai(dls: Any, name: str) -> None:
    from fastai.vision import learner as fastai_learner

    builder = torchvision.models.get_model_builder(name)
    default, random_init = inspect_both_calls(name)
    assert (default.pretrained, random_init.pretrained) == (True, False)

    # pretrained=False: fastai itself
    learn, context = _fastai_on_meta(dls, builder, pretrained=False)
    _check_against_fastai(random_init, learn, context, builder, name)

    # the default call
    try:
        same = _same_structure_both_calls(name)
    except ValueError as no_weights:
        assert isinstance(default, Refusal) and default.stage == "weights"
        assert default.fastai_error == "ValueError" and str(no_weights) in default.reason
        with pytest.raises(ValueError, match=f"No weights available for model {name}"), _quiet():
            fastai_learner.vision_learner(dls, builder, n_out=2, loss_func=nn.CrossEntropyLoss())
        return
    assert default.weights is not None  # resolved, never downloaded
    if same:
        assert _without_call(default) == _without_call(random_init)
    else:
        learn, context = _fastai_on_meta(dls, builder, pretrained=True)
        _check_against_fastai(default, learn, context, builder, name)


def test_sweep_covers_every_builder() -> None:
    """The sweep is parametrized over the full list, not a sample of it."""
    assert NAMES == sorted(torchvision.models.list_models(module=torchvision.models))
    assert {"resnet18", "vit_h_14", "regnet_y_128gf", "googlenet"} <= set(NAMES)
