"""Tests for the atlas (transferlens._atlas) and the meta-device building under it.

The full sweep of torchvision builders against fastai is tests/test_sweep.py; here: the pieces
(building on meta, the shape memo, the weights fastai loads, timm rows) and the formats.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from transferlens.inspector import TIMM_MODELS, format_atlas
from transferlens.inspector._atlas import timm_row, torchvision_row
from transferlens.inspector._meta_device import build_for_structure, empty_weights, shape_memo

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

    regnet = build_for_structure(torchvision.models.regnet_x_400mf, weights=None)
    assert regnet.device == "meta" and regnet.note == ""
    assert all(p.is_meta for p in regnet.model.parameters())
    reads = build_for_structure(_ReadsABuffer)
    assert reads.device == "cpu"
    assert reads.note.startswith("could not be built on the meta device (")
    assert reads.model.linear.out_features == 2


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


# ---------------------------------------------------------------------------------------------
# Rows


def test_weights_resolution_restores_torchvision() -> None:
    from torchvision.models._api import WeightsEnum

    verify = WeightsEnum.verify
    row = torchvision_row("efficientnet_b0")
    assert WeightsEnum.verify == verify
    assert (row.weights_call, row.weights) == (
        "pretrained=True",
        "EfficientNet_B0_Weights.IMAGENET1K_V1",
    )
    resnet = torchvision_row("resnet50")
    assert (resnet.weights_call, resnet.weights) == (
        "weights='DEFAULT'",
        "ResNet50_Weights.IMAGENET1K_V2",
    )


@pytest.mark.golden
def test_atlas_text(capsys: pytest.CaptureFixture[str]) -> None:
    rows = [torchvision_row("resnet18"), torchvision_row("vit_b_16"), timm_row("resnet26d")]
    text = format_atlas(rows, "text")
    assert text.splitlines()[-1].startswith("3 models: 2 built by fastai, 1 refused;")
    print(text, end="")


@pytest.mark.oracle
@pytest.mark.parametrize("name", TIMM_MODELS)
def test_timm_row_matches_fastai(name: str) -> None:
    """``vision_learner(dls, name)`` goes through ``create_timm_model``: same groups, head."""
    from fastai.vision.learner import create_timm_model, default_split

    row = timm_row(name)
    with torch.device("meta"):
        model, cfg = create_timm_model(name, 2, pretrained=False)
    assert row.groups == [sum(p.numel() for p in group) for group in default_split(model)]
    linear = next(layer for layer in model[1].modules() if isinstance(layer, nn.Linear))
    assert row.head_in_features == linear.in_features
    assert row.normalize == {"mean": list(cfg["mean"]), "std": list(cfg["std"])}
    assert row.weights is not None and row.weights.startswith(cfg["architecture"])
    assert (row.status, row.cut, row.device) == ("ok", None, "meta")
    assert json.loads(json.dumps(row.to_dict()))["name"] == name


def test_timm_list_covers_the_families() -> None:
    families = ("convnext", "vit", "efficientnet", "resnet", "regnet")
    assert all(any(name.startswith(f) for name in TIMM_MODELS) for f in families)
    assert any(name.startswith("resnet") and name.endswith("d") for name in TIMM_MODELS)
