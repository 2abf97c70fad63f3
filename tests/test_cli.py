"""Tests for the ``transferlens`` command (transferlens.cli), run in-process through ``main``.

What it prints is golden-tested (tests/test_output/cli_*.out); one subprocess run proves that
``python -m transferlens`` works too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from transferlens.inspector.cli import INSTALL_HINT, main, parse_lr

GOLDEN_DIR = Path(__file__).parent / "test_output"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``, with what it printed to stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------
# Golden outputs


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_cli_text(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    code, out, err = run(capsys, "inspect", arch)
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file


@pytest.mark.golden
@pytest.mark.parametrize("arch", ["resnet18", "alexnet"])
def test_cli_json(capsys: pytest.CaptureFixture[str], arch: str) -> None:
    code, out, err = run(capsys, "inspect", arch, "--format", "json")
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file
    data = json.loads(out)
    assert list(data) == [
        "arch", "status", "device", "n_out", "body", "head", "split_family", "splitter",
        "groups", "freeze", "lr", "lrs", "report",
    ]  # fmt: skip
    assert (data["status"], data["device"]) == ("ok", "meta")
    assert data["groups"] == [group["elements"] for group in data["report"]["groups"]]


@pytest.mark.golden
def test_cli_text_default_split_unfrozen_slice(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "inspect", "mobilenet_v3_small", "--n-out", "37", "--freeze", "0",
        "--lr", "slice(1e-5, 1e-3)",
    )  # fmt: skip
    assert (code, err) == (0, "")
    print(out, end="")  # for the golden file


# ---------------------------------------------------------------------------------------------
# What the output says


def test_cli_json_rows_add_up_to_totals(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "resnet18", "--format", "json", "--lr", "1e-5:1e-3")
    assert code == 0
    data = json.loads(out)
    report, totals = data["report"], data["report"]["totals"]
    for key in ("tensors", "elements"):
        assert sum(row[key] for row in report["rows"]) == totals[key]
        assert sum(group[key] for group in report["groups"]) == totals[key]
        trainable = sum(row[key] for row in report["rows"] if row["trainable"])
        assert trainable == totals[f"trainable_{key}"]
        assert totals[key] - trainable == totals[f"frozen_{key}"]
    assert data["lrs"] == [group["lr"] for group in report["groups"]]
    assert data["lrs"] == pytest.approx([1e-5, 1e-4, 1e-3])
    assert [entry["path_a"] for entry in data["body"]["diff"]] == ["avgpool", "fc"]
    assert data["head"]["in_features"] == 1024


def test_cli_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    first = run(capsys, "inspect", "resnet18", "--format", "json")
    torch.manual_seed(1)
    assert run(capsys, "inspect", "resnet18", "--format", "json") == first


@pytest.mark.oracle
def test_cli_report_matches_fastai_learner(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's report equals ``trainable_report`` of fastai's own model, frozen by fastai."""
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner
    from fastai.vision.learner import _resnet_split, create_vision_model
    from torchvision.models import resnet18

    from transferlens import trainable_report

    model = create_vision_model(resnet18, n_out=2, pretrained=False)
    dataset = [(torch.zeros(3, 32, 32), 0)] * 4
    dls = DataLoaders.from_dsets(dataset, dataset, bs=2, device="cpu")
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), splitter=_resnet_split)
    learn.freeze()  # what vision_learner does
    learn.opt.set_hyper("lr", slice(1e-5, 1e-3))

    code, out, _ = run(capsys, "inspect", "resnet18", "--format", "json", "--lr", "1e-5:1e-3")
    assert code == 0
    assert json.loads(out)["report"] == trainable_report(learn).to_dict()


# ---------------------------------------------------------------------------------------------
# --lr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1e-3", 1e-3),
        (" 0.01 ", 0.01),
        ("slice(1e-3)", slice(None, 1e-3)),
        ("slice(1e-5,1e-3)", slice(1e-5, 1e-3)),
        ("slice( 1e-5 , 1e-3 )", slice(1e-5, 1e-3)),
        ("slice(None, 3e-3)", slice(None, 3e-3)),
        ("1e-5:1e-3", slice(1e-5, 1e-3)),
        (":1e-3", slice(None, 1e-3)),
    ],
)
def test_parse_lr(text: str, expected: float | slice) -> None:
    assert parse_lr(text) == expected


@pytest.mark.parametrize(
    "text", ["", "lr", "__import__('os')", "slice(1e-5,1e-3,2)", "1e-5:", "1e-3:1e-2:3", "1e-3x"]
)
def test_parse_lr_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="as a learning rate"):
        parse_lr(text)


