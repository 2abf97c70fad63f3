"""Tests for the atlas (transferlens.inspector's ``atlas_rows``, ``format_atlas``) and the
building for structure under it (``_meta_device``).

The full sweep of torchvision builders against fastai is tests/test_sweep.py; here: the pieces
(building on meta, the shape memo, pretrained builds without their weights, the weights fastai
loads, timm rows) and the formats, on a few rows built once for the module.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transferlens.inspector import TIMM_MODELS, atlas_rows, format_atlas
from transferlens.inspector._atlas import timm_row
from transferlens.inspector._inspect import resolve_weights
from transferlens.inspector._meta_device import (
    build_for_structure,
    empty_weights,
    shape_memo,
    weights_not_loaded,
)

# ---------------------------------------------------------------------------------------------
# Building for the structure only


class _ReadsABuffer(nn.Module):
    """A model whose constructor reads a value out of a registered buffer: no meta build works."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(1))
        self.linear = nn.Linear(4, int(self.scale.item()) + 1)


def test_empty_weights_puts_only_registered_tensors_on_meta() -> None:
    with empty_weights():
        linear = nn.Linear(3, 2)
        batch_norm = nn.BatchNorm1d(2)
        plain = torch.arange(3)
    assert linear.weight.is_meta and isinstance(linear.weight, nn.Parameter)
    assert batch_norm.running_mean.is_meta and batch_norm.weight.requires_grad
    assert plain.device.type == "cpu" and plain.tolist() == [0, 1, 2]
    assert not nn.Linear(3, 2).weight.is_meta  # patched only inside the block


def test_empty_weights_restores_on_error() -> None:
    register_parameter = nn.Module.register_parameter
    with pytest.raises(RuntimeError, match="boom"), empty_weights():
        raise RuntimeError("boom")
    assert nn.Module.register_parameter is register_parameter


def test_build_for_structure_falls_back_to_empty_weights_then_cpu() -> None:
    import torchvision.models

    initializers = {name: getattr(nn.init, name) for name in ("kaiming_normal_", "ones_")}
    regnet = build_for_structure(torchvision.models.regnet_x_400mf, weights=None)
    assert regnet.device == "meta" and regnet.note == ""
    assert all(p.is_meta for p in regnet.model.parameters())
    reads = build_for_structure(_ReadsABuffer)
    assert reads.device == "cpu"
    assert reads.note.startswith("could not be built on the meta device (")
    assert reads.model.linear.out_features == 2
    # the initializers, skipped on meta, are torch's own again
    assert {name: getattr(nn.init, name) for name in initializers} == initializers
    assert nn.init.ones_(torch.zeros(2)).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("arch", ["resnet18", "efficientnet_b0", "swin_t", "googlenet"])
def test_shape_memo_gives_the_kernels_answers(arch: str) -> None:
    """With and without the memo: the same output shape, or the same error."""
    import torchvision.models

    model = build_for_structure(torchvision.models.get_model_builder(arch), weights=None).model
    model.eval()
    body = nn.Sequential(*list(model.children())[:-1]) if arch == "googlenet" else model

    def outcome() -> object:
        try:
            with torch.no_grad():
                return tuple(body(torch.empty(1, 3, 64, 64, device="meta")).shape)
        except Exception as error:
            return type(error), str(error)

    plain = outcome()
    with shape_memo():
        first, again = outcome(), outcome()
    assert first == again == plain
    assert isinstance(plain[0], int) == (arch != "googlenet")  # googlenet: aux1 fails


def test_shape_memo_never_remembers_what_changes_self() -> None:
    with shape_memo():
        for _ in range(2):
            tensor = torch.empty(2, 3, device="meta")
            tensor.unsqueeze_(0)
            assert tensor.shape == (1, 2, 3)
            assert torch.empty(2, 3, device="meta").add_(1).shape == (2, 3)
        with pytest.raises(RuntimeError):  # failures run, and raise, every time
            torch.empty(2, 3, device="meta") @ torch.empty(2, 3, device="meta")
        with pytest.raises(RuntimeError):
            torch.empty(2, 3, device="meta") @ torch.empty(2, 3, device="meta")
        cpu = torch.ones(2) + torch.ones(2)  # real numbers are never remembered
        assert cpu.tolist() == [2.0, 2.0]