# ---------------------------------------------------------------------------------------------
# Bad input: exit 2 with a message on stderr that names the argument


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inspect", "resnet1800"], "Did you mean 'resnet18'"),
        (["inspect", "resnet18", "--freeze", "3"], "`--freeze` must be between -3 and 2"),
        (["inspect", "resnet18", "--n-out", "0"], "--n-out: must be a positive integer"),
        (["inspect", "resnet18", "--lr", "fast"], "--lr: cannot read 'fast' as a learning rate"),
        (["inspect", "resnet18", "--lr=-1e-3"], "`lr` must be a positive finite number"),
        (["inspect", "resnet18", "--lr", "1e-3:1e-5"], "Swap them"),
        (["inspect", "resnet18", "--format", "yaml"], "--format: invalid choice"),
        (["inspect"], "the following arguments are required: ARCH"),
        (["inspect", "resnet18", "--cut", "2.5"], "--cut: cannot read '2.5' as a cut"),
        (["inspect", "resnet18", "--cut", "11"], "`--cut` must be between -10 and 10"),
        (["inspect", "resnet18", "--cut", "avgpol"], "Did you mean 'avgpool'"),
        (["atlas", "--format", "yaml"], "--format: invalid choice"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_cli_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert message in err


def test_cli_unknown_arch_names_arch(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "inspect", "resnet1800")
    assert code == 2
    assert err.startswith("transferlens inspect resnet1800: error: ARCH 'resnet1800' is not")
    assert "`transferlens atlas` lists them all" in err


def test_cli_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--help")
    assert code == 0
    assert "--lr LR" in out and "slice(1e-5,1e-3)" in out


def test_cli_without_torchvision(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)  # `import torchvision` now fails
    code, out, err = run(capsys, "inspect", "resnet18")
    assert (code, out) == (1, "")
    assert err == INSTALL_HINT + "\n"
    assert "pip install 'transferlens[cli]'" in err


# ---------------------------------------------------------------------------------------------
# The entry points


def test_python_dash_m_transferlens() -> None:
    """``python -m transferlens inspect resnet18`` prints exactly the golden text."""
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    result = subprocess.run(
        [sys.executable, "-m", "transferlens", "inspect", "resnet18"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no progress noise, no warnings
    assert result.stdout == (GOLDEN_DIR / "cli_text_resnet18.out").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# --cut, and what fastai cannot build


def test_cli_cut_int_and_child_name_agree(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "resnet18", "--cut", "-3", "--format", "json")
    assert code == 0
    by_int = json.loads(out)
    code, out, _ = run(capsys, "inspect", "resnet18", "--cut", "layer4", "--format", "json")
    assert code == 0
    by_name = json.loads(out)
    assert by_int["body"]["kept_children"] == 7  # conv1 ... layer3
    assert by_int["body"]["cut_source"] == "--cut"
    assert by_name["body"]["cut"] == 7 and by_int["body"]["cut"] == -3
    assert by_name["head"] == by_int["head"]
    assert by_int["head"]["n_features"] == 256  # layer3's channels


@pytest.mark.oracle
def test_cli_cut_matches_fastai_create_vision_model(capsys: pytest.CaptureFixture[str]) -> None:
    """``--cut N`` is fastai's ``create_vision_model(arch, n_out, cut=N)``."""
    from fastai.vision.learner import create_vision_model, default_split
    from torchvision.models import mobilenet_v2

    code, out, _ = run(capsys, "inspect", "mobilenet_v2", "--cut", "1", "--format", "json")
    assert code == 0
    data = json.loads(out)
    with torch.device("meta"):
        model = create_vision_model(mobilenet_v2, 2, pretrained=False, cut=1)
    assert data["groups"] == [sum(p.numel() for p in g) for g in default_split(model)]
    assert data["head"]["in_features"] == model[1][2].num_features == 2560


@pytest.mark.golden
def test_cli_refused_vit_b_16(capsys: pytest.CaptureFixture[str]) -> None:
    """fastai fails on vit_b_16 with a bare StopIteration; the CLI says why, and what to pass."""
    code, out, err = run(capsys, "inspect", "vit_b_16")
    assert (code, out) == (3, "")
    assert max(len(line) for line in err.splitlines()) <= 100  # wrapped for a terminal
    words = " ".join(err.split())
    assert "StopIteration" in words and "--cut N" in words and "--cut 1 (up to" in words
    print(err, end="")  # for the golden file


@pytest.mark.golden
def test_cli_refused_googlenet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "googlenet")
    assert (code, out) == (3, "")
    words = " ".join(err.split())
    assert "`aux1` (InceptionAux)" in words and "--cut 16 (up to `inception5b`" in words
    print(err, end="")  # for the golden file


def test_cli_refused_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "mnasnet0_5", "--format", "json")
    assert code == 3 and err.startswith("transferlens inspect mnasnet0_5: refused: fastai ")
    data = json.loads(out)
    assert (data["status"], data["stage"], data["fastai_error"]) == (
        "refused", "cut", "StopIteration"
    )
    assert data["suggested_cut"] == 1 and data["cut"] is None
    code, out, _ = run(capsys, "inspect", "mnasnet0_5", "--cut", "1", "--format", "json")
    assert code == 0 and json.loads(out)["body"]["kept_children"] == 1


def test_cli_regnet_builds_on_meta(capsys: pytest.CaptureFixture[str]) -> None:
    """RegNets compute while building: only their parameters and buffers go on meta."""
    code, out, _ = run(capsys, "inspect", "regnet_y_128gf", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["device"] == "meta"
    assert data["report"]["totals"]["elements"] > 600_000_000


# ---------------------------------------------------------------------------------------------
# atlas


def test_cli_atlas_json(capsys: pytest.CaptureFixture[str]) -> None:
    import torchvision.models

    code, out, err = run(capsys, "atlas", "--format", "json")
    assert (code, err) == (0, "")
    rows = json.loads(out)
    names = sorted(torchvision.models.list_models(module=torchvision.models))
    assert [row["name"] for row in rows] == names
    fields = {
        "name", "status", "reason", "cut", "groups", "head_in_features",
        "trainable_when_frozen", "normalize", "weights", "cut_honoured", "device",
    }  # fmt: skip
    by_name = {row["name"]: row for row in rows}
    for row in rows:
        assert fields <= set(row), row["name"]
        assert row["status"] in ("ok", "refused") and row["device"] in ("meta", "cpu")
        assert (row["status"] == "ok") == (row["reason"] == "") == (row["groups"] is not None)
        assert row["cut_honoured"] is False
    resnet50 = by_name["resnet50"]
    assert resnet50["weights"] == "ResNet50_Weights.IMAGENET1K_V2"  # DEFAULT, not V1
    assert resnet50["normalize"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    assert by_name["resnext50_32x4d"]["weights"] == "ResNeXt50_32X4D_Weights.IMAGENET1K_V1"
    assert by_name["resnext50_32x4d"]["normalize"] is None  # not in model_meta: no Normalize
    assert by_name["vit_h_14"]["weights"].startswith("none (No weights available")
    assert "StopIteration" in by_name["vit_b_16"]["reason"]


@pytest.mark.golden
def test_cli_atlas_markdown_resnets(capsys: pytest.CaptureFixture[str]) -> None:
    """The markdown table's rows (here the resnet family's), as a page would paste them."""
    code, out, _ = run(capsys, "atlas", "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| family | model | status |")
    resnets = [line for line in lines if line.startswith("| torchvision resnet |")]
    assert len(resnets) == 10  # resnet18 ... 152, 3 ResNeXts, 2 wide ResNets
    print("\n".join(lines[:2] + resnets))
    assert lines[-1].endswith("vision_learner(cut=...) honoured: no (fastai 2.8).")


def test_cli_atlas_without_timm(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    code, out, err = run(capsys, "atlas", "--timm")
    assert (code, out) == (1, "")
    assert "pip install timm" in err


# ---------------------------------------------------------------------------------------------
# Speed: any builder answers about as fast as resnet18


SLOW_BEFORE = ["googlenet", "inception_v3", "vit_h_14", "regnet_y_128gf", "efficientnet_b7"]


def _seconds(*argv: str) -> float:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "transferlens", *argv],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 3), result.stderr
    return time.perf_counter() - start


def test_cli_inspect_any_builder_as_fast_as_resnet18() -> None:
    """Within 1.5x ``inspect resnet18``, refusals and 600M-parameter models included.

    Each command runs twice, interleaved with resnet18, and the ratio compares the fastest run
    of each, so a load spike from other processes on the machine does not decide it.
    """
    times: dict[str, list[float]] = {name: [] for name in ["resnet18", *SLOW_BEFORE]}
    for _ in range(2):
        for name in times:
            times[name].append(_seconds("inspect", name, "--format", "json"))
    baseline = min(times["resnet18"])
    ratios = {name: min(times[name]) / baseline for name in SLOW_BEFORE}
    print({name: round(ratio, 2) for name, ratio in ratios.items()}, f"resnet18 {baseline:.1f}s")
    assert max(ratios.values()) < 1.5, ratios


@pytest.mark.oracle
def test_cli_cut_that_breaks_fastai_split(capsys: pytest.CaptureFixture[str]) -> None:
    """fastai splits a resnet cut at 3 children with _resnet_split anyway: an empty group."""
    from fastai.vision.learner import _resnet_split, create_vision_model
    from torchvision.models import resnet18

    code, out, err = run(capsys, "inspect", "resnet18", "--cut", "3", "--format", "json")
    assert code == 3
    data = json.loads(out)
    assert (data["stage"], data["fastai_error"], data["cut"]) == ("split", "", 3)
    assert "_resnet_split" in data["reason"] and "--cut out" in " ".join(err.split())
    with torch.device("meta"):
        model = create_vision_model(resnet18, 2, pretrained=False, cut=3)
    assert [len(group) for group in _resnet_split(model)][1] == 0