def test_shape_memo_lasts_one_block() -> None:
    """The memory belongs to the outermost block: shared by inner blocks, dropped after."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    from transferlens.inspector import _meta_device

    conv = nn.Conv2d(3, 4, 3, device="meta")
    with shape_memo():
        (outer,) = _meta_device._ACTIVE
        with shape_memo():
            assert _meta_device._ACTIVE == [outer]  # no second memo, no second mode
            assert len(_get_current_dispatch_mode_stack()) == 1
            conv(torch.empty(1, 3, 8, 8, device="meta"))
        assert len(outer.memo) > 0
    assert _meta_device._ACTIVE == [] and _get_current_dispatch_mode_stack() == []
    with shape_memo():
        assert _meta_device._ACTIVE[0] is not outer and _meta_device._ACTIVE[0].memo == {}


def test_weights_not_loaded_builds_the_pretrained_structure_without_downloading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch.hub
    import torchvision.models
    from torchvision.models._api import WeightsEnum

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", no_download)
    get_state_dict, load_state_dict = WeightsEnum.get_state_dict, nn.Module.load_state_dict
    with weights_not_loaded() as asked, torch.device("meta"):
        googlenet = torchvision.models.googlenet(weights="DEFAULT")
        densenet = torchvision.models.densenet121(weights="DEFAULT")  # edits the keys first
    assert [str(weights) for weights in asked] == [
        "GoogLeNet_Weights.IMAGENET1K_V1",
        "DenseNet121_Weights.IMAGENET1K_V1",
    ]
    # what googlenet does once its weights are loaded: no auxiliary classifiers
    assert googlenet.aux1 is None and googlenet.aux2 is None and googlenet.transform_input
    assert "aux1" not in dict(googlenet.named_children())
    assert densenet.classifier.out_features == 1000
    assert (WeightsEnum.get_state_dict, nn.Module.load_state_dict) == (
        get_state_dict, load_state_dict,
    )  # fmt: skip
    with pytest.raises(AssertionError, match="a download was attempted"):
        torchvision.models.resnet18(weights="DEFAULT")  # outside the block: a real load


def test_resolve_weights_restores_torchvision() -> None:
    import torchvision.models
    from torchvision.models import ResNet18_Weights
    from torchvision.models._api import WeightsEnum

    verify = WeightsEnum.__dict__["verify"]
    assert resolve_weights(torchvision.models.resnet50, weights="DEFAULT") == (
        "ResNet50_Weights.IMAGENET1K_V2"
    )
    assert resolve_weights(torchvision.models.efficientnet_b0, pretrained=True) == (
        "EfficientNet_B0_Weights.IMAGENET1K_V1"
    )
    assert resolve_weights(torchvision.models.resnet18, weights=None) is None
    with pytest.raises(ValueError, match="No weights available for model vit_h_14"):
        resolve_weights(torchvision.models.vit_h_14, pretrained=True)
    assert WeightsEnum.__dict__["verify"] is verify
    # a name still resolves in the builder's own enum afterwards
    assert ResNet18_Weights.verify("DEFAULT") is ResNet18_Weights.IMAGENET1K_V1


# ---------------------------------------------------------------------------------------------
# Rows, built once for the module

#: One builder that works both ways, one whose weights drop the part fastai fails on, the two
#: without pretrained=True weights, and a ViT.
NAMES = ["resnet18", "googlenet", "regnet_y_128gf", "vit_b_16", "vit_h_14"]


@pytest.fixture(scope="module")
def rows() -> list:
    return [*atlas_rows(names=NAMES), timm_row("resnet26d")]


def test_rows_say_what_each_call_does(rows: list) -> None:
    by_name = {row.name: row for row in rows}
    expected = {
        "resnet18": ("ok", "ok", "default"),
        "googlenet": ("ok", "refused", "default"),
        "regnet_y_128gf": ("no weights", "ok", "pretrained=False"),
        "vit_b_16": ("refused", "refused", None),
        "vit_h_14": ("no weights", "refused", None),
        "resnet26d": ("ok", "ok", "default"),
    }
    assert {
        name: (r.status, r.pretrained_false_status, r.built_by) for name, r in by_name.items()
    } == (expected)
    regnet = by_name["regnet_y_128gf"]
    assert "ValueError: No weights available for model regnet_y_128gf" in regnet.reason
    assert regnet.weights is None and regnet.weights_call == "pretrained=True"
    assert regnet.groups is not None and regnet.pretrained_false_reason == ""
    assert "StopIteration" in by_name["vit_h_14"].pretrained_false_reason
    assert by_name["vit_b_16"].suggested_cut is None  # conv_proj alone is no body
    assert "vit_base_patch16_224" in by_name["vit_b_16"].notes[0]
    googlenet = by_name["googlenet"]
    assert (googlenet.cut, googlenet.kept_children, googlenet.suggested_cut) == (16, 16, 16)
    assert "aux1" in googlenet.pretrained_false_reason
    assert by_name["resnet18"].weights == "ResNet18_Weights.IMAGENET1K_V1"
    assert all(row.device == "meta" for row in rows)


@pytest.mark.golden
@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_atlas_formats(rows: list, fmt: str) -> None:
    text = format_atlas(rows, fmt)
    if fmt == "json":
        assert [row["name"] for row in json.loads(text)] == [*NAMES, "resnet26d"]
    else:
        summary = text.splitlines()[-1]
        assert summary.startswith("6 models: vision_learner(dls, arch) builds 3, fails on 3 (2 ")
        assert "with pretrained=False it builds 3." in summary
    print(text, end="")


@pytest.mark.oracle
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_row_matches_fastai(name: str) -> None:
    """``vision_learner(dls, name)`` goes through ``create_timm_model``: same groups, head."""
    from fastai.data.core import DataLoaders
    from fastai.vision.learner import TimmBody, default_split, vision_learner

    row = timm_row(name)
    with torch.device("meta"):  # fastai's own learner, as the atlas row describes it
        learn = vision_learner(
            DataLoaders.from_dsets([], [], device="cpu"),
            name,
            n_out=2,
            pretrained=False,
            loss_func=nn.CrossEntropyLoss(),
        )
    model, cfg = learn.model, learn.model[0].model.default_cfg  # create_timm_model's pair
    assert learn.splitter is default_split
    assert row.groups == [sum(p.numel() for p in group) for group in default_split(model)]
    linear = next(layer for layer in model[1].modules() if isinstance(layer, nn.Linear))
    assert row.head_in_features == linear.in_features
    assert row.normalize == {"mean": list(cfg["mean"]), "std": list(cfg["std"])}
    assert row.weights is not None and row.weights.startswith(cfg["architecture"])
    assert (row.status, row.pretrained_false_status, row.cut, row.device) == (
        "ok", "ok", None, "meta",
    )  # fmt: skip
    assert json.loads(json.dumps(row.to_dict()))["name"] == name
    # what trains once that learner is frozen (the atlas's trainable share)
    learn.freeze()
    params = list(model.parameters())
    assert row.parameters == sum(p.numel() for p in params)
    assert row.trainable_when_frozen == sum(p.numel() for p in params if p.requires_grad)
    assert 0 < row.trainable_when_frozen < row.parameters
    # the whole timm model, no cut; a ViT's tokens come pooled: no pooling in the head
    body = model[0]
    assert isinstance(body, TimmBody) and body.model.num_classes == 0
    assert body.needs_pool == (not name.startswith("vit_"))
    assert isinstance(model[1][0], nn.BatchNorm1d) == name.startswith("vit_")


def test_timm_list_covers_the_families() -> None:
    families = ("convnext", "vit", "efficientnet", "resnet", "regnet")
    assert all(any(name.startswith(f) for name in TIMM_MODELS) for f in families)
    assert any(name.startswith("resnet") and name.endswith("d") for name in TIMM_MODELS)
